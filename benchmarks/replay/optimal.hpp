// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Belady's offline-optimal eviction for kvkit-replay (--optimal): when a block must go, the
// candidate whose next use lies furthest in the future goes first.
//
// A replay knows the whole trace before it starts, so the next use of every block can be computed
// up front (next_use_plan): for each request and each block it commits, the rank (position in
// replay order) of the next request that will look the block up, or `never`. The replay writes
// that rank into a per-block array after each admission, while the request holds the block, and
// optimal_eviction reads it when the block becomes a candidate.
//
// Identity of a block: its chained key (tenant salt, session, tokens of the block and of every
// block before it), the key under which the cache shares it. Mooncake traces: one hash id per
// block, chained over the hash ids before it.
//
// A lookup: request j looks block b up when b is one of j's eligible prompt blocks (those that can
// hit). A request that cannot fit the pool even alone (trace blocks, query block and output blocks
// above the capacity) is rejected by the replay and looks nothing up, so it is left out.
//
// Why leaves only: the blocks of one request form a chain, so a child's next use is never before
// its parent's. Among the cached, unreferenced blocks the furthest next use is therefore always
// found at a leaf (a candidate's subtree holds only candidates), and two leaves never share a
// finite next use (one request's blocks are one chain, and a chain has one leaf). Offering only
// leaves (`leaves_only`) evicts exactly what Belady's rule with ties broken towards the deeper
// block would, one block at a time, and never orphans a block.
//
// Optimal in what sense. Sequential replays: the hits a request gets are the cached blocks of its
// chain, it must hold all its blocks while it runs, and every miss is cached afterwards; Belady's
// exchange argument carries over, so no eviction order gets more block hits (tests/replay checks
// it against an exhaustive search on small traces, and against every shipped policy). Token hits
// weigh a partial last block by its length; the bound is on blocks, and the token figure is that
// run's. Overlapping replays apply the same rule with next uses in arrival order; there an eviction
// can also change which requests wait for blocks, so the result is the Belady policy's, not a
// proven bound. Partial-block reuse (radix and session matchers on token traces) is not planned
// for: the rule counts whole blocks.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/types.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvkit::replay {

/// Rank of a next use that never comes.
inline constexpr std::uint32_t never_used = std::numeric_limits<std::uint32_t>::max();

/// Belady's rule as an eviction policy: the leaf candidate with the furthest next use goes first.
///
/// The next use of each block is read, when the block becomes a candidate, from an array shared
/// with whoever knows the future (the replay fills it while the block is referenced). Without one
/// (constructed from the capacity alone) every block counts as never used again, and candidates go
/// in insertion order. A binary max-heap with a position array: insert, erase and victim O(log n).
class optimal_eviction {
 public:
  /// Policy name used in replays.
  static constexpr std::string_view name = "optimal";
  /// The cache offers only leaf blocks: the furthest next use is always at a leaf.
  static constexpr bool leaves_only = true;

  /// Settings: the shared next-use array, indexed by block id (rank of the next lookup, or
  /// never_used).
  struct options {
    std::shared_ptr<std::vector<std::uint32_t>> next_use{};  ///< Sized to the pool by the policy.
  };

  /// An empty policy without knowledge of the future.
  explicit optimal_eviction(std::uint32_t capacity) : optimal_eviction(capacity, options{}) {}

  /// An empty policy reading next uses from @p o.next_use (resized to @p capacity blocks).
  optimal_eviction(std::uint32_t capacity, const options& o)
      : next_(o.next_use ? o.next_use : std::make_shared<std::vector<std::uint32_t>>()),
        key_(capacity, 0),
        stamp_(capacity, 0),
        pos_(capacity, absent) {
    next_->assign(capacity, never_used);
    heap_.reserve(capacity);
  }

  /// Block @p b became a candidate; its key is its next use now.
  void insert(block_id b) {
    key_[b] = (*next_)[b];
    stamp_[b] = ++clock_;
    pos_[b] = static_cast<std::uint32_t>(heap_.size());
    heap_.push_back(b);
    up(pos_[b]);
  }

  /// Block @p b stops being a candidate.
  void erase(block_id b) noexcept {
    const std::uint32_t i = pos_[b];
    pos_[b] = absent;
    const block_id last = heap_.back();
    heap_.pop_back();
    if (last == b)
      return;
    heap_[i] = last;
    pos_[last] = i;
    if (!up(i))
      down(i);
  }

  /// Removes and returns the candidate with the furthest next use (the first inserted among
  /// blocks never used again), or `invalid_block` when empty.
  [[nodiscard]] block_id victim() noexcept {
    if (heap_.empty())
      return invalid_block;
    const block_id b = heap_.front();
    erase(b);
    return b;
  }

  /// Candidates.
  [[nodiscard]] std::uint32_t size() const noexcept {
    return static_cast<std::uint32_t>(heap_.size());
  }

  /// Whether @p b is a candidate.
  [[nodiscard]] bool contains(block_id b) const noexcept { return pos_[b] != absent; }

  /// The key @p b was inserted with (its next use then).
  [[nodiscard]] std::uint32_t key(block_id b) const noexcept { return key_[b]; }

  /// Bytes of bookkeeping: 20 per block, plus the shared next-use array (4 per block).
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return key_.size() * sizeof(std::uint32_t) + stamp_.size() * sizeof(std::uint64_t) +
           pos_.size() * sizeof(std::uint32_t) + heap_.capacity() * sizeof(block_id) +
           next_->size() * sizeof(std::uint32_t);
  }

 private:
  static constexpr std::uint32_t absent = std::numeric_limits<std::uint32_t>::max();

  /// Whether @p a goes before @p b: later next use, then earlier insertion.
  [[nodiscard]] bool before(block_id a, block_id b) const noexcept {
    return key_[a] != key_[b] ? key_[a] > key_[b] : stamp_[a] < stamp_[b];
  }
  void place(std::uint32_t i, block_id b) noexcept {
    heap_[i] = b;
    pos_[b] = i;
  }
  bool up(std::uint32_t i) noexcept {
    const block_id b = heap_[i];
    const std::uint32_t start = i;
    while (i > 0) {
      const std::uint32_t p = (i - 1) / 2;
      if (!before(b, heap_[p]))
        break;
      place(i, heap_[p]);
      i = p;
    }
    place(i, b);
    return i != start;
  }
  void down(std::uint32_t i) noexcept {
    const block_id b = heap_[i];
    const auto n = static_cast<std::uint32_t>(heap_.size());
    while (true) {
      std::uint32_t c = 2 * i + 1;
      if (c >= n)
        break;
      if (c + 1 < n && before(heap_[c + 1], heap_[c]))
        ++c;
      if (!before(heap_[c], b))
        break;
      place(i, heap_[c]);
      i = c;
    }
    place(i, b);
  }

  std::shared_ptr<std::vector<std::uint32_t>> next_;
  std::vector<std::uint32_t> key_;
  std::vector<std::uint64_t> stamp_;
  std::vector<std::uint32_t> pos_;
  std::vector<block_id> heap_;
  std::uint64_t clock_ = 0;
};

static_assert(eviction_policy<optimal_eviction>);

}  // namespace kvkit::replay
