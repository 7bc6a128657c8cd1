// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internal: what a prefix_cache remembers to tell why a request's match stopped
// (kvkit::miss_reason): a bounded record of recently removed blocks, and an index of the contents
// of cached blocks across namespaces. Not a public header.
//
// Removed-block record: two generations of open-addressing tables (chained key, removal tick,
// reason: 16 bytes a slot; linear probing, no deletion), the older dropped as a whole when the
// newer holds ceil(N/2) keys: it remembers the last N/2 to N removed keys, one probe a removal.
// Each generation has the smallest power of two >= 2 * ceil(N/2) slots.
//
// Content index: each cached block's namespace-independent content key (the chained hash of the
// tokens of its prefix and its own, rooted at a fixed value instead of the namespace key) and a
// multiset of those keys (open addressing over block ids): whether a block with the same tokens
// and the same token prefix is cached under any keys. 8 bytes per block and 4 bytes per slot
// (the smallest power of two >= 2 * blocks). It is kept only once a second namespace opens (built
// then from the block tree): with one namespace there is no other namespace to tell about.
#pragma once

#include <kvkit/cache_types.hpp>
#include <kvkit/concepts.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/types.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace kvkit::detail {

/// One removal the record remembers.
struct removed_entry {
  std::uint64_t key = 0;   // the removed block's chained content key
  std::uint64_t tick = 0;  // the cache's tick at removal (56 bits) | reason << 56
  [[nodiscard]] miss_reason reason() const noexcept { return static_cast<miss_reason>(tick >> 56); }
  [[nodiscard]] std::uint64_t when() const noexcept { return tick & ((1ull << 56) - 1); }
};
static_assert(sizeof(removed_entry) == 16);

/// Slot index of a 64-bit key (keys are hashes already).
[[nodiscard]] inline std::uint32_t slot_of(std::uint64_t key, std::uint32_t mask) noexcept {
  return static_cast<std::uint32_t>(key ^ (key >> 32)) & mask;
}

/// A fixed-size record of recently removed blocks, keyed by chained key, in two generations:
/// removals go into the current one (an open-addressing table, linear probing, never deleted
/// from); when it holds ceil(N / 2) keys, the previous generation is dropped and the current one
/// becomes the previous. So the record remembers at least the last ceil(N / 2) and at most N
/// distinct removed keys, the oldest generation falling out first; a removal costs one probe.
class removed_block_record {
 public:
  removed_block_record() = default;
  /// A record of @p entries removals (0: records nothing).
  explicit removed_block_record(std::uint32_t entries)
      : per_generation_((entries + 1) / 2),
        slots_(entries == 0 ? 0 : std::bit_ceil(std::size_t{per_generation_} * 2)),
        mask_(slots_ == 0 ? 0 : static_cast<std::uint32_t>(slots_ - 1)),
        table_(slots_ * 2) {}

  [[nodiscard]] std::uint32_t capacity() const noexcept { return per_generation_ * 2; }
  [[nodiscard]] std::size_t bytes() const noexcept { return table_.size() * sizeof(removed_entry); }

  /// Remembers that the block with chained key @p key was removed at @p tick for @p why
  /// (evicted, invalidated or expired).
  void add(std::uint64_t key, miss_reason why, std::uint64_t tick) {
    if (slots_ == 0)
      return;
    const removed_entry e{key | 1u, (tick & ((1ull << 56) - 1)) |
                                        (std::uint64_t{static_cast<std::uint8_t>(why)} << 56)};
    removed_entry* gen = table_.data() + std::size_t{current_} * slots_;
    for (std::uint32_t i = slot_of(e.key, mask_);; i = (i + 1) & mask_) {
      if (gen[i].key == e.key) {  // a newer removal of a key of this generation
        gen[i] = e;
        return;
      }
      if (gen[i].key == 0) {
        gen[i] = e;
        break;
      }
    }
    if (++count_ == per_generation_) {  // the oldest generation falls out
      current_ ^= 1u;
      std::fill_n(table_.data() + std::size_t{current_} * slots_, slots_, removed_entry{});
      count_ = 0;
    }
  }

  /// The newest remembered removal of the block with chained key @p key, or null.
  [[nodiscard]] const removed_entry* find(std::uint64_t key) const noexcept {
    if (slots_ == 0)
      return nullptr;
    key |= 1u;  // 0 marks an empty slot
    for (std::uint32_t g : {current_, current_ ^ 1u}) {
      const removed_entry* gen = table_.data() + std::size_t{g} * slots_;
      for (std::uint32_t i = slot_of(key, mask_); gen[i].key != 0; i = (i + 1) & mask_) {
        if (gen[i].key == key)
          return &gen[i];
      }
    }
    return nullptr;
  }

 private:
  std::uint32_t per_generation_ = 0;  // distinct keys a generation holds
  std::size_t slots_ = 0;             // slots per generation (load <= 1/2)
  std::uint32_t mask_ = 0;
  std::vector<removed_entry> table_;  // two generations of slots_ entries
  std::uint32_t current_ = 0;         // generation written now
  std::uint32_t count_ = 0;           // keys in it
};

/// The namespace-independent content keys of the cached blocks, as a multiset.
class content_index {
 public:
  /// The content key of a block stored right under a namespace root chains from this value.
  static constexpr std::uint64_t root = 0x6b766b6974636f6eull;

  content_index() = default;
  /// An index for a pool of @p capacity blocks.
  explicit content_index(std::uint32_t capacity)
      : keys_(capacity, 0),
        slots_(capacity == 0 ? 0 : std::bit_ceil(std::size_t{capacity} * 2), 0),
        mask_(slots_.empty() ? 0 : static_cast<std::uint32_t>(slots_.size() - 1)) {}

  [[nodiscard]] bool enabled() const noexcept { return !keys_.empty(); }
  [[nodiscard]] std::size_t bytes() const noexcept {
    return keys_.size() * sizeof(std::uint64_t) + slots_.size() * sizeof(std::uint32_t);
  }
  /// Whether the index is kept (a second namespace has opened).
  [[nodiscard]] bool active() const noexcept { return active_; }
  void activate() noexcept { active_ = true; }
  /// The content key of cached block @p b.
  [[nodiscard]] std::uint64_t key(block_id b) const noexcept { return keys_[b]; }

  /// Block @p b became cached with content key @p key.
  void add(block_id b, std::uint64_t key) {
    keys_[b] = key;
    std::uint32_t i = slot_of(key, mask_);
    while (slots_[i] != 0)
      i = (i + 1) & mask_;
    slots_[i] = b + 1;
  }
  /// Cached block @p b stops being cached.
  void remove(block_id b) noexcept {
    std::uint32_t i = slot_of(keys_[b], mask_);
    for (; slots_[i] != b + 1; i = (i + 1) & mask_) {
      if (slots_[i] == 0)
        return;
    }
    slots_[i] = 0;
    for (std::uint32_t j = (i + 1) & mask_; slots_[j] != 0; j = (j + 1) & mask_) {
      const std::uint32_t home = slot_of(keys_[slots_[j] - 1], mask_);
      if (((j - home) & mask_) < ((j - i) & mask_))
        continue;
      slots_[i] = slots_[j];
      slots_[j] = 0;
      i = j;
    }
  }
  /// Whether a cached block has content key @p key.
  [[nodiscard]] bool contains(std::uint64_t key) const noexcept {
    for (std::uint32_t i = slot_of(key, mask_); slots_[i] != 0; i = (i + 1) & mask_) {
      if (keys_[slots_[i] - 1] == key)
        return true;
    }
    return false;
  }

 private:
  std::vector<std::uint64_t> keys_;   // by block id
  std::vector<std::uint32_t> slots_;  // block id + 1; 0: empty
  std::uint32_t mask_ = 0;
  bool active_ = false;
};

/// Why one match stopped: the reason the request is told, and whether the statistics count it as
/// a block cached under other keys.
struct miss_decision {
  miss_info info{};
  bool other_namespace = false;
};

/// The final reason once the cached tokens are known: nothing missed when every prompt token but
/// the last came from the cache.
[[nodiscard]] inline miss_decision settle(miss_decision d, std::size_t prompt_tokens,
                                          std::uint32_t cached_tokens) noexcept {
  if (prompt_tokens > 1 && cached_tokens == prompt_tokens - 1) {
    d.info = miss_info{miss_reason::full_hit, d.info.block, {}, 0};
    d.other_namespace = false;
  }
  return d;
}

/// What a prefix_cache keeps for miss reasons: the removal record and the content index, both
/// off when the record has no entry.
class miss_tracker {
 public:
  miss_tracker() = default;
  /// Tracks a pool of @p capacity blocks with a record of @p entries removals (0: off).
  miss_tracker(std::uint32_t entries, std::uint32_t capacity)
      : record_(entries), contents_(entries == 0 ? 0 : capacity) {}

  [[nodiscard]] bool enabled() const noexcept { return contents_.enabled(); }
  [[nodiscard]] std::size_t bytes() const noexcept { return record_.bytes() + contents_.bytes(); }
  [[nodiscard]] const removed_block_record& record() const noexcept { return record_; }
  [[nodiscard]] const content_index& contents() const noexcept { return contents_; }

  /// The content key of a block holding @p toks under a block with content key @p parent (or
  /// content_index::root under a namespace root).
  [[nodiscard]] static std::uint64_t content_key(const xxh3_hasher& h, std::uint64_t parent,
                                                 std::span<const token_id> toks) noexcept {
    return h.chain(parent, toks);
  }

  /// Block @p b with chained key @p key became cached at @p tick under node @p parent (a block,
  /// or a namespace root when @p under_root) holding @p toks. @p detached: its namespace is
  /// invalidated (it will never be hit: recorded as invalidated now).
  void stored(const xxh3_hasher& h, block_id b, std::uint32_t parent, bool under_root,
              std::span<const token_id> toks, bool detached, std::uint64_t key,
              std::uint64_t tick) {
    if (contents_.active())
      contents_.add(b,
                    content_key(h, under_root ? content_index::root : contents_.key(parent), toks));
    if (detached)
      record_.add(key, miss_reason::invalidated, tick);
  }
  /// Cached block @p b with chained key @p key is removed at @p tick for @p why.
  void removed(block_id b, std::uint64_t key, removal_reason why, std::uint64_t tick) {
    if (!enabled())
      return;
    if (contents_.active())
      contents_.remove(b);
    record_.add(key, reason_of(why), tick);
  }
  /// A namespace opened; @p namespaces namespace slots exist. From the second on, the content
  /// index is kept: built now from @p tree (every block under the namespaces for which @p live is
  /// true, parents before children).
  template <class Tree, class Live>
  void namespace_opened(const xxh3_hasher& h, const Tree& tree, std::uint32_t namespaces,
                        Live&& live) {
    if (!enabled() || contents_.active() || namespaces < 2)
      return;
    contents_.activate();
    std::vector<block_id> stack;
    for (std::uint32_t ns = 0; ns < namespaces; ++ns) {
      if (!live(ns))
        continue;
      const std::uint32_t root = namespace_node(ns, tree.capacity());
      for (block_id c = tree.first_child(root); c != invalid_block; c = tree.next_sibling(c)) {
        contents_.add(c, content_key(h, content_index::root, tree.tokens(c)));
        stack.push_back(c);
      }
      while (!stack.empty()) {
        const block_id b = stack.back();
        stack.pop_back();
        for (block_id c = tree.first_child(b); c != invalid_block; c = tree.next_sibling(c)) {
          contents_.add(c, content_key(h, contents_.key(b), tree.tokens(c)));
          stack.push_back(c);
        }
      }
    }
  }
  /// A block with chained key @p key stays with its sequences after its namespace was
  /// invalidated at @p tick: it is never hit again.
  void detached(std::uint64_t key, std::uint64_t tick) {
    if (enabled())
      record_.add(key, miss_reason::invalidated, tick);
  }

  [[nodiscard]] static constexpr miss_reason reason_of(removal_reason why) noexcept {
    switch (why) {
      case removal_reason::evicted:
        return miss_reason::evicted;
      case removal_reason::expired:
        return miss_reason::expired;
      case removal_reason::invalidated:
      case removal_reason::released:
      case removal_reason::cleared:
        return miss_reason::invalidated;
    }
    return miss_reason::invalidated;
  }

 private:
  removed_block_record record_;
  content_index contents_;
};

}  // namespace kvkit::detail
