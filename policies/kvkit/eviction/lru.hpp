// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `lru_eviction`: least recently released block first, O(1) with intrusive index links.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/detail/assert.hpp>
#include <kvkit/eviction/detail/intrusive_list.hpp>
#include <kvkit/types.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kvkit {

/// @brief Evicts the block that became evictable longest ago.
///
/// A doubly linked list threaded through two flat `uint32_t` arrays (8 bytes per block): insert
/// appends at the most recent end, victim takes the least recent end, erase unlinks; all O(1) and
/// free of heap allocation. Because a cache releases a finishing sequence's blocks tail first and a
/// parent is referenced whenever its child is, a parent always sits after its children in this
/// list: the victim is always a leaf of the prefix tree.
class lru_eviction {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "lru";

  /// @brief Makes an empty policy for a pool of @p capacity blocks.
  /// @param capacity Blocks in the pool.
  explicit lru_eviction(std::uint32_t capacity) : list_(capacity) {}

  /// @brief Block @p b became evictable: it goes to the most recent end.
  /// @param b A block not in the policy.
  void insert(block_id b) noexcept {
    KVKIT_ASSERT(!contains(b), "lru_eviction::insert: block already evictable");
    list_.push_back(b);
  }

  /// @brief Block @p b stops being evictable.
  /// @param b A block in the policy.
  void erase(block_id b) noexcept {
    KVKIT_ASSERT(contains(b), "lru_eviction::erase: block not evictable");
    list_.erase(b);
  }

  /// @brief Removes and returns the least recently inserted block.
  /// @return The block, or `invalid_block` when empty.
  [[nodiscard]] block_id victim() noexcept { return list_.pop_front(); }

  /// @brief Starts loading the links erase(@p b) reads.
  /// @param b A block id.
  void prefetch(block_id b) const noexcept { list_.prefetch(b); }

  /// @brief Evictable blocks.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return list_.size(); }

  /// @brief Whether @p b is evictable.
  /// @param b A block id.
  /// @return True when @p b is in the list.
  [[nodiscard]] bool contains(block_id b) const noexcept { return list_.contains(b); }

  /// @brief Bytes of bookkeeping.
  /// @return 8 bytes per block.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept { return list_.bytes(); }

 private:
  detail::intrusive_list list_;
};

static_assert(eviction_policy<lru_eviction>);
static_assert(eviction_has_prefetch<lru_eviction>);

}  // namespace kvkit
