// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief `copy_blocks`: copies many (source, destination) blocks, every layer's K and V, in one
/// launch (copy on write of shared blocks, defragmentation, swap-in staging).
///
/// The copy moves bytes, so it is compiled once and serves every head dimension and dtype.

#include <kvkit/error.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/types.hpp>

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kvkit {

/// @brief One block copy: block @ref src to block @ref dst, in every layer's K and V pool.
struct block_copy {
  block_id src = 0;  ///< Source block.
  block_id dst = 0;  ///< Destination block.
};

/// @brief Arguments of copy_blocks, for a storage laid out as @ref kvkit::kv_layout describes.
struct copy_blocks_args {
  /// @brief Start of the whole storage (device memory, all layers, K and V).
  void* base = nullptr;
  /// @brief The storage's layout; the copy reads `num_layers`, `num_blocks`, `block_size`,
  /// `num_kv_heads`, `head_dim` and `type`.
  kv_layout layout{};
  /// @brief `num_pairs` pairs in device memory. Block ids must be below `layout.num_blocks`,
  /// destinations distinct, and no block both a source and a destination (the kernel cannot
  /// check device-resident pairs; copy_blocks_inline() checks host-side pairs).
  const block_copy* pairs = nullptr;
  std::uint32_t num_pairs = 0;  ///< Pairs to copy (0 is a no-op).
};

/// @brief Checks @p args without touching the device.
/// @param args The arguments.
/// @return Ok, or `errc::invalid_argument` / `errc::invalid_config` naming the bad field.
[[nodiscard]] status can_implement(const copy_blocks_args& args);

/// @brief Workspace bytes needed by run().
/// @param args The arguments.
/// @return Always 0.
[[nodiscard]] std::size_t workspace_size(const copy_blocks_args& args) noexcept;

/// @brief Enqueues the copy on @p stream.
/// @param args The arguments.
/// @param workspace Unused (may be null).
/// @param stream The stream.
/// @return Ok, the can_implement() error, or `errc::device_error` carrying the launch error.
[[nodiscard]] status run(const copy_blocks_args& args, void* workspace, cudaStream_t stream);

/// @brief Largest number of pairs copy_blocks_inline() takes in one launch.
inline constexpr std::uint32_t max_inline_block_copies = 256;

/// @brief Copies up to @ref max_inline_block_copies pairs held in host memory: the pairs travel
/// as kernel parameters, so no device buffer, no host-to-device copy and no synchronisation are
/// needed (what `device_storage::copy_blocks` uses).
/// @param base Start of the whole storage (device memory).
/// @param layout The storage's layout.
/// @param pairs Host array of @p num_pairs pairs.
/// @param num_pairs Pairs (at most @ref max_inline_block_copies).
/// @param stream The stream.
/// @return Ok, or an error naming the bad argument or an `errc::device_error` carrying the launch
/// error.
[[nodiscard]] status copy_blocks_inline(void* base, const kv_layout& layout,
                                        const block_copy* pairs, std::uint32_t num_pairs,
                                        cudaStream_t stream);

}  // namespace kvkit
