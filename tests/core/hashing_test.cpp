// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// xxh3_hasher: keyed, chained block hashes and namespace roots.

#include <kvkit/hashing.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

namespace kvkit {
namespace {

std::vector<token_id> block_of(token_id start, std::size_t n = 16) {
  std::vector<token_id> t(n);
  for (std::size_t i = 0; i < n; ++i)
    t[i] = start + static_cast<token_id>(i * 7);
  return t;
}

TEST(Xxh3Hasher, DeterministicForASeed) {
  const xxh3_hasher a(0x1234), b(0x1234);
  EXPECT_EQ(a.seed(), 0x1234u);
  const auto toks = block_of(100);
  const auto copy = toks;  // same content, other address
  EXPECT_EQ(a.chain(55, toks), b.chain(55, copy));
  EXPECT_EQ(a.chain(55, toks), a.chain(55, toks));
  const std::vector<std::uint64_t> keys{3, 4};
  EXPECT_EQ(a.root(9, keys), b.root(9, keys));
  EXPECT_EQ(a.root(9, {}), b.root(9, {}));
}

TEST(Xxh3Hasher, DifferentSeedsGiveDifferentHashes) {
  const auto toks = block_of(1);
  std::set<std::uint64_t> chains, roots;
  const std::vector<std::uint64_t> seeds{0, 1, 2, 0xFFFFFFFFFFFFFFFFull, 0x8000000000000000ull};
  for (std::uint64_t seed : seeds) {
    const xxh3_hasher h(seed);
    chains.insert(h.chain(77, toks));
    roots.insert(h.root(5, {}));
  }
  EXPECT_EQ(chains.size(), seeds.size());
  EXPECT_EQ(roots.size(), seeds.size());
}

TEST(Xxh3Hasher, ChainDependsOnParent) {
  const xxh3_hasher h(42);
  const auto toks = block_of(9);
  std::set<std::uint64_t> seen;
  for (std::uint64_t parent : {0ull, 1ull, 2ull, 42ull, 0xDEADBEEFull, ~0ull}) {
    seen.insert(h.chain(parent, toks));
  }
  EXPECT_EQ(seen.size(), 6u);
}

TEST(Xxh3Hasher, ChainDependsOnEveryToken) {
  const xxh3_hasher h(42);
  const auto base = block_of(1000);
  const std::uint64_t ref = h.chain(7, base);
  std::set<std::uint64_t> seen{ref};
  for (std::size_t i = 0; i < base.size(); ++i) {
    auto t = base;
    t[i] += 1;
    const std::uint64_t v = h.chain(7, t);
    EXPECT_NE(v, ref) << "token " << i << " does not affect the hash";
    seen.insert(v);
    t = base;
    t[i] ^= static_cast<token_id>(0x40000000);  // a high bit only
    EXPECT_NE(h.chain(7, t), ref) << "high bit of token " << i << " does not affect the hash";
  }
  EXPECT_EQ(seen.size(), base.size() + 1);
  // Order and length matter too.
  auto swapped = base;
  std::swap(swapped[0], swapped[1]);
  EXPECT_NE(h.chain(7, swapped), ref);
  EXPECT_NE(h.chain(7, std::span<const token_id>(base).first(15)), ref);
}

TEST(Xxh3Hasher, ChainsOfDifferentPrefixesDiffer) {
  // Same second block under different first blocks: different hashes.
  const xxh3_hasher h(3);
  const std::uint64_t root = h.root(0, {});
  const auto a = block_of(1), b = block_of(2), c = block_of(3);
  EXPECT_NE(h.chain(h.chain(root, a), c), h.chain(h.chain(root, b), c));
  EXPECT_NE(h.chain(h.chain(root, a), b), h.chain(h.chain(root, b), a));
}

TEST(Xxh3Hasher, RootDependsOnSaltAndExtraKeys) {
  const xxh3_hasher h(11);
  std::set<std::uint64_t> seen;
  for (std::uint64_t salt : {0ull, 1ull, 2ull, ~0ull})
    seen.insert(h.root(salt, {}));
  EXPECT_EQ(seen.size(), 4u);

  using keys = std::vector<std::uint64_t>;
  const std::vector<keys> variants{{}, {0}, {1}, {2}, {1, 2}, {2, 1}, {1, 2, 3}, {0, 0}};
  std::set<std::uint64_t> by_keys;
  for (const keys& k : variants)
    by_keys.insert(h.root(5, k));
  EXPECT_EQ(by_keys.size(), variants.size());
  // The salt still matters when extra keys are given.
  EXPECT_NE(h.root(5, keys{1, 2}), h.root(6, keys{1, 2}));
}

TEST(RandomSeed, VariesBetweenCalls) {
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 4; ++i)
    seen.insert(random_seed());
  EXPECT_GT(seen.size(), 1u);
}

}  // namespace
}  // namespace kvkit
