// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `fifo_free_allocator`: hands out the block freed longest ago (a ring buffer of free ids).
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/detail/assert.hpp>
#include <kvkit/types.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace kvkit {

/// @brief Hands out the block that was freed longest ago (first freed, first reused); O(1)
/// allocate and deallocate, 4 bytes per block.
///
/// Choose it over @ref kvkit::free_list_allocator, which reuses the most recently freed (warmest)
/// block, when reuse should be spread evenly over the pool: every free block waits behind all
/// blocks freed before it, so a freed block's bytes stay untouched for as long as possible. That
/// makes a stale read of a freed block (a kernel given an outdated block table) far more likely to
/// see the old, recognisable contents or a poison pattern in tests, and spreads writes for wear or
/// temperature levelling. Initially blocks come out in ascending order, `0, 1, 2, ...`.
///
/// State: a ring buffer (queue) of the free block ids; allocate() pops its head, deallocate()
/// pushes at its tail. No operation allocates memory.
class fifo_free_allocator {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "fifo_free";

  /// @brief Makes an allocator whose every block in `[0, capacity)` is free, queued in ascending
  /// order.
  /// @param capacity Blocks in the pool.
  explicit fifo_free_allocator(std::uint32_t capacity) : ring_(capacity), count_(capacity) {
    for (std::uint32_t i = 0; i < capacity; ++i)
      ring_[i] = i;
  }

  /// @brief Takes the block freed longest ago.
  /// @return A block id, or `invalid_block` when none is free.
  [[nodiscard]] block_id allocate() noexcept {
    if (count_ == 0)
      return invalid_block;
    const block_id b = ring_[head_];
    head_ = head_ + 1 == ring_.size() ? 0 : head_ + 1;
    --count_;
    return b;
  }

  /// @brief Returns a block to the pool; it is handed out again after every block already free.
  /// @param b A block taken by allocate() and not yet returned.
  void deallocate(block_id b) noexcept {
    KVKIT_CHECK(count_ < ring_.size(), "fifo_free_allocator: more blocks returned than taken");
    KVKIT_ASSERT(b < ring_.size(), "fifo_free_allocator: block id out of range");
    const std::size_t n = ring_.size();
    const std::size_t end = std::size_t{head_} + count_;
    ring_[end >= n ? end - n : end] = b;
    ++count_;
  }

  /// @brief Free blocks.
  /// @return The count.
  [[nodiscard]] std::uint32_t free_count() const noexcept { return count_; }

  /// @brief Blocks in the pool.
  /// @return The capacity.
  [[nodiscard]] std::uint32_t capacity() const noexcept {
    return static_cast<std::uint32_t>(ring_.size());
  }

  /// @brief Bytes of bookkeeping.
  /// @return 4 bytes per block.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return ring_.size() * sizeof(block_id);
  }

 private:
  std::vector<block_id> ring_;  // free ids, oldest at head_, count_ of them (wrapping)
  std::uint32_t head_ = 0;
  std::uint32_t count_;
};

static_assert(block_allocator<fifo_free_allocator>);

}  // namespace kvkit
