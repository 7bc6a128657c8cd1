// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Keyed, chained block hashing (xxHash3 under a per-cache random seed).
///
/// A block's hash covers its parent's hash and its own tokens; the first block's parent is the
/// namespace key, which covers the cache's seed, the tenant salt and the extra keys. Hashes only
/// find candidates: a cache verifies every candidate against stored tokens and its parent link, so
/// a collision can cost a lookup but never return another prompt's KV.
#pragma once

#include <cstdint>
#include <random>
#include <span>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <kvkit/types.hpp>

#include <xxhash.h>

namespace kvkit {

/// @brief A fresh random 64-bit seed from `std::random_device`.
/// @return The seed.
inline std::uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

/// @brief The default block hasher: xxHash3-64, keyed by a seed.
///
/// Any type with the same three members can replace it in `basic_hash_matcher` (tests use one
/// that forces collisions).
class xxh3_hasher {
 public:
  /// @brief Makes a hasher keyed by @p seed.
  /// @param seed The key; use a random one per cache (see random_seed()).
  explicit xxh3_hasher(std::uint64_t seed) noexcept : seed_(seed) {}

  /// @brief Namespace key: hash of tenant salt and extra keys under the seed.
  /// @param salt Tenant salt.
  /// @param extra_keys Further keys (adapter id, multimodal content ids, version...).
  /// @return The key that roots every chain of this namespace.
  [[nodiscard]] std::uint64_t root(std::uint64_t salt,
                                   std::span<const std::uint64_t> extra_keys) const noexcept {
    std::uint64_t h = XXH3_64bits_withSeed(&salt, sizeof(salt), seed_);
    if (!extra_keys.empty())
      h = XXH3_64bits_withSeed(extra_keys.data(), extra_keys.size_bytes(), h);
    return h;
  }

  /// @brief Namespace key of a conversation session: root() further keyed by @p session.
  /// @param salt Tenant salt.
  /// @param session Session id (0 gives the same key as root(salt, extra_keys)).
  /// @param extra_keys Further keys.
  /// @return The key.
  [[nodiscard]] std::uint64_t root(std::uint64_t salt, std::uint64_t session,
                                   std::span<const std::uint64_t> extra_keys) const noexcept {
    const std::uint64_t h = root(salt, extra_keys);
    return session == 0 ? h : XXH3_64bits_withSeed(&session, sizeof(session), h);
  }

  /// @brief Chained hash of one block.
  /// @param parent The parent block's hash (or the namespace key for a first block).
  /// @param tokens The block's tokens.
  /// @return The block's hash.
  [[nodiscard]] std::uint64_t chain(std::uint64_t parent,
                                    std::span<const token_id> tokens) const noexcept {
    const std::uint64_t seed = parent ^ seed_;
    // The same hash; a constant length for the common block sizes lets the compiler inline the
    // one xxHash3 path that length takes.
    switch (tokens.size()) {
      case 8:
        return XXH3_64bits_withSeed(tokens.data(), 8 * sizeof(token_id), seed);
      case 16:
        return XXH3_64bits_withSeed(tokens.data(), 16 * sizeof(token_id), seed);
      case 32:
        return XXH3_64bits_withSeed(tokens.data(), 32 * sizeof(token_id), seed);
      default:
        return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), seed);
    }
  }

  /// @brief The seed.
  /// @return The key this hasher was made with.
  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

 private:
  std::uint64_t seed_;
};

}  // namespace kvkit
