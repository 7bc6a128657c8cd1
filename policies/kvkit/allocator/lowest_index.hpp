// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `lowest_index_allocator`: always hands out the lowest free block id (hierarchical
/// 64-bit bitmap).
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/types.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace kvkit {

/// @brief Hands out the lowest free block id, so the blocks in use stay packed at the start of
/// the pool; O(log64 capacity) allocate and deallocate, about 1 bit per block.
///
/// Choose it over @ref kvkit::free_list_allocator when the footprint matters more than reusing
/// the warmest block: the high-water mark (1 + highest id in use, see high_water_mark()) stays as
/// low as the live block count allows, so a pool can be trimmed or a device copy, snapshot or
/// transfer limited to the prefix `[0, high_water_mark())`.
///
/// State: one bit per block (set = free) in leaf words of 64 bits, and two summaries above them,
/// each a tree of 64-bit words with one bit per word below: one says "this word has a free
/// block" (allocate() descends it with `std::countr_zero`), the other "this word has a block in
/// use" (high_water_mark() descends it with `std::countl_zero`). A pool of up to 64 blocks is
/// one word, up to 4,096 two levels, up to 262,144 three levels. No operation allocates memory.
class lowest_index_allocator {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "lowest_index";

  /// @brief Makes an allocator whose every block in `[0, capacity)` is free.
  /// @param capacity Blocks in the pool.
  explicit lowest_index_allocator(std::uint32_t capacity);

  /// @brief Takes the lowest free block.
  /// @return The lowest free block id, or `invalid_block` when none is free.
  [[nodiscard]] block_id allocate() noexcept;

  /// @brief Returns a block to the pool.
  /// @param b A block taken by allocate() and not yet returned (checked in debug builds).
  void deallocate(block_id b) noexcept;

  /// @brief Free blocks.
  /// @return The count.
  [[nodiscard]] std::uint32_t free_count() const noexcept { return free_; }

  /// @brief Blocks in the pool.
  /// @return The capacity.
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }

  /// @brief One more than the highest block id in use: every block in use lies in
  /// `[0, high_water_mark())`. O(log64 capacity).
  /// @return 1 + the highest id in use, or 0 when no block is in use.
  [[nodiscard]] std::uint32_t high_water_mark() const noexcept;

  /// @brief Whether block @p b is free.
  /// @param b A block id in `[0, capacity())`.
  /// @return True when @p b is free.
  [[nodiscard]] bool is_free(block_id b) const noexcept;

  /// @brief Bytes of bookkeeping.
  /// @return The bytes of the leaf words and both summaries (about capacity / 8).
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return (leaf_.size() + free_summary_.size() + used_summary_.size()) * sizeof(std::uint64_t);
  }

 private:
  // Summary levels above the leaf words; 2^32 blocks need 5 (2^26 leaf words).
  static constexpr std::size_t max_levels = 6;

  [[nodiscard]] std::uint64_t full_mask(std::uint32_t word) const noexcept;
  void set_up(std::vector<std::uint64_t>& summary, std::uint32_t word) noexcept;
  void clear_up(std::vector<std::uint64_t>& summary, std::uint32_t word) noexcept;

  std::uint32_t capacity_ = 0;
  std::uint32_t free_ = 0;
  std::uint32_t levels_ = 0;                        // summary levels (0: one leaf word)
  std::uint64_t last_mask_ = 0;                     // valid bits of the last leaf word
  std::array<std::uint32_t, max_levels> offset_{};  // first word of summary level k + 1
  std::vector<std::uint64_t> leaf_;                 // bit set = block free
  std::vector<std::uint64_t> free_summary_;         // bit set = child word has a free block
  std::vector<std::uint64_t> used_summary_;         // bit set = child word has a used block
};

}  // namespace kvkit

#include <kvkit/allocator/detail/lowest_index_impl.hpp>

namespace kvkit {
static_assert(block_allocator<lowest_index_allocator>);
}  // namespace kvkit
