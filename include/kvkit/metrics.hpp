// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Token-based cache metrics: per request and per cache.
///
/// Hit figures count prompt tokens served from the cache, never recomputed ones. A prompt hits in
/// whole blocks (plus, with matchers that reuse part of a block, the shared leading tokens of the
/// next one), and at least one prompt token is always left to compute (the runtime needs its
/// logits). So with a whole-block matcher a prompt of at most `block_size` tokens never hits:
/// `short_queries` counts prompts with no whole block eligible.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvkit {

/// @brief What one admission found in the cache (the numbers a serving API reports as
/// `prompt_tokens` and `cached_tokens`).
struct request_stats {
  std::uint32_t prompt_tokens = 0;  ///< Tokens in the prompt.
  std::uint32_t cached_tokens = 0;  ///< Leading prompt tokens whose K/V came from the cache.

  /// @brief Equality of both counts.
  /// @return True when equal.
  friend bool operator==(const request_stats&, const request_stats&) = default;

  /// @brief Fraction of the prompt served from the cache.
  /// @return `cached_tokens / prompt_tokens` (0 for an empty prompt).
  [[nodiscard]] double hit_rate() const noexcept {
    return prompt_tokens == 0
               ? 0.0
               : static_cast<double>(cached_tokens) / static_cast<double>(prompt_tokens);
  }
};

/// @brief Admissions by why their match stopped where it did (see `kvkit::miss_reason`, whose
/// values name the fields). Each admission is counted once; the fields add up to the admissions.
struct miss_reason_counts {
  std::uint64_t full_hit = 0;      ///< Nothing missed: every prompt token but the last was cached.
  std::uint64_t never_stored = 0;  ///< The next block was never cached under the request's keys
                                   ///< (or was removed longer ago than the removal record holds).
  std::uint64_t evicted = 0;       ///< The next block was evicted by the eviction policy.
  std::uint64_t invalidated = 0;   ///< The next block was freed by an invalidation (or clear()).
  std::uint64_t expired = 0;       ///< The next block expired (time to live).
  std::uint64_t partial_last_block = 0;  ///< Every whole eligible block hit; the rest is the
                                         ///< prompt's last block, never reused whole by design.
  std::uint64_t pool_too_small = 0;      ///< The prompt needs more blocks than the pool has (only
                                     ///< `prefix_cache::explain_miss` and replays report it: such
                                     ///< an admission fails and counts nothing).
  std::uint64_t other_namespace = 0;  ///< The next block is cached under other keys (another
                                      ///< tenant salt, session or extra keys). The request is told
                                      ///< `never_stored`; only these statistics tell it apart.

  /// @brief Field-by-field equality.
  /// @return True when every field is equal.
  friend bool operator==(const miss_reason_counts&, const miss_reason_counts&) = default;
  /// @brief Admissions that missed something (every field but `full_hit`).
  /// @return The sum.
  [[nodiscard]] std::uint64_t missed() const noexcept {
    return never_stored + evicted + invalidated + expired + partial_last_block + pool_too_small +
           other_namespace;
  }
};

/// @brief Counters of the admissions of one request class (tier).
struct class_stats {
  std::uint64_t queries = 0;          ///< Admissions of the class.
  std::uint64_t query_tokens = 0;     ///< Their prompt tokens.
  std::uint64_t hit_tokens = 0;       ///< Their prompt tokens served from the cache.
  std::uint64_t misses = 0;           ///< Their admissions with no hit.
  miss_reason_counts miss_reasons{};  ///< Their admissions by why the match stopped.

  /// @brief Field-by-field equality.
  /// @return True when every field is equal.
  friend bool operator==(const class_stats&, const class_stats&) = default;
  /// @brief Token hit rate of the class.
  /// @return `hit_tokens / query_tokens` (0 before any query).
  [[nodiscard]] double token_hit_rate() const noexcept {
    return query_tokens == 0 ? 0.0
                             : static_cast<double>(hit_tokens) / static_cast<double>(query_tokens);
  }
};

/// @brief Counters (since construction) and gauges (now) of one cache.
struct cache_stats {
  // --- counters -------------------------------------------------------------------------------
  std::uint64_t queries = 0;       ///< Admissions (prompts looked up).
  std::uint64_t query_tokens = 0;  ///< Prompt tokens of all admissions.
  std::uint64_t hit_tokens = 0;    ///< Prompt tokens served from the cache.
  std::uint64_t query_blocks =
      0;                         ///< Prompt blocks eligible for a hit (full, not the last token's).
  std::uint64_t hit_blocks = 0;  ///< Prompt blocks served from the cache.
  std::uint64_t full_hits = 0;   ///< Admissions whose every eligible block hit.
  std::uint64_t partial_hits = 0;  ///< Admissions where some but not all eligible blocks hit.
  std::uint64_t misses = 0;        ///< Admissions with no hit (short ones included).
  std::uint64_t conversational_hits = 0;  ///< Admissions whose hit reused generated tokens of an
                                          ///< earlier sequence (a follow-up conversation turn).
  std::uint64_t partial_block_hits =
      0;                              ///< Admissions that reused part of a block (copy on write).
  std::uint64_t copied_blocks = 0;    ///< Blocks copied on write (partial reuse, fork).
  std::uint64_t short_queries = 0;    ///< Admissions with no eligible block (prompt <= block_size).
  std::uint64_t appended_tokens = 0;  ///< Tokens added by append() (decode).
  std::uint64_t committed_blocks = 0;     ///< Blocks registered as cached by commit().
  std::uint64_t deduplicated_blocks = 0;  ///< Computed blocks replaced by an identical cached one.
  std::uint64_t evictions = 0;            ///< Cached blocks evicted (cascades included).
  std::uint64_t cascade_evictions = 0;    ///< Of those, descendants evicted with their parent.
  std::uint64_t finished_sequences = 0;   ///< Sequences finished (pins included).
  std::uint64_t forks = 0;                ///< Sequences made by fork().
  std::uint64_t pins = 0;                 ///< Successful pin() calls.
  std::uint64_t invalidated_blocks = 0;   ///< Blocks freed by invalidation (now or on release).
  std::uint64_t expired_blocks = 0;       ///< Blocks freed by expire().
  miss_reason_counts miss_reasons{};      ///< Admissions by why their match stopped.

  // --- gauges ---------------------------------------------------------------------------------
  std::uint32_t blocks_total = 0;       ///< Blocks in the pool.
  std::uint32_t blocks_free = 0;        ///< Blocks holding nothing.
  std::uint32_t blocks_cached = 0;      ///< Blocks registered in the matcher (reusable).
  std::uint32_t blocks_referenced = 0;  ///< Blocks held by at least one live sequence.
  std::uint32_t blocks_evictable = 0;   ///< Cached blocks held by no sequence.
  std::uint32_t active_sequences = 0;   ///< Live sequences.
  std::size_t metadata_bytes = 0;     ///< Bookkeeping bytes of cache and policies, tokens excluded.
  std::size_t token_bytes = 0;        ///< Bytes of stored block tokens (for hit verification).
  std::size_t kv_bytes = 0;           ///< Bytes of K/V storage.
  std::size_t miss_record_bytes = 0;  ///< Bytes of the miss diagnostics: the record of recently
                                      ///< removed blocks and the index of cached block contents
                                      ///< (`cache_config::miss_record`; not in metadata_bytes).

  /// @brief Field-by-field equality (tests use it to prove a failed call changed nothing).
  /// @return True when every field is equal.
  friend bool operator==(const cache_stats&, const cache_stats&) = default;

  /// @brief Blocks allocated to sequences or cached.
  /// @return `blocks_total - blocks_free`.
  [[nodiscard]] std::uint32_t blocks_in_use() const noexcept { return blocks_total - blocks_free; }
  /// @brief Token hit rate, the prefill reduction ratio.
  /// @return `hit_tokens / query_tokens` (0 before any query).
  [[nodiscard]] double token_hit_rate() const noexcept {
    return query_tokens == 0 ? 0.0
                             : static_cast<double>(hit_tokens) / static_cast<double>(query_tokens);
  }
  /// @brief Same as token_hit_rate(): the fraction of prompt tokens whose prefill was skipped.
  /// @return The ratio.
  [[nodiscard]] double prefill_reduction_ratio() const noexcept { return token_hit_rate(); }
  /// @brief Block hit rate over eligible blocks.
  /// @return `hit_blocks / query_blocks` (0 before any eligible block).
  [[nodiscard]] double block_hit_rate() const noexcept {
    return query_blocks == 0 ? 0.0
                             : static_cast<double>(hit_blocks) / static_cast<double>(query_blocks);
  }
  /// @brief Prompt tokens whose prefill was skipped.
  /// @return `hit_tokens`.
  [[nodiscard]] std::uint64_t tokens_saved() const noexcept { return hit_tokens; }
  /// @brief Share of admissions that reused an earlier turn's generated tokens.
  /// @return `conversational_hits / queries` (0 before any query).
  [[nodiscard]] double conversational_hit_rate() const noexcept {
    return queries == 0 ? 0.0
                        : static_cast<double>(conversational_hits) / static_cast<double>(queries);
  }
  /// @brief Bookkeeping bytes per block of the pool (tokens excluded).
  /// @return `metadata_bytes / blocks_total`.
  [[nodiscard]] double metadata_bytes_per_block() const noexcept {
    return blocks_total == 0
               ? 0.0
               : static_cast<double>(metadata_bytes) / static_cast<double>(blocks_total);
  }
};

}  // namespace kvkit
