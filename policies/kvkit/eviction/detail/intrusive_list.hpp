// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Internals of the recency-ordered eviction policies: doubly linked lists of block ids
/// threaded through two flat `uint32_t` arrays (8 bytes per block). Not a public header.
#pragma once

#include <kvkit/detail/flat_array.hpp>
#include <kvkit/types.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvkit::detail {

/// @brief The two ends of one list threaded through @ref kvkit::detail::intrusive_links.
///
/// Both are `invalid_block` exactly when the list is empty.
struct list_ends {
  /// @brief The oldest block (the front), or `invalid_block` when empty.
  block_id head = invalid_block;
  /// @brief The newest block (the back), or `invalid_block` when empty.
  block_id tail = invalid_block;
};

/// @brief The `prev` and `next` links of every block of a pool, side by side in one flat array
/// sized at construction, shared by any number of disjoint lists (each a
/// @ref kvkit::detail::list_ends).
///
/// A block is in at most one list; a block in none has both links set to a reserved value, so
/// membership is one load. Every operation is O(1), inline and never allocates. The caller keeps
/// the ends (and any count) and checks the preconditions.
class intrusive_links {
 public:
  /// @brief Makes the links of a pool of @p capacity blocks, none of them in a list.
  /// @param capacity Blocks in the pool.
  explicit intrusive_links(std::uint32_t capacity) : links_(capacity, link{unlinked, unlinked}) {}

  /// @brief Starts loading the links of @p b.
  /// @param b A block id below the capacity.
  void prefetch(block_id b) const noexcept { __builtin_prefetch(&links_[b]); }

  /// @brief Whether @p b is in a list.
  /// @param b A block id below the capacity.
  /// @return True when @p b is linked.
  [[nodiscard]] bool contains(block_id b) const noexcept { return links_[b].prev != unlinked; }

  /// @brief The block after @p b (toward the newest end) in its list.
  /// @param b A block in a list.
  /// @return The next block, or `invalid_block` when @p b is the newest.
  [[nodiscard]] block_id next(block_id b) const noexcept { return links_[b].next; }

  /// @brief The block before @p b (toward the oldest end) in its list.
  /// @param b A block in a list.
  /// @return The previous block, or `invalid_block` when @p b is the oldest.
  [[nodiscard]] block_id prev(block_id b) const noexcept { return links_[b].prev; }

  /// @brief Inserts @p b just before @p pos in @p list.
  /// @param list The ends of the list holding @p pos.
  /// @param pos A block in @p list.
  /// @param b A block in no list.
  void insert_before(list_ends& list, block_id pos, block_id b) noexcept {
    const block_id p = links_[pos].prev;
    links_[b] = link{p, pos};
    links_[pos].prev = b;
    if (p != invalid_block) {
      links_[p].next = b;
    } else {
      list.head = b;
    }
  }

  /// @brief Appends @p b at the newest end of @p list.
  /// @param list The list's ends.
  /// @param b A block in no list.
  void push_back(list_ends& list, block_id b) noexcept {
    links_[b] = link{list.tail, invalid_block};
    if (list.tail != invalid_block) {
      links_[list.tail].next = b;
    } else {
      list.head = b;
    }
    list.tail = b;
  }

  /// @brief Removes @p b from @p list, wherever it is.
  /// @param list The ends of the list holding @p b.
  /// @param b A block in @p list.
  void unlink(list_ends& list, block_id b) noexcept {
    const block_id p = links_[b].prev;
    const block_id n = links_[b].next;
    if (p != invalid_block) {
      links_[p].next = n;
    } else {
      list.head = n;
    }
    if (n != invalid_block) {
      links_[n].prev = p;
    } else {
      list.tail = p;
    }
    links_[b] = link{unlinked, unlinked};
  }

  /// @brief Bytes of the link arrays.
  /// @return 8 bytes per block.
  [[nodiscard]] std::size_t bytes() const noexcept { return links_.bytes(); }

 private:
  static constexpr block_id unlinked = invalid_block - 1;

  /// A block's two links side by side: one cache line serves both.
  struct link {
    block_id prev;
    block_id next;
  };

  flat_array<link> links_;
};

/// @brief One list of block ids, oldest first, with its own links and count: the order of
/// @ref kvkit::lru_eviction, @ref kvkit::ttl_eviction and @ref kvkit::sieve_eviction.
///
/// One flat array of link pairs (8 bytes per block); every operation is O(1), inline and never
/// allocates. The caller checks the preconditions.
class intrusive_list {
 public:
  /// @brief Makes an empty list over a pool of @p capacity blocks.
  /// @param capacity Blocks in the pool.
  explicit intrusive_list(std::uint32_t capacity) : links_(capacity) {}

  /// @brief Whether @p b is in the list.
  /// @param b A block id below the capacity.
  /// @return True when @p b is in the list.
  [[nodiscard]] bool contains(block_id b) const noexcept { return links_.contains(b); }

  /// @brief Starts loading the links of @p b.
  /// @param b A block id below the capacity.
  void prefetch(block_id b) const noexcept { links_.prefetch(b); }

  /// @brief Blocks in the list.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }

  /// @brief The oldest block.
  /// @return The block, or `invalid_block` when empty.
  [[nodiscard]] block_id front() const noexcept { return ends_.head; }

  /// @brief The block after @p b (toward the newest end).
  /// @param b A block in the list.
  /// @return The next block, or `invalid_block` when @p b is the newest.
  [[nodiscard]] block_id next(block_id b) const noexcept { return links_.next(b); }

  /// @brief Appends @p b at the newest end.
  /// @param b A block not in the list.
  void push_back(block_id b) noexcept {
    links_.push_back(ends_, b);
    ++size_;
  }

  /// @brief Removes @p b, wherever it is.
  /// @param b A block in the list.
  void erase(block_id b) noexcept {
    links_.unlink(ends_, b);
    --size_;
  }

  /// @brief Removes and returns the oldest block.
  /// @return The block, or `invalid_block` when empty.
  [[nodiscard]] block_id pop_front() noexcept {
    const block_id b = ends_.head;
    if (b != invalid_block)
      erase(b);
    return b;
  }

  /// @brief Bytes of the link arrays.
  /// @return 8 bytes per block.
  [[nodiscard]] std::size_t bytes() const noexcept { return links_.bytes(); }

 private:
  intrusive_links links_;
  list_ends ends_;
  std::uint32_t size_ = 0;
};

}  // namespace kvkit::detail
