// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief `append_kv`: writes new tokens' keys and values into their slots of a paged K/V pool.
///
/// Host API (no device synchronisation, capturable in a CUDA graph):
/// `can_implement(args)` -> `workspace_size(args)` -> `run(args, workspace, stream)`.

#include <kvkit/error.hpp>
#include <kvkit/kernel_registry.hpp>
#include <kvkit/layout.hpp>

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kvkit {

/// @brief Arguments of append_kv: token `i`'s K and V rows go to slot `slot_mapping[i]`, that is
/// page `slot / block_size`, position `slot % block_size`, of one layer's K and V pools.
///
/// All pointers are device pointers. Element type and head dimension must name a configuration
/// built into `kvkit::cuda` (see built_kernel_configs()).
struct append_kv_args {
  /// @brief New keys, `[num_tokens][num_kv_heads][head_dim]` (token rows `k_stride` apart).
  const void* k_new = nullptr;
  /// @brief New values, same shape as #k_new (token rows `v_stride` apart).
  const void* v_new = nullptr;
  /// @brief Elements between consecutive tokens of #k_new; 0 means `num_kv_heads * head_dim`.
  std::uint64_t k_stride = 0;
  /// @brief Elements between consecutive tokens of #v_new; 0 means `num_kv_heads * head_dim`.
  std::uint64_t v_stride = 0;
  /// @brief `num_tokens` slots, `slot = page * block_size + position`; a negative slot skips
  /// the token (padding), and so does a slot at or beyond `num_blocks * block_size`.
  const std::int64_t* slot_mapping = nullptr;
  void* k_cache = nullptr;              ///< The layer's K pool (page 0, slot 0, head 0).
  void* v_cache = nullptr;              ///< The layer's V pool.
  std::uint32_t num_tokens = 0;         ///< Tokens to write (0 is a no-op).
  std::uint32_t num_kv_heads = 1;       ///< K/V heads per token.
  std::uint32_t head_dim = 128;         ///< Elements per head (a built configuration).
  std::uint32_t block_size = 16;        ///< Tokens per page (any value >= 1).
  std::uint32_t num_blocks = 0;         ///< Pages in each pool (bounds the slots written).
  kv_order order = kv_order::nhd;       ///< Order inside a page.
  cuda_dtype dtype = cuda_dtype::bf16;  ///< Element type of all tensors.
};

/// @brief Checks @p args without touching the device.
/// @param args The arguments.
/// @return Ok, or `errc::invalid_argument` naming the bad field and the accepted values, or
///         `errc::invalid_config` listing the built configurations when (head_dim, dtype) was
///         not built.
[[nodiscard]] status can_implement(const append_kv_args& args);

/// @brief Workspace bytes needed by run().
/// @param args The arguments.
/// @return Always 0: append_kv needs no workspace.
[[nodiscard]] std::size_t workspace_size(const append_kv_args& args) noexcept;

/// @brief Enqueues the copy on @p stream.
/// @param args The arguments (checked with can_implement() first).
/// @param workspace Unused (may be null).
/// @param stream The stream.
/// @return Ok, the can_implement() error, or `errc::device_error` carrying the CUDA launch
///         error.
[[nodiscard]] status run(const append_kv_args& args, void* workspace, cudaStream_t stream);

}  // namespace kvkit
