// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The values a `prefix_cache` takes and returns: its configuration, a request's keys,
/// sequence handles and what each operation did.
#pragma once

#include <kvkit/metrics.hpp>
#include <kvkit/types.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace kvkit {

/// @brief Configuration of a `prefix_cache`, beyond its storage.
///
/// The pool's shape (`block_size`, `num_blocks`) has one source of truth: the storage's
/// @ref kvkit::kv_layout, given to `prefix_cache::create` with the storage.
struct cache_config {
  std::optional<std::uint64_t> seed{};  ///< Hash key; a random one per cache when empty.
  /// @brief Entries of the record of recently removed blocks, which tells a miss on an evicted,
  /// invalidated or expired block from one on a block never stored (see @ref kvkit::miss_reason).
  /// Empty: one entry per pool block. 0 turns the record off, and with it the index of cached
  /// block contents that counts misses on blocks cached under other keys
  /// (`miss_reason_counts::other_namespace`): such misses then count as `never_stored`. At most
  /// 2^31. The record remembers the last N/2 to N removed blocks. Memory: about 32 bytes per
  /// entry plus 16 bytes per pool block (`cache_stats::miss_record_bytes`).
  std::optional<std::uint32_t> miss_record{};
};

/// @brief Why a request's match stopped where it did: decided for the first prompt block after
/// the cached prefix (the block where the match stopped).
///
/// A block is *eligible* when it is full and does not hold the prompt's last token (a cache always
/// computes that token). The match stops at the first eligible block not found under the
/// request's keys; when every eligible block hit, at the last block.
enum class miss_reason : std::uint8_t {
  full_hit,      ///< Nothing missed: every prompt token but the last came from the cache.
  never_stored,  ///< The block was never cached under the request's keys, or was removed longer
                 ///< ago than the removal record remembers. Also reported when it is cached under
                 ///< other keys (another tenant salt, session or extra keys): a request is never
                 ///< told what other namespaces hold (the statistics count it apart).
  evicted,       ///< The block was cached under the request's keys and evicted by the eviction
                 ///< policy (`miss_info::policy`, `miss_info::age_ticks`).
  invalidated,   ///< The block was freed by an invalidation of its namespace, or clear().
  expired,       ///< The block's time to live ran out (freed by expire(), or still in the pool
                 ///< but never hit again).
  partial_last_block,  ///< Every eligible block hit; the rest is the prompt's last block, which
                       ///< is not full or holds the last token: not reusable whole by design
                       ///< (a matcher with partial reuse may have taken some of its tokens).
  pool_too_small,  ///< The prompt needs more blocks than the pool has: it can never be admitted.
};

/// @brief Number of @ref kvkit::miss_reason values.
inline constexpr std::size_t miss_reason_count = 7;

/// @brief The name of a miss reason, as the statistics fields and replay columns spell it.
/// @param r The reason.
/// @return "full_hit", "never_stored", "evicted", "invalidated", "expired", "partial_last_block"
/// or "pool_too_small".
[[nodiscard]] constexpr std::string_view to_string(miss_reason r) noexcept {
  switch (r) {
    case miss_reason::full_hit:
      return "full_hit";
    case miss_reason::never_stored:
      return "never_stored";
    case miss_reason::evicted:
      return "evicted";
    case miss_reason::invalidated:
      return "invalidated";
    case miss_reason::expired:
      return "expired";
    case miss_reason::partial_last_block:
      return "partial_last_block";
    case miss_reason::pool_too_small:
      return "pool_too_small";
  }
  return "unknown";
}

/// @brief The count of one reason in @p counts.
/// @param counts Counters (`cache_stats::miss_reasons` or `class_stats::miss_reasons`).
/// @param r The reason.
/// @return Its field (`never_stored` excludes `other_namespace`).
[[nodiscard]] constexpr std::uint64_t count_of(const miss_reason_counts& counts,
                                               miss_reason r) noexcept {
  switch (r) {
    case miss_reason::full_hit:
      return counts.full_hit;
    case miss_reason::never_stored:
      return counts.never_stored;
    case miss_reason::evicted:
      return counts.evicted;
    case miss_reason::invalidated:
      return counts.invalidated;
    case miss_reason::expired:
      return counts.expired;
    case miss_reason::partial_last_block:
      return counts.partial_last_block;
    case miss_reason::pool_too_small:
      return counts.pool_too_small;
  }
  return 0;
}

/// @brief Why one request's match stopped, as admit() and explain_miss() report it.
struct miss_info {
  miss_reason reason = miss_reason::full_hit;  ///< Why.
  std::uint32_t block = 0;    ///< Index of the prompt block where the match stopped (the number of
                              ///< leading whole blocks that hit).
  std::string_view policy{};  ///< `evicted`, `expired`: the eviction policy's name (empty else).
  std::uint64_t age_ticks = 0;  ///< `evicted`, `invalidated`, `expired`: operations (admissions,
                                ///< commits, forks, pins) since the block was removed (0 for an
                                ///< expired block still in the pool).

  /// @brief Field-by-field equality.
  /// @return True when every field is equal.
  friend bool operator==(const miss_info&, const miss_info&) = default;
};

/// @brief Per-request keys and class, given at admission.
///
/// Requests share cached blocks only when their tenant salt and extra keys are equal, whatever
/// their tokens: the keys root every chain of hashes and are compared exactly.
struct request_options {
  std::uint64_t tenant_salt = 0;  ///< Tenant salt (0: the shared namespace).
  std::uint64_t session_id = 0;   ///< Conversation session (0: none); part of the keys.
  std::span<const std::uint64_t> extra_keys{};  ///< Adapter id, multimodal content ids, version...
  std::uint32_t request_class = 0;  ///< Class (tier): per-class metrics, eviction priority.
};

/// @brief Request classes are numbered below this bound.
inline constexpr std::uint32_t max_request_classes = 1024;

/// @brief Handle of a live sequence. A stale handle (finished sequence) is detected, not reused.
struct sequence_id {
  std::uint32_t index = 0xFFFFFFFFu;  ///< Slot.
  std::uint32_t generation = 0;       ///< Generation of the slot when issued.
  /// @brief Equality.
  /// @return True when both fields are equal.
  friend bool operator==(const sequence_id&, const sequence_id&) = default;
};

/// @brief Most tiers a cache can have below its pool (see `kvkit::tiered`).
inline constexpr std::size_t max_cache_tiers = 4;

/// @brief What admit() did.
struct admission {
  sequence_id id;                   ///< The new sequence.
  request_stats request;            ///< Prompt and cached token counts.
  std::uint32_t cached_blocks = 0;  ///< Leading blocks taken from the cache.
  std::uint32_t new_blocks = 0;     ///< Blocks allocated for the rest of the prompt.
  miss_info miss{};                 ///< Why the match stopped where it did.
  /// @brief Of `request.cached_tokens`, the tokens promoted from each tier below the pool (index
  /// `i`: the `i`-th tier of a `kvkit::tiered` listener); the rest came from the pool itself.
  /// All zero without tiers.
  std::array<std::uint32_t, max_cache_tiers> tier_cached_tokens{};
};

/// @brief What pin() did.
struct pin_info {
  sequence_id id;                   ///< Handle holding the pinned blocks; finish() unpins.
  std::uint32_t pinned_tokens = 0;  ///< Leading prompt tokens pinned (whole cached blocks).
};

/// @brief What commit() did.
struct commit_info {
  std::uint32_t registered_blocks = 0;    ///< Full blocks that became reusable by others.
  std::uint32_t deduplicated_blocks = 0;  ///< Full blocks replaced by an identical cached block
                                          ///< (the sequence's block table changed there).
};

/// @brief Read-only view of a live sequence. Valid until the next call that changes the cache.
struct sequence_view {
  std::span<const token_id> tokens;  ///< Prompt and appended tokens.
  std::span<const block_id> blocks;  ///< Block table: token `i` lives in `blocks[i / block_size]`.
  std::uint32_t computed_tokens =
      0;                  ///< Leading tokens whose K/V is written (cached or committed).
  request_stats request;  ///< Prompt and cached token counts at admission.
};

}  // namespace kvkit
