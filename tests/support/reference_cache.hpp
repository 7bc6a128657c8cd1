// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief A naive reference model of `kvkit::prefix_cache` with LRU eviction, for differential
/// tests. Written to be obviously right, not fast: cached blocks are keyed by their namespace
/// and their whole token prefix, held in a `std::map`; the LRU order is a plain vector.
///
/// The model knows nothing about block ids, hashes or allocators. It predicts every result,
/// counter and gauge of the real cache; the test maps its keys to the real block ids.
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/types.hpp>

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace kvkit::test {

/// A namespace: blocks are shared only between requests with equal salt and extra keys.
struct ref_namespace {
  std::uint64_t tenant_salt = 0;
  std::vector<std::uint64_t> extra_keys;
  friend auto operator<=>(const ref_namespace&, const ref_namespace&) = default;
  friend bool operator==(const ref_namespace&, const ref_namespace&) = default;
};

/// Identity of a cached block: its namespace and every token up to the end of the block.
struct ref_key {
  ref_namespace ns;
  std::vector<token_id> prefix;
  friend auto operator<=>(const ref_key&, const ref_key&) = default;
  friend bool operator==(const ref_key&, const ref_key&) = default;
};

/// The counters and gauges of `kvkit::cache_stats` that the model predicts.
struct ref_stats {
  std::uint64_t queries = 0;
  std::uint64_t query_tokens = 0;
  std::uint64_t hit_tokens = 0;
  std::uint64_t query_blocks = 0;
  std::uint64_t hit_blocks = 0;
  std::uint64_t full_hits = 0;
  std::uint64_t partial_hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t short_queries = 0;
  std::uint64_t appended_tokens = 0;
  std::uint64_t committed_blocks = 0;
  std::uint64_t deduplicated_blocks = 0;
  std::uint64_t evictions = 0;
  std::uint64_t cascade_evictions = 0;
  std::uint64_t finished_sequences = 0;
  std::uint32_t blocks_free = 0;
  std::uint32_t blocks_cached = 0;
  std::uint32_t blocks_referenced = 0;
  std::uint32_t blocks_evictable = 0;
  std::uint32_t active_sequences = 0;
  friend bool operator==(const ref_stats&, const ref_stats&) = default;
};

/// The reference model. Sequences are named by their index in the order of admission
/// (never reused); `no_sequence` stands for an id the cache never issued.
class reference_cache {
 public:
  using handle = std::size_t;
  static constexpr handle no_sequence = static_cast<handle>(-1);

  /// One entry of a block table: a cached block (its key) or a block the sequence owns alone.
  struct slot {
    std::optional<ref_key> cached;  // empty: owned by the sequence, not cached
    friend bool operator==(const slot&, const slot&) = default;
  };

  struct sequence {
    bool live = true;
    ref_namespace ns;
    std::vector<token_id> tokens;
    std::vector<slot> table;
    std::uint32_t computed = 0;
    std::uint32_t committed_blocks = 0;
    std::uint32_t prompt_tokens = 0;
    std::uint32_t cached_tokens = 0;
    friend bool operator==(const sequence&, const sequence&) = default;
  };

  struct admit_outcome {
    errc code = errc::ok;
    handle seq = no_sequence;
    std::uint32_t cached_tokens = 0;
    std::uint32_t cached_blocks = 0;
    std::uint32_t new_blocks = 0;
    std::uint32_t eligible_blocks = 0;
  };

  struct commit_outcome {
    errc code = errc::ok;
    std::uint32_t registered = 0;
    std::uint32_t deduplicated = 0;
  };

  reference_cache(std::uint32_t num_blocks, std::uint32_t block_size)
      : num_blocks_(num_blocks), block_size_(block_size) {}

  // ---- queries -------------------------------------------------------------------------------

  /// Key of block @p k of @p tokens in namespace @p ns.
  [[nodiscard]] ref_key key_of(const ref_namespace& ns, std::span<const token_id> tokens,
                               std::size_t k) const {
    const std::size_t end = (k + 1) * block_size_;
    return ref_key{ns, std::vector<token_id>(tokens.begin(), tokens.begin() + end)};
  }

  /// Leading eligible blocks of @p prompt whose whole prefix is cached.
  [[nodiscard]] std::uint32_t hit_blocks(std::span<const token_id> prompt,
                                         const ref_namespace& ns) const {
    if (prompt.empty())
      return 0;
    const std::size_t eligible = (prompt.size() - 1) / block_size_;
    std::uint32_t hit = 0;
    while (hit < eligible && cached_.count(key_of(ns, prompt, hit)) != 0)
      ++hit;
    return hit;
  }

  /// What the cache's match() must return.
  [[nodiscard]] std::uint32_t match(std::span<const token_id> prompt,
                                    const ref_namespace& ns) const {
    return hit_blocks(prompt, ns) * block_size_;
  }

  [[nodiscard]] bool is_cached(const ref_key& key) const { return cached_.count(key) != 0; }

  /// References held on a cached block (0: evictable).
  [[nodiscard]] std::uint32_t refcount(const ref_key& key) const { return cached_.at(key); }

  /// Every cached key, in key order.
  [[nodiscard]] std::vector<ref_key> cached_keys() const {
    std::vector<ref_key> out;
    for (const auto& [key, refs] : cached_)
      out.push_back(key);
    return out;
  }

  /// Number of cached blocks.
  [[nodiscard]] std::size_t cached_count() const { return cached_.size(); }

  /// The @p i-th cached key in key order.
  [[nodiscard]] const ref_key& cached_key(std::size_t i) const {
    return std::next(cached_.begin(), static_cast<std::ptrdiff_t>(i))->first;
  }

  /// Cached keys that no other cached key extends (in key order every extension of a key
  /// directly follows it, so only the next key needs a look).
  [[nodiscard]] std::vector<const ref_key*> cached_leaves() const {
    std::vector<const ref_key*> out;
    for (auto it = cached_.begin(); it != cached_.end(); ++it) {
      const auto next = std::next(it);
      if (next == cached_.end() || !extends(next->first, it->first))
        out.push_back(&it->first);
    }
    return out;
  }

  /// Keys evicted since the last call, oldest first.
  std::vector<ref_key> take_evicted() { return std::exchange(evicted_, {}); }

  /// Evictable keys, least recently released first.
  [[nodiscard]] const std::vector<ref_key>& lru_order() const { return lru_; }

  [[nodiscard]] std::size_t sequence_count() const { return seqs_.size(); }
  [[nodiscard]] const sequence& seq(handle h) const { return seqs_.at(h); }

  /// Problems the model noticed in its own operation (e.g. an eviction victim with a cached
  /// child, which LRU must never pick). Empty when all is well.
  [[nodiscard]] const std::vector<std::string>& problems() const { return problems_; }

  [[nodiscard]] ref_stats stats() const {
    ref_stats s = counters_;
    s.blocks_cached = static_cast<std::uint32_t>(cached_.size());
    s.blocks_free = num_blocks_ - s.blocks_cached - owned_;
    s.blocks_evictable = static_cast<std::uint32_t>(lru_.size());
    s.blocks_referenced = owned_ + s.blocks_cached - s.blocks_evictable;
    std::uint32_t active = 0;
    for (const sequence& q : seqs_)
      active += q.live ? 1u : 0u;
    s.active_sequences = active;
    return s;
  }

  [[nodiscard]] std::uint32_t free_blocks() const {
    return num_blocks_ - static_cast<std::uint32_t>(cached_.size()) - owned_;
  }
  [[nodiscard]] std::uint32_t evictable_blocks() const {
    return static_cast<std::uint32_t>(lru_.size());
  }

  /// The error a call on @p h gets before anything else is looked at.
  [[nodiscard]] errc lookup(handle h) const {
    if (h >= seqs_.size())
      return errc::unknown_sequence;
    if (!seqs_[h].live)
      return errc::finished_sequence;
    return errc::ok;
  }

  // ---- operations ----------------------------------------------------------------------------

  admit_outcome admit(std::span<const token_id> prompt, const ref_namespace& ns) {
    admit_outcome out;
    if (prompt.empty()) {
      out.code = errc::empty_input;
      return out;
    }
    const std::uint32_t needed = blocks_for(prompt.size());
    if (needed > num_blocks_) {
      out.code = errc::out_of_blocks;
      return out;
    }
    const std::uint32_t eligible = static_cast<std::uint32_t>((prompt.size() - 1) / block_size_);
    const std::uint32_t hit = hit_blocks(prompt, ns);
    const std::uint32_t fresh = needed - hit;
    std::uint32_t hits_now_evictable = 0;
    for (std::uint32_t k = 0; k < hit; ++k) {
      if (cached_.at(key_of(ns, prompt, k)) == 0)
        ++hits_now_evictable;
    }
    if (fresh > free_blocks() + evictable_blocks() - hits_now_evictable) {
      out.code = errc::out_of_blocks;
      return out;
    }

    sequence q;
    q.ns = ns;
    q.tokens.assign(prompt.begin(), prompt.end());
    for (std::uint32_t k = 0; k < hit; ++k) {
      const ref_key key = key_of(ns, prompt, k);
      take_reference(key);
      q.table.push_back(slot{key});
    }
    for (std::uint32_t i = 0; i < fresh; ++i) {
      allocate();
      q.table.push_back(slot{});
    }
    q.prompt_tokens = static_cast<std::uint32_t>(prompt.size());
    q.cached_tokens = hit * block_size_;
    q.computed = q.cached_tokens;
    q.committed_blocks = hit;
    seqs_.push_back(std::move(q));

    ++counters_.queries;
    counters_.query_tokens += prompt.size();
    counters_.hit_tokens += hit * block_size_;
    counters_.query_blocks += eligible;
    counters_.hit_blocks += hit;
    if (eligible == 0)
      ++counters_.short_queries;
    if (hit == 0) {
      ++counters_.misses;
    } else if (hit == eligible) {
      ++counters_.full_hits;
    } else {
      ++counters_.partial_hits;
    }

    out.seq = seqs_.size() - 1;
    out.cached_tokens = hit * block_size_;
    out.cached_blocks = hit;
    out.new_blocks = fresh;
    out.eligible_blocks = eligible;
    return out;
  }

  commit_outcome commit(handle h, std::uint32_t n) {
    commit_outcome out;
    out.code = lookup(h);
    if (out.code != errc::ok)
      return out;
    sequence& q = seqs_[h];
    if (n > q.tokens.size() || n < q.computed) {
      out.code = errc::invalid_argument;
      return out;
    }
    q.computed = n;
    const std::uint32_t full = n / block_size_;
    for (std::uint32_t k = q.committed_blocks; k < full; ++k) {
      const ref_key key = key_of(q.ns, q.tokens, k);
      if (is_cached(key)) {
        // Someone cached this prefix meanwhile: use theirs, free ours.
        take_reference(key);
        --owned_;
        ++out.deduplicated;
      } else {
        // Our owned block becomes the cached block of this prefix, held by us.
        --owned_;
        cached_[key] = 1;
        ++out.registered;
      }
      q.table[k] = slot{key};
      ++q.committed_blocks;
    }
    counters_.committed_blocks += out.registered;
    counters_.deduplicated_blocks += out.deduplicated;
    return out;
  }

  commit_outcome commit_all(handle h) {
    if (lookup(h) != errc::ok)
      return commit_outcome{lookup(h), 0, 0};
    return commit(h, static_cast<std::uint32_t>(seqs_[h].tokens.size()));
  }

  errc append(handle h, std::span<const token_id> tokens) {
    const errc e = lookup(h);
    if (e != errc::ok)
      return e;
    if (tokens.empty())
      return errc::empty_input;
    sequence& q = seqs_[h];
    const std::uint32_t needed = blocks_for(q.tokens.size() + tokens.size());
    const std::uint32_t fresh = needed - static_cast<std::uint32_t>(q.table.size());
    if (fresh > free_blocks() + evictable_blocks())
      return errc::out_of_blocks;
    for (std::uint32_t i = 0; i < fresh; ++i) {
      allocate();
      q.table.push_back(slot{});
    }
    q.tokens.insert(q.tokens.end(), tokens.begin(), tokens.end());
    counters_.appended_tokens += tokens.size();
    return errc::ok;
  }

  errc finish(handle h) {
    const errc e = lookup(h);
    if (e != errc::ok)
      return e;
    sequence& q = seqs_[h];
    // Last block first.
    for (auto it = q.table.rbegin(); it != q.table.rend(); ++it) {
      if (it->cached) {
        std::uint32_t& refs = cached_.at(*it->cached);
        if (refs == 0)
          problems_.push_back("finish: cached block with no reference");
        --refs;
        if (refs == 0)
          lru_.push_back(*it->cached);
      } else {
        --owned_;
      }
    }
    q = sequence{};  // a finished sequence keeps nothing
    q.live = false;
    ++counters_.finished_sequences;
    return errc::ok;
  }

  friend bool operator==(const reference_cache&, const reference_cache&) = default;

 private:
  [[nodiscard]] std::uint32_t blocks_for(std::size_t tokens) const {
    return static_cast<std::uint32_t>((tokens + block_size_ - 1) / block_size_);
  }

  // Whether @p longer has the namespace of @p key and starts with all its tokens, plus more.
  static bool extends(const ref_key& longer, const ref_key& key) {
    return longer.ns == key.ns && longer.prefix.size() > key.prefix.size() &&
           std::equal(key.prefix.begin(), key.prefix.end(), longer.prefix.begin());
  }

  [[nodiscard]] bool has_cached_child(const ref_key& key) const {
    for (const auto& [other, refs] : cached_) {
      if (other.ns == key.ns && other.prefix.size() == key.prefix.size() + block_size_ &&
          std::equal(key.prefix.begin(), key.prefix.end(), other.prefix.begin())) {
        return true;
      }
    }
    return false;
  }

  void take_reference(const ref_key& key) {
    std::uint32_t& refs = cached_.at(key);
    if (refs == 0) {
      auto it = std::find(lru_.begin(), lru_.end(), key);
      if (it == lru_.end()) {
        problems_.push_back("take_reference: evictable block missing from the LRU order");
      } else {
        lru_.erase(it);
      }
    }
    ++refs;
  }

  // One block for a sequence: a free one, or the least recently released evictable one.
  void allocate() {
    if (free_blocks() == 0) {
      if (lru_.empty()) {
        problems_.push_back("allocate: nothing free and nothing evictable");
        return;
      }
      const ref_key victim = lru_.front();
      lru_.erase(lru_.begin());
      if (has_cached_child(victim)) {
        problems_.push_back("allocate: LRU victim has a cached child (would orphan it)");
      }
      cached_.erase(victim);
      evicted_.push_back(victim);
      ++counters_.evictions;
    }
    ++owned_;
  }

  std::uint32_t num_blocks_;
  std::uint32_t block_size_;
  std::map<ref_key, std::uint32_t> cached_;  // cached block -> reference count
  std::vector<ref_key> lru_;                 // evictable blocks, least recent first
  std::uint32_t owned_ = 0;                  // blocks owned by one sequence, not cached
  std::vector<sequence> seqs_;
  ref_stats counters_;
  std::vector<ref_key> evicted_;  // since the last take_evicted()
  std::vector<std::string> problems_;
};

}  // namespace kvkit::test
