// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief `merge_states`: merges two partial attention results over disjoint K/V ranges (for
/// example a shared prefix and each sequence's own suffix) into the result over their union.
///
/// `o = (e^{lse_a} o_a + e^{lse_b} o_b) / (e^{lse_a} + e^{lse_b})`, natural-log LSE, as
/// reference_merge_states(); a row whose two LSEs are both `-inf` becomes zeros with `-inf`.

#include <kvkit/error.hpp>
#include <kvkit/kernel_registry.hpp>

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kvkit {

/// @brief Arguments of merge_states. All pointers are device pointers, 16-byte aligned.
struct merge_states_args {
  const void* o_a = nullptr;            ///< First output, `[rows][head_dim]`.
  const float* lse_a = nullptr;         ///< Its log-sum-exp, `[rows]`.
  const void* o_b = nullptr;            ///< Second output, `[rows][head_dim]`.
  const float* lse_b = nullptr;         ///< Its log-sum-exp, `[rows]`.
  void* o = nullptr;                    ///< Merged output (may alias #o_a or #o_b).
  float* lse = nullptr;                 ///< Merged log-sum-exp (may alias; may be null).
  std::uint64_t rows = 0;               ///< Rows (tokens x query heads); 0 is a no-op.
  std::uint32_t head_dim = 128;         ///< Elements per row (a built configuration).
  cuda_dtype dtype = cuda_dtype::bf16;  ///< Element type of the outputs.
};

/// @brief Checks @p args without touching the device.
/// @param args The arguments.
/// @return Ok, `errc::invalid_argument` naming the bad field, or `errc::invalid_config` listing
///         the built configurations.
[[nodiscard]] status can_implement(const merge_states_args& args);

/// @brief Workspace bytes needed by run().
/// @param args The arguments.
/// @return Always 0.
[[nodiscard]] std::size_t workspace_size(const merge_states_args& args) noexcept;

/// @brief Enqueues the merge on @p stream.
/// @param args The arguments.
/// @param workspace Unused (may be null).
/// @param stream The stream.
/// @return Ok, the can_implement() error, or `errc::device_error` carrying the launch error.
[[nodiscard]] status run(const merge_states_args& args, void* workspace, cudaStream_t stream);

}  // namespace kvkit
