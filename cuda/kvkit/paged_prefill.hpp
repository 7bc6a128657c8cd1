// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Paged prefill attention over a cached prefix: many new query tokens per sequence,
/// ragged batch, causal mask aligned bottom-right, on tensor cores.
///
/// FlashAttention-2 style: a CTA of 4 warps owns 64 query rows of one sequence and one K/V head
/// (rows pack (token, query head of the GQA group), so K/V tiles are read once per group); each
/// warp computes its 16 rows with `mma.sync.m16n8k16` (16-bit inputs, fp32 accumulators) and an
/// online softmax. K/V tiles are gathered from the pages into swizzled shared memory with
/// `cp.async`, double buffered.
///
/// Host API (no device synchronisation, capturable in a CUDA graph):
/// `can_implement(args)` -> `workspace_size(args)` -> `run(args, workspace, stream)`.

#include <kvkit/error.hpp>
#include <kvkit/kernel_registry.hpp>
#include <kvkit/paged_kv.hpp>

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kvkit {

/// @brief Arguments of paged prefill. All pointers are device pointers.
///
/// Sequence `b` has `n = qo_indptr[b+1] - qo_indptr[b]` new queries, which are its last `n`
/// tokens: their K/V is already in the pages (append_kv first), after the cached prefix. Query
/// `i` sits at position `kv_len[b] - n + i` and, with #causal, attends to positions up to its
/// own, as reference_prefill() does.
struct paged_prefill_args {
  /// @brief Queries, `[total_q][num_qo_heads][kv.head_dim]`, 16-byte aligned.
  const void* q = nullptr;
  /// @brief `kv.batch + 1` offsets of each sequence's queries into #q (`qo_indptr[0] == 0`).
  const std::uint32_t* qo_indptr = nullptr;
  /// @brief The batch's page table and one layer's K/V pools (16-byte aligned). Any page size.
  paged_kv<const void> kv{};
  /// @brief Output, same shape and dtype as #q.
  void* o = nullptr;
  /// @brief Natural-log log-sum-exp, `[total_q][num_qo_heads]`; may be null.
  float* lse = nullptr;
  /// @brief Query heads (a multiple of `kv.num_kv_heads`).
  std::uint32_t num_qo_heads = 0;
  /// @brief Softmax scale; 0 means `1 / sqrt(head_dim)`.
  float scale = 0.0f;
  /// @brief Bottom-right aligned causal mask (false: every query sees all `kv_len` tokens).
  bool causal = true;
  /// @brief Element type of #q, #o and the pools.
  cuda_dtype dtype = cuda_dtype::bf16;
  /// @brief Host-side bound of the queries per sequence, used to size the grid (must be >= 1).
  /// CTAs loop over any further rows, so a low bound costs speed, never correctness.
  std::uint32_t max_qo_len = 0;
};

/// @brief Checks @p args without touching the device.
/// @param args The arguments.
/// @return Ok; `errc::invalid_argument` naming the bad field and the accepted values; or
///         `errc::invalid_config` listing the built configurations.
[[nodiscard]] status can_implement(const paged_prefill_args& args);

/// @brief Workspace bytes needed by run().
/// @param args The arguments.
/// @return Always 0.
[[nodiscard]] std::size_t workspace_size(const paged_prefill_args& args) noexcept;

/// @brief Enqueues prefill attention on @p stream.
/// @param args The arguments.
/// @param workspace Unused (may be null).
/// @param stream The stream.
/// @return Ok; the can_implement() error; or `errc::device_error` carrying the CUDA error.
[[nodiscard]] status run(const paged_prefill_args& args, void* workspace, cudaStream_t stream);

}  // namespace kvkit
