// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `sieve_eviction`: SIEVE, a scan-resistant FIFO with a visited bit and a moving hand;
/// amortised O(1).
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/detail/assert.hpp>
#include <kvkit/eviction/detail/intrusive_list.hpp>
#include <kvkit/types.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace kvkit {

/// @brief Evicts with SIEVE (Zhang et al., NSDI 2024): blocks that were used once go before
/// blocks that were reused, so a scan of one-off prompts does not flush a hot prefix.
///
/// Candidates sit in one FIFO list, oldest first, each with a visited bit. A block is visited
/// when it is touched again after the touch that registered it (a hit, while cached), or touched
/// while it is a candidate; it keeps the bit when it leaves the list and comes back. victim()
/// moves a hand from where it last stopped toward the newest end (wrapping to the oldest): it
/// clears the bit of each visited block it passes and evicts the first unvisited one, leaving the
/// hand on that block's newer neighbour. forget() clears the block's state.
///
/// Choose it over @ref kvkit::lru_eviction when traffic mixes a reused working set with many
/// one-off requests (the anti-pattern that empties an LRU cache); with no one-off traffic it
/// behaves close to LRU.
///
/// Candidates are leaves only (`leaves_only`): the hand may reach an unvisited parent before its
/// children, and offering only leaves keeps every eviction to one block. Flat arrays (9 bytes per
/// block); insert, erase, touch and forget are O(1), victim amortised O(1) (each step of the hand
/// clears a bit set by an earlier touch); nothing allocates.
class sieve_eviction {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "sieve";
  /// @brief The cache offers only leaf blocks (see @ref kvkit::eviction_policy).
  static constexpr bool leaves_only = true;

  /// @brief Makes an empty policy for a pool of @p capacity blocks.
  /// @param capacity Blocks in the pool.
  explicit sieve_eviction(std::uint32_t capacity) : list_(capacity), flags_(capacity, 0) {}

  /// @brief Block @p b became a candidate: it goes to the newest end, visited if it was hit.
  /// @param b A block not in the policy.
  void insert(block_id b) noexcept {
    KVKIT_ASSERT(!contains(b), "sieve_eviction::insert: block already evictable");
    list_.push_back(b);
  }

  /// @brief Block @p b stops being a candidate; a hand on it moves to its newer neighbour.
  /// @param b A block in the policy.
  void erase(block_id b) noexcept {
    KVKIT_ASSERT(contains(b), "sieve_eviction::erase: block not evictable");
    if (hand_ == b)
      hand_ = list_.next(b);
    list_.erase(b);
  }

  /// @brief Moves the hand past visited candidates (clearing their bits) and removes the first
  /// unvisited one.
  /// @return The block, or `invalid_block` when empty.
  [[nodiscard]] block_id victim() noexcept {
    if (list_.size() == 0)
      return invalid_block;
    block_id b = hand_ != invalid_block ? hand_ : list_.front();
    while ((flags_[b] & visited) != 0) {
      flags_[b] &= static_cast<std::uint8_t>(~visited);
      const block_id n = list_.next(b);
      b = n != invalid_block ? n : list_.front();
    }
    hand_ = b;  // erase() moves it to b's newer neighbour (or to the oldest end next time)
    erase(b);
    return b;
  }

  /// @brief An access to @p b: the first since @p b was forgotten registers it, any later one
  /// marks it visited.
  /// @param b A block id.
  /// @param info The access (unused).
  void touch(block_id b, const access_info& info) noexcept {
    (void)info;
    flags_[b] |= (flags_[b] & seen) != 0 || contains(b) ? visited : seen;
  }

  /// @brief The content of @p b is gone: its visited bit and registration are cleared.
  /// @param b A block id.
  void forget(block_id b) noexcept { flags_[b] = 0; }

  /// @brief Whether @p b is marked visited.
  /// @param b A block id.
  /// @return True when its visited bit is set.
  [[nodiscard]] bool visited_bit(block_id b) const noexcept { return (flags_[b] & visited) != 0; }

  /// @brief Candidates.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return list_.size(); }

  /// @brief Whether @p b is a candidate.
  /// @param b A block id.
  /// @return True when @p b is in the list.
  [[nodiscard]] bool contains(block_id b) const noexcept { return list_.contains(b); }

  /// @brief Bytes of bookkeeping.
  /// @return 9 bytes per block.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return list_.bytes() + flags_.size();
  }

 private:
  static constexpr std::uint8_t seen = 1;
  static constexpr std::uint8_t visited = 2;

  detail::intrusive_list list_;
  std::vector<std::uint8_t> flags_;
  block_id hand_ = invalid_block;
};

static_assert(eviction_policy<sieve_eviction>);
static_assert(eviction_has_leaves_only<sieve_eviction>);
static_assert(eviction_has_touch<sieve_eviction>);
static_assert(eviction_has_forget<sieve_eviction>);

}  // namespace kvkit
