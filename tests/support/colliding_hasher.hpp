// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief A deliberately terrible block hasher for tests: every chain hash is one of two values,
/// so every lookup in a `basic_hash_matcher<colliding_hasher>` collides and only the verifier
/// can tell blocks apart.
#pragma once

#include <kvkit/types.hpp>

#include <cstdint>
#include <span>

namespace kvkit::test {

/// @brief Hashes every block to `low_hash` or `high_hash` (by the parity of its first token),
/// ignoring the parent and the seed.
///
/// The two values have their home slots at the last and the first slot of any power-of-two
/// table, so their probe runs wrap around and interleave: the worst case for backward-shift
/// deletion.
class colliding_hasher {
 public:
  /// @brief The hash of blocks whose first token is even (home slot 0).
  static constexpr std::uint64_t low_hash = 0;
  /// @brief The hash of blocks whose first token is odd (home slot: the table's last).
  static constexpr std::uint64_t high_hash = ~std::uint64_t{0};

  /// @brief Ignores @p seed.
  explicit colliding_hasher(std::uint64_t seed) noexcept : seed_(seed) {}

  /// @brief Ignores everything but the parity of the first token.
  /// @param parent Ignored.
  /// @param tokens The block's tokens.
  /// @return `low_hash` or `high_hash`.
  [[nodiscard]] std::uint64_t chain(std::uint64_t parent,
                                    std::span<const token_id> tokens) const noexcept {
    (void)parent;
    return (!tokens.empty() && (tokens[0] & 1) != 0) ? high_hash : low_hash;
  }

  /// @brief The seed it was made with.
  /// @return The seed.
  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

 private:
  std::uint64_t seed_;
};

}  // namespace kvkit::test
