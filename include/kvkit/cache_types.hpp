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

namespace kvkit {

/// @brief Configuration of a `prefix_cache`, beyond its storage.
///
/// The pool's shape (`block_size`, `num_blocks`) has one source of truth: the storage's
/// @ref kvkit::kv_layout, given to `prefix_cache::create` with the storage.
struct cache_config {
  std::optional<std::uint64_t> seed{};  ///< Hash key; a random one per cache when empty.
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
