// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The mini engine's CUDA backend: cuBLAS matmuls (bf16 in, fp32 accumulation) and
/// kvkit's kernels (append_kv, paged prefill, paged decode) over the cache's device storage.
/// Built only with CUDA (target kvkit_mini_engine_cuda); this header needs no nvcc.
#pragma once

#include <kvkit/device_storage.hpp>
#include <kvkit/error.hpp>

#include <cuda_runtime_api.h>

#include <memory>
#include <span>
#include <string>

#include "model.hpp"

namespace mini_engine {

/// @brief CUDA backend over a cache whose storage is `kvkit::device_storage<kvkit::bf16>`.
///
/// Weights live on the device in bf16; activations are bf16 between layers with fp32 norms and
/// accumulation. forward() copies the batch's arrays to the device, runs every layer on the
/// backend's stream and copies the logits back (the one synchronisation of a step).
class cuda_backend {
 public:
  /// @brief The storage type the cache must use.
  using storage_type = kvkit::device_storage<kvkit::bf16>;

  /// @brief Uploads @p weights to the current device.
  /// @param weights The model (head_dim must be a kernel configuration built into kvkit::cuda).
  /// @param stream Stream of every launch (0: the default stream).
  /// @return The backend, or `errc::invalid_config` naming the unsupported shape or the CUDA or
  /// cuBLAS error.
  [[nodiscard]] static kvkit::result<cuda_backend> create(const model_weights& weights,
                                                          cudaStream_t stream = nullptr);

  /// @brief Moves the backend.
  cuda_backend(cuda_backend&&) noexcept;
  /// @brief Move assignment.
  /// @return `*this`.
  cuda_backend& operator=(cuda_backend&&) noexcept;
  /// @brief Frees the device memory and the cuBLAS handle.
  ~cuda_backend();

  /// @brief The model.
  [[nodiscard]] const model_config& config() const noexcept;

  /// @brief Backend name for reports (includes the device name).
  [[nodiscard]] std::string name() const;

  /// @brief Runs the model over @p batch (see cpu_backend::forward(); same contract).
  /// @param batch The batch, in host memory.
  /// @param kv The cache's device storage.
  /// @param logits `[batch][vocab]` host output.
  /// @return Ok, or an error naming the failed kernel, cuBLAS call or CUDA call.
  kvkit::status forward(const forward_batch& batch, storage_type& kv, std::span<float> logits);

  /// @brief Times cuBLAS at the model's MLP shape (2048 rows) and kvkit's paged prefill (2048
  /// queries over 4096 cached tokens) with CUDA events: the cost model's rates.
  /// @return The rates, or the CUDA error.
  [[nodiscard]] kvkit::result<cost_rates> measure_rates();

 private:
  struct impl;
  explicit cuda_backend(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> p_;
};

}  // namespace mini_engine
