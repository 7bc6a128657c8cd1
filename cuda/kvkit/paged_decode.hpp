// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Paged decode attention: one query token per sequence over its paged K/V, split over
/// the sequence when the batch alone would not fill the GPU, with a log-sum-exp merge.
///
/// A CTA works on one (sequence, K/V head, split): every K/V tile is read once for all query
/// heads of the GQA group (up to 8 per CTA; larger groups take one CTA per 8 heads). Tiles are
/// gathered from the pages with `cp.async`, double buffered; accumulation is fp32. With more
/// than one split, partial outputs and their log-sum-exp go to the workspace and a second kernel
/// merges them (natural-log LSE, as reference_merge_states()).
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

/// @brief Arguments of paged decode. All pointers are device pointers.
///
/// Sequence `b`'s query attends to all `kv.kv_len[b]` tokens of its pages (its own K/V, written
/// by append_kv beforehand, included), as reference_decode() does.
struct paged_decode_args {
  /// @brief Queries, `[kv.batch][num_qo_heads][kv.head_dim]`, 16-byte aligned.
  const void* q = nullptr;
  /// @brief The batch's page table and one layer's K/V pools (16-byte aligned). Any page size.
  paged_kv<const void> kv{};
  /// @brief Output, same shape and dtype as #q.
  void* o = nullptr;
  /// @brief Natural-log log-sum-exp of the scaled scores, `[kv.batch][num_qo_heads]`; may be
  /// null.
  float* lse = nullptr;
  /// @brief Query heads (a multiple of `kv.num_kv_heads`).
  std::uint32_t num_qo_heads = 0;
  /// @brief Softmax scale; 0 means `1 / sqrt(head_dim)`.
  float scale = 0.0f;
  /// @brief Element type of #q, #o and the pools.
  cuda_dtype dtype = cuda_dtype::bf16;
  /// @brief Host-side upper bound of `kv.kv_len[]`, used only to plan the splits (the kernel
  /// reads the true lengths on the device; a wrong bound costs speed, never correctness).
  /// 0 with #num_splits 0 means one split.
  std::uint32_t max_kv_len = 0;
  /// @brief Splits per sequence; 0 chooses from batch, heads, #max_kv_len and the
  /// multiprocessor count of the device holding `kv.k`, so that small batches still fill it.
  std::uint32_t num_splits = 0;
};

/// @brief How run() will execute @p args (what workspace_size() is computed from).
struct paged_decode_plan {
  std::uint32_t num_splits = 1;    ///< Splits per (sequence, K/V head).
  std::uint32_t split_tokens = 0;  ///< Tokens per split (the last split runs to the end).
  std::uint32_t head_chunks = 1;   ///< CTAs per K/V head (ceil(group size / 8)).
};

/// @brief Checks @p args without touching the device.
/// @param args The arguments.
/// @return Ok; `errc::invalid_argument` naming the bad field and the accepted values; or
///         `errc::invalid_config` listing the built configurations when (head_dim, dtype) was
///         not built.
[[nodiscard]] status can_implement(const paged_decode_args& args);

/// @brief The split plan for @p args on the device that holds `args.kv.k` (the current device
/// when that is not device memory).
///
/// The plan depends on that device's multiprocessor count, read once per device and cached, so
/// workspace_size() and run() agree whichever device is current when they are called.
/// @param args The arguments (valid per can_implement()).
/// @return The plan; the same for the same arguments and device.
[[nodiscard]] paged_decode_plan plan(const paged_decode_args& args);

/// @brief Workspace bytes run() needs for @p args (planned for the device of `args.kv.k`).
/// @param args The arguments (valid per can_implement()).
/// @return 0 with one split, else room for the partial outputs and log-sum-exps.
[[nodiscard]] std::size_t workspace_size(const paged_decode_args& args);

/// @brief Enqueues decode attention (and the split merge) on @p stream.
/// @param args The arguments.
/// @param workspace Device memory of at least workspace_size() bytes, 256-byte aligned (may be
///        null when that is 0).
/// @param stream The stream.
/// @return Ok; the can_implement() error; `errc::invalid_argument` for a missing workspace; or
///         `errc::device_error` carrying the CUDA launch error.
[[nodiscard]] status run(const paged_decode_args& args, void* workspace, cudaStream_t stream);

}  // namespace kvkit
