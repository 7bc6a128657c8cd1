// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Per-configuration entry points of kvkit::cuda (internal). Each generated translation unit
// (cuda/src/kernel_config.cu.in) fills one table with the launchers of its (head_dim, dtype);
// the public run() functions find the table through the registry.
#pragma once

#include <kvkit/append_kv.hpp>
#include <kvkit/kernel_registry.hpp>
#include <kvkit/merge_states.hpp>
#include <kvkit/paged_decode.hpp>
#include <kvkit/paged_prefill.hpp>

#include <cuda_runtime_api.h>

namespace kvkit::detail {

struct kernel_entry_points {
  cudaError_t (*append_kv)(const append_kv_args&, cudaStream_t) = nullptr;
  cudaError_t (*paged_decode)(const paged_decode_args&, const paged_decode_plan&, void*,
                              cudaStream_t) = nullptr;
  cudaError_t (*paged_prefill)(const paged_prefill_args&, cudaStream_t) = nullptr;
  cudaError_t (*merge_states)(const merge_states_args&, cudaStream_t) = nullptr;
};

/// The entry points of a built configuration (`config` from find_kernel_config()).
const kernel_entry_points* find_entry_points(const kernel_config& config) noexcept;

/// Byte layout of the decode workspace: partial outputs, then partial LSEs.
struct decode_workspace_layout {
  std::size_t partial_o_bytes = 0;
  std::size_t partial_lse_offset = 0;
  std::size_t total = 0;
};

inline decode_workspace_layout decode_workspace(const paged_decode_args& args,
                                                const paged_decode_plan& plan) {
  decode_workspace_layout w;
  if (plan.num_splits <= 1)
    return w;
  const std::size_t rows = std::size_t{args.kv.batch} * plan.num_splits * args.num_qo_heads;
  w.partial_o_bytes = rows * args.kv.head_dim * sizeof(float);
  w.partial_lse_offset = (w.partial_o_bytes + 255) / 256 * 256;
  w.total = w.partial_lse_offset + (rows * sizeof(float) + 255) / 256 * 256;
  return w;
}

}  // namespace kvkit::detail
