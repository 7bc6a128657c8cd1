// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `lfu_eviction`: least frequently used first, with dynamic aging (LFU-DA), O(log n).
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

/// @brief Evicts the leaf block with the lowest aged frequency: LFU with dynamic aging (LFU-DA).
///
/// Every block counts its accesses (`touch`: each hit and the commit that registers it); the count
/// is reset when the block's content is gone (`forget`). A candidate's key is `L + frequency`,
/// where `L` (the age) is the key of the last victim, fixed when the block becomes a candidate (or
/// is touched while one); ties go to the block that became a candidate first. Because `L` grows as
/// blocks are evicted, a block that was hot long ago loses to blocks used moderately but recently:
/// popularity fades instead of pinning the cache forever, which plain LFU does.
///
/// Choose it over @ref kvkit::lru_eviction when a few prefixes are reused far more often than the
/// rest but not back to back (system prompts among one-off chats), so recency alone would push
/// them out between uses.
///
/// Candidates are leaves only (`leaves_only`): a frequency order may rank a parent below its
/// children, and offering only leaves keeps every eviction to one block. A binary min-heap with a
/// position array, all in flat arrays sized at construction (28 bytes per block): insert, erase,
/// victim and touch are O(log n) and never allocate.
class lfu_eviction {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "lfu";
  /// @brief The cache offers only leaf blocks (see @ref kvkit::eviction_policy).
  static constexpr bool leaves_only = true;

  /// @brief Makes an empty policy for a pool of @p capacity blocks; every frequency is 0.
  /// @param capacity Blocks in the pool.
  explicit lfu_eviction(std::uint32_t capacity)
      : heap_(capacity), key_(capacity, 0), order_(capacity, 0), freq_(capacity, 0) {}

  /// @brief Block @p b became a candidate, with key `age() + frequency(b)`.
  /// @param b A block not in the policy.
  void insert(block_id b) noexcept {
    KVKIT_ASSERT(!contains(b), "lfu_eviction::insert: block already evictable");
    set_key(b);
    heap_.push(b, less());
  }

  /// @brief Block @p b stops being a candidate.
  /// @param b A block in the policy.
  void erase(block_id b) noexcept {
    KVKIT_ASSERT(contains(b), "lfu_eviction::erase: block not evictable");
    heap_.erase(b, less());
  }

  /// @brief Removes and returns the candidate with the lowest key; its key becomes the age.
  /// @return The block, or `invalid_block` when empty.
  [[nodiscard]] block_id victim() noexcept {
    const block_id b = heap_.top();
    if (b != invalid_block) {
      age_ = key_[b];
      heap_.erase(b, less());
    }
    return b;
  }

  /// @brief Counts an access to @p b; when @p b is a candidate its key is recomputed.
  /// @param b A block id.
  /// @param info The access (unused: the order depends on counts and the age only).
  void touch(block_id b, const access_info& info) noexcept {
    (void)info;
    if (freq_[b] != max_frequency)
      ++freq_[b];
    if (heap_.contains(b)) {
      set_key(b);
      heap_.update(b, less());
    }
  }

  /// @brief The content of @p b is gone: its frequency restarts at 0.
  /// @param b A block id.
  void forget(block_id b) noexcept { freq_[b] = 0; }

  /// @brief Candidates.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return heap_.size(); }

  /// @brief Whether @p b is a candidate.
  /// @param b A block id.
  /// @return True when @p b is in the heap.
  [[nodiscard]] bool contains(block_id b) const noexcept { return heap_.contains(b); }

  /// @brief Accesses counted for @p b since it was last forgotten.
  /// @param b A block id.
  /// @return The count (saturates at 2^32 - 1).
  [[nodiscard]] std::uint32_t frequency(block_id b) const noexcept { return freq_[b]; }

  /// @brief The age `L`: the key of the last victim (0 before the first).
  /// @return The age.
  [[nodiscard]] std::uint64_t age() const noexcept { return age_; }

  /// @brief Bytes of bookkeeping.
  /// @return 28 bytes per block.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return heap_.bytes() + (key_.size() + order_.size()) * sizeof(std::uint64_t) +
           freq_.size() * sizeof(std::uint32_t);
  }

 private:
  /// @cond KVKIT_PRIVATE
  static constexpr std::uint32_t max_frequency = 0xFFFFFFFFu;

  void set_key(block_id b) noexcept {
    key_[b] = age_ + freq_[b];
    order_[b] = ++clock_;
  }
  struct by_key {
    const lfu_eviction* self;
    bool operator()(block_id a, block_id b) const noexcept {
      const std::uint64_t ka = self->key_[a];
      const std::uint64_t kb = self->key_[b];
      return ka != kb ? ka < kb : self->order_[a] < self->order_[b];
    }
  };
  [[nodiscard]] by_key less() const noexcept { return by_key{this}; }

  detail::indexed_min_heap heap_;
  std::vector<std::uint64_t> key_;
  std::vector<std::uint64_t> order_;
  std::vector<std::uint32_t> freq_;
  std::uint64_t age_ = 0;
  std::uint64_t clock_ = 0;
  /// @endcond
};

static_assert(eviction_policy<lfu_eviction>);
static_assert(eviction_has_leaves_only<lfu_eviction>);
static_assert(eviction_has_touch<lfu_eviction>);
static_assert(eviction_has_forget<lfu_eviction>);

}  // namespace kvkit
