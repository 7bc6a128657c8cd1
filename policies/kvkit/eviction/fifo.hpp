// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `fifo_eviction`: first registered, first evicted, O(log n).
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/detail/assert.hpp>
#include <kvkit/eviction/detail/indexed_heap.hpp>
#include <kvkit/types.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace kvkit {

/// @brief Evicts the leaf block whose content was registered longest ago, however often it was
/// hit since.
///
/// A block's key is the order of its first access since its content was last forgotten: a cache
/// touches a block first when commit() registers it, so the key is its registration order (a
/// block that becomes a candidate without ever being touched is keyed when it is inserted). Hits
/// do not change the key. Choose it when content has a natural lifetime (a rolling window of
/// documents or sessions) or as the baseline that ignores reuse; for reuse-aware orders see
/// @ref kvkit::lru_eviction, @ref kvkit::lfu_eviction and @ref kvkit::sieve_eviction.
///
/// Candidates are leaves only (`leaves_only`): an older parent is offered after its children are
/// gone, so every eviction frees one block. A binary min-heap with a position array in flat arrays
/// sized at construction (16 bytes per block): insert, erase and victim are O(log n), touch and
/// forget O(1); nothing allocates.
class fifo_eviction {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "fifo";
  /// @brief The cache offers only leaf blocks (see @ref kvkit::eviction_policy).
  static constexpr bool leaves_only = true;

  /// @brief Makes an empty policy for a pool of @p capacity blocks.
  /// @param capacity Blocks in the pool.
  explicit fifo_eviction(std::uint32_t capacity) : heap_(capacity), stamp_(capacity, unstamped) {}

  /// @brief Block @p b became a candidate; it is keyed now if it was never touched.
  /// @param b A block not in the policy.
  void insert(block_id b) noexcept {
    KVKIT_ASSERT(!contains(b), "fifo_eviction::insert: block already evictable");
    if (stamp_[b] == unstamped)
      stamp_[b] = ++clock_;
    heap_.push(b, less());
  }

  /// @brief Block @p b stops being a candidate (it keeps its key).
  /// @param b A block in the policy.
  void erase(block_id b) noexcept {
    KVKIT_ASSERT(contains(b), "fifo_eviction::erase: block not evictable");
    heap_.erase(b, less());
  }

  /// @brief Removes and returns the candidate registered first.
  /// @return The block, or `invalid_block` when empty.
  [[nodiscard]] block_id victim() noexcept {
    const block_id b = heap_.top();
    if (b != invalid_block)
      heap_.erase(b, less());
    return b;
  }

  /// @brief An access to @p b: the first one since @p b was forgotten fixes its key.
  /// @param b A block id.
  /// @param info The access (unused: the policy keeps its own order of first accesses).
  void touch(block_id b, const access_info& info) noexcept {
    (void)info;
    if (stamp_[b] == unstamped)
      stamp_[b] = ++clock_;
  }

  /// @brief The content of @p b is gone: its next access or insertion keys it anew.
  /// @param b A block not in the policy.
  void forget(block_id b) noexcept {
    KVKIT_ASSERT(!contains(b), "fifo_eviction::forget: block still evictable");
    stamp_[b] = unstamped;
  }

  /// @brief Candidates.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return heap_.size(); }

  /// @brief Whether @p b is a candidate.
  /// @param b A block id.
  /// @return True when @p b is in the heap.
  [[nodiscard]] bool contains(block_id b) const noexcept { return heap_.contains(b); }

  /// @brief Bytes of bookkeeping.
  /// @return 16 bytes per block.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return heap_.bytes() + stamp_.size() * sizeof(std::uint64_t);
  }

 private:
  /// @cond KVKIT_PRIVATE
  static constexpr std::uint64_t unstamped = 0;

  struct by_stamp {
    const fifo_eviction* self;
    bool operator()(block_id a, block_id b) const noexcept {
      return self->stamp_[a] < self->stamp_[b];
    }
  };
  [[nodiscard]] by_stamp less() const noexcept { return by_stamp{this}; }

  detail::indexed_min_heap heap_;
  std::vector<std::uint64_t> stamp_;
  std::uint64_t clock_ = 0;
  /// @endcond
};

static_assert(eviction_policy<fifo_eviction>);
static_assert(eviction_has_leaves_only<fifo_eviction>);
static_assert(eviction_has_touch<fifo_eviction>);
static_assert(eviction_has_forget<fifo_eviction>);

}  // namespace kvkit
