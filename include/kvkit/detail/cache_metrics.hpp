// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internal: the counters of a prefix_cache and how each operation updates them. Not a public
// header.
#pragma once

#include <kvkit/cache_types.hpp>
#include <kvkit/metrics.hpp>

#include <cstdint>
#include <vector>

namespace kvkit::detail {

/// What one admission found, as the metrics count it.
struct admission_record {
  std::uint64_t prompt_tokens = 0;
  std::uint32_t cached_tokens = 0;    // whole blocks plus a partial block's shared tokens
  std::uint32_t eligible_blocks = 0;  // prompt blocks that could hit
  std::uint32_t hit_blocks = 0;       // whole blocks taken from the cache
  bool partial_block = false;         // part of a block reused by copy
  bool conversational = false;        // the hit reuses generated tokens
  std::uint32_t request_class = 0;
  miss_reason reason = miss_reason::full_hit;  // why the match stopped (as the request was told)
  bool other_namespace = false;  // told never_stored, but the block is cached under other keys
};

/// Adds one admission stopped for @p reason (@p other_namespace: counted apart from never_stored).
inline void count_reason(miss_reason_counts& c, miss_reason reason, bool other_namespace) noexcept {
  if (other_namespace) {
    ++c.other_namespace;
    return;
  }
  switch (reason) {
    case miss_reason::full_hit:
      ++c.full_hit;
      break;
    case miss_reason::never_stored:
      ++c.never_stored;
      break;
    case miss_reason::evicted:
      ++c.evicted;
      break;
    case miss_reason::invalidated:
      ++c.invalidated;
      break;
    case miss_reason::expired:
      ++c.expired;
      break;
    case miss_reason::partial_last_block:
      ++c.partial_last_block;
      break;
    case miss_reason::pool_too_small:
      ++c.pool_too_small;
      break;
  }
}

/// The counters of `cache_stats` (since construction) and of each request class. The gauges of
/// `cache_stats` come from the block tree, the allocator and the sequence table (see
/// `prefix_cache::stats()`).
class cache_metrics {
 public:
  void admitted(const admission_record& a) {
    ++c_.queries;
    c_.query_tokens += a.prompt_tokens;
    c_.hit_tokens += a.cached_tokens;
    c_.query_blocks += a.eligible_blocks;
    c_.hit_blocks += a.hit_blocks;
    if (a.eligible_blocks == 0)
      ++c_.short_queries;
    if (a.cached_tokens == 0) {
      ++c_.misses;
    } else if (a.hit_blocks == a.eligible_blocks && !a.partial_block) {
      ++c_.full_hits;
    } else {
      ++c_.partial_hits;
    }
    if (a.conversational)
      ++c_.conversational_hits;
    if (a.partial_block) {
      ++c_.partial_block_hits;
      ++c_.copied_blocks;
    }
    if (classes_.size() <= a.request_class)
      classes_.resize(a.request_class + 1);
    class_stats& cs = classes_[a.request_class];
    ++cs.queries;
    cs.query_tokens += a.prompt_tokens;
    cs.hit_tokens += a.cached_tokens;
    if (a.cached_tokens == 0)
      ++cs.misses;
    count_reason(c_.miss_reasons, a.reason, a.other_namespace);
    count_reason(cs.miss_reasons, a.reason, a.other_namespace);
  }
  void committed(std::uint32_t registered, std::uint32_t deduplicated) noexcept {
    c_.committed_blocks += registered;
    c_.deduplicated_blocks += deduplicated;
  }
  void appended(std::uint64_t tokens, bool copied_tail) noexcept {
    c_.appended_tokens += tokens;
    c_.copied_blocks += copied_tail ? 1u : 0u;
  }
  /// One eviction by the policy freed @p freed blocks: the victim and its subtree.
  void evicted(std::uint32_t freed) noexcept {
    c_.evictions += freed;
    c_.cascade_evictions += freed - 1;
  }
  void invalidated(std::uint32_t freed) noexcept { c_.invalidated_blocks += freed; }
  void expired(std::uint32_t freed) noexcept { c_.expired_blocks += freed; }
  void finished() noexcept { ++c_.finished_sequences; }
  void forked() noexcept { ++c_.forks; }
  void pinned() noexcept { ++c_.pins; }

  /// The counters (gauges zero).
  [[nodiscard]] const cache_stats& counters() const noexcept { return c_; }
  /// The counters of one class (zero for a class never seen).
  [[nodiscard]] class_stats of_class(std::uint32_t request_class) const {
    return request_class < classes_.size() ? classes_[request_class] : class_stats{};
  }

 private:
  cache_stats c_;
  std::vector<class_stats> classes_;
};

}  // namespace kvkit::detail
