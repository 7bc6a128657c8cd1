// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `priority_eviction`: request classes (tiers) with eviction priorities and retention
/// times; least recently used first within the lowest priority.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/detail/assert.hpp>
#include <kvkit/eviction/detail/batched_clock.hpp>
#include <kvkit/eviction/detail/indexed_heap.hpp>
#include <kvkit/eviction/detail/intrusive_list.hpp>
#include <kvkit/types.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

namespace kvkit {

/// @brief Settings of @ref kvkit::priority_eviction.
struct priority_options {
  /// @brief What a request class does to the blocks it touches.
  struct class_rule {
    /// @brief Priority given to the blocks (below `priority_eviction::max_levels`; higher is
    /// evicted later).
    std::uint8_t priority = 0;
    /// @brief How long after the class's last access the priority holds; 0 holds it forever.
    std::chrono::nanoseconds retention{0};
  };
  /// @brief Rule of each request class, indexed by `request_options::request_class`; classes
  /// beyond the end get `default_priority`.
  std::vector<class_rule> classes{};
  /// @brief Priority of blocks no class raised, or whose retention ran out.
  std::uint8_t default_priority = 0;
  /// @brief The clock, in nanoseconds from any fixed origin; it must not go backwards. Defaults
  /// to `std::chrono::steady_clock`; tests pass a manual clock.
  std::function<std::chrono::nanoseconds()> now = detail::steady_now;
};

/// @brief Evicts by priority class first and recency second, so a tier's hot shared prefix is
/// not pushed out by a flood of one-off requests.
///
/// Each block has an effective priority, initially `priority_options::default_priority`. A touch
/// (hit, or the commit that registers the block) by a request of class `c` raises it to
/// `max(effective priority, classes[c].priority)`; when that raises it, the block holds the new
/// priority until `classes[c].retention` after this touch, and a later touch by a class of the same
/// priority extends the hold. Once the hold runs out the block falls back to the default priority
/// (not to a lower raised one). Because priorities only go up from the default, a class whose
/// priority is at or below the default leaves blocks as they are.
///
/// The victim is the least recently released candidate of the lowest non-empty priority. Before
/// choosing it, candidates whose hold ran out are moved to the most recent end of the default
/// priority's list (as if released then); this is done lazily, from the least recent end of each
/// raised priority's list, so a lapsed block that became a candidate after a block still held
/// moves down only when that one does (or when it is touched or becomes a candidate again).
///
/// Recency is release order, which the cache reports through `released()` for every block it
/// stops referencing, candidate or not. Candidates are leaves only (`leaves_only`), so a raised
/// parent never takes its default-priority children with it; a parent that becomes a candidate
/// when its last child is evicted takes its place by when it was released, not at the most recent
/// end. With every block at one priority the order is therefore exactly `lru_eviction`'s.
///
/// Priorities are `0` to `max_levels - 1` (16 levels); larger values in the options are clamped
/// (and assert in debug builds). One intrusive list per priority, in release order, in flat arrays
/// (25 bytes per block): erase, touch and the insertion of a block released now are O(1); a block
/// inserted out of release order (a parent whose last child was evicted) is placed by a walk from
/// the nearer end of its list; victim is O(levels) plus the lapsed blocks it moves. Nothing
/// allocates after construction.
class priority_eviction {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "priority";
  /// @brief The cache offers only leaf blocks (see @ref kvkit::eviction_policy).
  static constexpr bool leaves_only = true;
  /// @brief Settings type passed to `prefix_cache::create`.
  using options = priority_options;
  /// @brief Number of priority levels: priorities are 0 to 15.
  static constexpr std::uint32_t max_levels = 16;

  /// @brief Makes an empty policy for a pool of @p capacity blocks where every block has
  /// priority 0.
  /// @param capacity Blocks in the pool.
  explicit priority_eviction(std::uint32_t capacity)
      : priority_eviction(capacity, priority_options{}) {}

  /// @brief Makes an empty policy for a pool of @p capacity blocks.
  /// @param capacity Blocks in the pool.
  /// @param opts Class rules, default priority and clock (an empty clock means
  /// `std::chrono::steady_clock`).
  priority_eviction(std::uint32_t capacity, const priority_options& opts)
      : default_(clamp(opts.default_priority)),
        clock_(opts.now),
        links_(capacity),
        level_(capacity, default_),
        deadline_(capacity, forever),
        released_(capacity, unreleased) {
    rules_.reserve(opts.classes.size());
    for (const auto& r : opts.classes)
      rules_.push_back(rule{clamp(r.priority), std::max<std::int64_t>(r.retention.count(), 0)});
  }

  /// @brief Block @p b stopped being referenced (candidate or not): it is now the most recently
  /// released block.
  /// @param b A cached block.
  void released(block_id b) noexcept { released_[b] = ++releases_; }

  /// @brief Block @p b became a candidate: it joins its effective priority's list at its place
  /// in release order (the most recent end when it was released just now, or never reported).
  /// @param b A block not in the policy.
  void insert(block_id b) {
    KVKIT_ASSERT(!contains(b), "priority_eviction::insert: block already evictable");
    if (released_[b] == unreleased)
      released_[b] = ++releases_;
    lapse_if_due(b, clock_.now());
    link(b);
  }

  /// @brief Block @p b stops being a candidate.
  /// @param b A block in the policy.
  void erase(block_id b) noexcept {
    KVKIT_ASSERT(contains(b), "priority_eviction::erase: block not evictable");
    unlink(b);
  }

  /// @brief Removes and returns the least recent candidate of the lowest non-empty priority,
  /// after moving candidates whose hold ran out down to the default priority.
  /// @return The block, or `invalid_block` when empty.
  [[nodiscard]] block_id victim() {
    if (size_ == 0)
      return invalid_block;
    const std::int64_t now = clock_.now();
    // Raised levels only: those above the default.
    for (std::uint32_t raised = nonempty_ >> (default_ + 1u); raised != 0; raised &= raised - 1) {
      const auto lv = static_cast<std::uint32_t>(std::countr_zero(raised)) + default_ + 1u;
      while (lists_[lv].head != invalid_block && deadline_[lists_[lv].head] < now) {
        const block_id b = lists_[lv].head;
        unlink(b);
        level_[b] = default_;
        deadline_[b] = forever;
        released_[b] = ++releases_;  // the most recent end of the default priority
        link(b);
      }
    }
    const auto lv = static_cast<std::uint32_t>(std::countr_zero(nonempty_));
    const block_id b = lists_[lv].head;
    unlink(b);
    return b;
  }

  /// @brief An access to @p b by a request of class `info.request_class`: raises or extends its
  /// priority per the class's rule; a candidate moves to the most recent end of its list.
  /// @param b A block id.
  /// @param info The access; only its request class is used.
  void touch(block_id b, const access_info& info) {
    const std::int64_t now = clock_.now();
    const bool listed = contains(b);
    if (listed)
      unlink(b);
    lapse_if_due(b, now);
    const rule r =
        info.request_class < rules_.size() ? rules_[info.request_class] : rule{default_, 0};
    const std::int64_t until = r.retention == 0 ? forever : saturating_add(now, r.retention);
    if (r.priority > level_[b]) {
      level_[b] = r.priority;
      deadline_[b] = until;
    } else if (r.priority == level_[b] && level_[b] != default_) {
      deadline_[b] = std::max(deadline_[b], until);
    }
    if (listed) {
      released_[b] = ++releases_;  // the most recent end
      link(b);
    }
  }

  /// @brief The content of @p b is gone: it returns to the default priority.
  /// @param b A block not in the policy.
  void forget(block_id b) noexcept {
    KVKIT_ASSERT(!contains(b), "priority_eviction::forget: block still evictable");
    level_[b] = default_;
    deadline_[b] = forever;
    released_[b] = unreleased;
  }

  /// @brief The effective priority of @p b now.
  /// @param b A block id.
  /// @return Its priority, the default one once its hold ran out.
  [[nodiscard]] std::uint8_t priority(block_id b) const {
    return deadline_[b] < clock_.now() ? default_ : level_[b];
  }

  /// @brief Candidates.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }

  /// @brief Whether @p b is a candidate.
  /// @param b A block id.
  /// @return True when @p b is in a list.
  [[nodiscard]] bool contains(block_id b) const noexcept { return links_.contains(b); }

  /// @brief Reads the clock once for every call until the matching end_batch() (the cache
  /// brackets each of its operations with the two). Batches nest.
  void begin_batch() const { clock_.begin_batch(); }

  /// @brief Ends the batch begun by the matching begin_batch().
  void end_batch() const noexcept { clock_.end_batch(); }

  /// @brief Bytes of bookkeeping.
  /// @return 25 bytes per block plus the class rules.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return links_.bytes() + level_.size() + deadline_.size() * sizeof(std::int64_t) +
           released_.size() * sizeof(std::uint64_t) + rules_.size() * sizeof(rule);
  }

 private:
  /// @cond KVKIT_PRIVATE
  static constexpr std::int64_t forever = std::numeric_limits<std::int64_t>::max();
  static constexpr std::uint64_t unreleased = 0;

  struct rule {
    std::uint8_t priority;
    std::int64_t retention;
  };

  static std::uint8_t clamp(std::uint8_t p) noexcept {  // documented: larger values clamp
    return static_cast<std::uint8_t>(std::min<std::uint32_t>(p, max_levels - 1));
  }
  static std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
    return a > forever - b ? forever : a + b;
  }
  void lapse_if_due(block_id b, std::int64_t now) noexcept {
    if (deadline_[b] < now) {
      level_[b] = default_;
      deadline_[b] = forever;
    }
  }
  /// Links @p b into its level's list at its place in release order: at the most recent end
  /// when it is the most recently released, else before the first block released after it,
  /// searched from both ends at once.
  void link(block_id b) noexcept {
    const std::uint8_t lv = level_[b];
    detail::list_ends& list = lists_[lv];
    const std::uint64_t key = released_[b];
    if (list.tail == invalid_block || released_[list.tail] < key) {
      links_.push_back(list, b);
    } else {
      block_id from_head = list.head;  // first block released after b, walking forward
      block_id from_tail = list.tail;  // walking backward; b goes before the last one > key
      block_id pos = invalid_block;
      while (pos == invalid_block) {
        if (released_[from_head] > key) {
          pos = from_head;
        } else {
          from_head = links_.next(from_head);
        }
        const block_id before = links_.prev(from_tail);
        if (pos == invalid_block && (before == invalid_block || released_[before] < key))
          pos = from_tail;
        from_tail = before;
      }
      links_.insert_before(list, pos, b);
    }
    nonempty_ |= 1u << lv;
    ++size_;
  }
  void unlink(block_id b) noexcept {
    const std::uint8_t lv = level_[b];
    links_.unlink(lists_[lv], b);
    if (lists_[lv].head == invalid_block)
      nonempty_ &= ~(1u << lv);
    --size_;
  }

  std::uint8_t default_;
  detail::batched_clock clock_;
  std::vector<rule> rules_;
  detail::intrusive_links links_;
  std::vector<std::uint8_t> level_;
  std::vector<std::int64_t> deadline_;
  std::vector<std::uint64_t> released_;  // release order; `unreleased` when not known
  std::uint64_t releases_ = 0;
  std::array<detail::list_ends, max_levels> lists_{};
  std::uint32_t nonempty_ = 0;
  std::uint32_t size_ = 0;
  /// @endcond
};

static_assert(eviction_policy<priority_eviction>);
static_assert(eviction_has_leaves_only<priority_eviction>);
static_assert(eviction_has_touch<priority_eviction>);
static_assert(eviction_has_forget<priority_eviction>);
static_assert(eviction_has_batches<priority_eviction>);
static_assert(eviction_has_options_constructor<priority_eviction>);

}  // namespace kvkit
