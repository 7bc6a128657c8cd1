// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Helpers of the mini engine's tests (tests/engine): token vectors and logit comparisons.
#pragma once

#include <kvkit/types.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace kvkit::test {

/// `n` token ids below `vocab` from a fixed generator seeded with `seed`.
inline std::vector<token_id> random_tokens(std::size_t n, std::uint64_t seed, std::uint32_t vocab) {
  std::vector<token_id> t(n);
  for (auto& x : t) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<token_id>((seed >> 33) % vocab);
  }
  return t;
}

/// `a` followed by `b`.
inline std::vector<token_id> concat(std::vector<token_id> a, const std::vector<token_id>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// Largest magnitude in `v`.
inline double max_abs(std::span<const float> v) {
  double m = 0;
  for (float x : v)
    m = std::max(m, double(std::fabs(x)));
  return m;
}

/// Largest element-wise difference of `a` and `b` (same size).
inline double max_diff(std::span<const float> a, std::span<const float> b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

}  // namespace kvkit::test
