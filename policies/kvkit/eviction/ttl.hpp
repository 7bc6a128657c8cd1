// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `ttl_eviction`: least recently used first, and blocks idle longer than a time to live
/// expire; O(1).
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/detail/assert.hpp>
#include <kvkit/eviction/detail/batched_clock.hpp>
#include <kvkit/eviction/detail/indexed_heap.hpp>
#include <kvkit/eviction/detail/intrusive_list.hpp>
#include <kvkit/types.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace kvkit {

/// @brief Settings of @ref kvkit::ttl_eviction.
struct ttl_options {
  /// @brief How long an unreferenced cached block may stay idle (since it was last touched or
  /// became evictable) before it expires; a negative value counts as 0. The default never
  /// expires.
  std::chrono::nanoseconds ttl = std::chrono::nanoseconds::max();
  /// @brief The clock, in nanoseconds from any fixed origin; it must not go backwards. Defaults
  /// to `std::chrono::steady_clock`; tests pass a manual clock.
  std::function<std::chrono::nanoseconds()> now = detail::steady_now;
};

/// @brief Evicts the least recently used block, and lets blocks idle longer than a time to live
/// expire, as a TTL'd key-value cache layer does.
///
/// An LRU list threaded through flat index arrays (as @ref kvkit::lru_eviction) plus each block's
/// last access time, set when the block is touched (hit or registered) and when it becomes a
/// candidate. A candidate idle for longer than `ttl_options::ttl` is expired: a cache never
/// returns it as a hit, and `prefix_cache::expire()` frees every expired block (`pop_expired()`
/// hands them out least recent first). Eviction under memory pressure is plain LRU, expired or
/// not. Every operation is O(1) (16 bytes per block) and reads the clock at most once; nothing
/// allocates.
///
/// Choose it when cached content goes stale with time (tool results, retrieved context) or when
/// memory held by idle prefixes should be returned even without pressure.
class ttl_eviction {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "ttl";
  /// @brief Settings type passed to `prefix_cache::create`.
  using options = ttl_options;

  /// @brief Makes an empty policy for a pool of @p capacity blocks that never expires blocks.
  /// @param capacity Blocks in the pool.
  explicit ttl_eviction(std::uint32_t capacity) : ttl_eviction(capacity, ttl_options{}) {}

  /// @brief Makes an empty policy for a pool of @p capacity blocks.
  /// @param capacity Blocks in the pool.
  /// @param opts Time to live and clock (an empty clock means `std::chrono::steady_clock`).
  ttl_eviction(std::uint32_t capacity, const ttl_options& opts)
      : ttl_(opts.ttl < std::chrono::nanoseconds::zero() ? std::chrono::nanoseconds::zero()
                                                         : opts.ttl),
        clock_(opts.now),
        list_(capacity),
        last_(capacity, 0) {}

  /// @brief Block @p b became a candidate: it goes to the most recent end, accessed now.
  /// @param b A block not in the policy.
  void insert(block_id b) {
    KVKIT_ASSERT(!contains(b), "ttl_eviction::insert: block already evictable");
    last_[b] = clock_.now();
    list_.push_back(b);
  }

  /// @brief Block @p b stops being a candidate.
  /// @param b A block in the policy.
  void erase(block_id b) noexcept {
    KVKIT_ASSERT(contains(b), "ttl_eviction::erase: block not evictable");
    list_.erase(b);
  }

  /// @brief Removes and returns the least recently used candidate, expired or not.
  /// @return The block, or `invalid_block` when empty.
  [[nodiscard]] block_id victim() noexcept { return list_.pop_front(); }

  /// @brief Records an access to @p b now; a candidate moves to the most recent end.
  /// @param b A block id.
  /// @param info The access (unused: the policy keeps time with its own clock).
  void touch(block_id b, const access_info& info) {
    (void)info;
    last_[b] = clock_.now();
    if (contains(b)) {
      list_.erase(b);
      list_.push_back(b);
    }
  }

  /// @brief Whether @p b is a candidate idle for longer than the time to live.
  /// @param b A block id.
  /// @return True when expired.
  [[nodiscard]] bool expired(block_id b) const { return contains(b) && is_idle(b, clock_.now()); }

  /// @brief Removes and returns the least recently used candidate if it is expired.
  /// @return The block, or `invalid_block` when no candidate is expired.
  [[nodiscard]] block_id pop_expired() {
    const block_id b = list_.front();
    if (b == invalid_block || !is_idle(b, clock_.now()))
      return invalid_block;
    list_.erase(b);
    return b;
  }

  /// @brief Candidates.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return list_.size(); }

  /// @brief Whether @p b is a candidate.
  /// @param b A block id.
  /// @return True when @p b is in the list.
  [[nodiscard]] bool contains(block_id b) const noexcept { return list_.contains(b); }

  /// @brief The time to live.
  /// @return The configured `ttl_options::ttl`.
  [[nodiscard]] std::chrono::nanoseconds ttl() const noexcept { return ttl_; }

  /// @brief Reads the clock once for every call until the matching end_batch() (the cache
  /// brackets each of its operations with the two). Batches nest.
  void begin_batch() const { clock_.begin_batch(); }

  /// @brief Ends the batch begun by the matching begin_batch().
  void end_batch() const noexcept { clock_.end_batch(); }

  /// @brief Bytes of bookkeeping.
  /// @return 16 bytes per block.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return list_.bytes() + last_.size() * sizeof(std::int64_t);
  }

 private:
  [[nodiscard]] bool is_idle(block_id b, std::int64_t now) const noexcept {
    // Idle time now - last, compared without overflow (a clock may start anywhere).
    return now > last_[b] &&
           static_cast<std::uint64_t>(now) - static_cast<std::uint64_t>(last_[b]) >
               static_cast<std::uint64_t>(ttl_.count());
  }

  std::chrono::nanoseconds ttl_;
  detail::batched_clock clock_;
  detail::intrusive_list list_;
  std::vector<std::int64_t> last_;
};

static_assert(eviction_policy<ttl_eviction>);
static_assert(eviction_has_touch<ttl_eviction>);
static_assert(eviction_has_expiry<ttl_eviction>);
static_assert(eviction_has_batches<ttl_eviction>);
static_assert(eviction_has_options_constructor<ttl_eviction>);

}  // namespace kvkit
