// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The matcher conformance suite over every matcher policy, including a hash matcher whose hasher
// makes every lookup collide; plus hash-matcher-specific checks.

#include <kvkit/matcher/hash.hpp>
#include <kvkit/matcher/radix.hpp>
#include <kvkit/matcher/session.hpp>
#include <kvkit/testing/matcher_conformance.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

#include "support/colliding_hasher.hpp"

namespace kvkit::testing {
namespace {

using test::colliding_hasher;
using colliding_matcher = basic_hash_matcher<colliding_hasher>;
using matcher_policies =
    ::testing::Types<hash_matcher, colliding_matcher, radix_matcher, session_matcher>;
INSTANTIATE_TYPED_TEST_SUITE_P(all, matcher_conformance, matcher_policies);

// Matchers with partial-block reuse.
static_assert(!matcher_has_find_partial<hash_matcher>);
static_assert(matcher_has_find_partial<radix_matcher>);
static_assert(matcher_has_find_partial<session_matcher>);
using partial_matcher_policies = ::testing::Types<radix_matcher, session_matcher>;
INSTANTIATE_TYPED_TEST_SUITE_P(all, matcher_partial_conformance, partial_matcher_policies);

TEST(CollidingHasher, HasOnlyTwoValues) {
  const colliding_hasher h(1);
  std::set<std::uint64_t> seen;
  for (token_id t = -5; t < 50; ++t) {
    const std::vector<token_id> toks{t, 3, 4};
    seen.insert(h.chain(static_cast<std::uint64_t>(t) * 977, toks));
  }
  EXPECT_EQ(seen,
            (std::set<std::uint64_t>{colliding_hasher::low_hash, colliding_hasher::high_hash}));
}

TEST(HashMatcher, BlocksWithTheSameKeyCoexistAndTheVerifierPicks) {
  hash_matcher m(16, 99);
  const auto key = m.child(m.root(16, 1234), std::vector<token_id>{1, 2, 3, 4});
  for (block_id b = 0; b < 10; ++b)
    m.insert(key, b);
  EXPECT_EQ(m.size(), 10u);
  for (block_id want = 0; want < 10; ++want) {
    EXPECT_EQ(m.find(key, [&](block_id c) { return c == want; }), want);
  }
  EXPECT_EQ(m.find(key, [](block_id) { return false; }), invalid_block);
  // Erase half; the rest stay findable, the erased are gone.
  for (block_id b = 0; b < 10; b += 2)
    m.erase(b);
  EXPECT_EQ(m.size(), 5u);
  for (block_id want = 0; want < 10; ++want) {
    EXPECT_EQ(m.find(key, [&](block_id c) { return c == want; }),
              want % 2 == 1 ? want : invalid_block);
  }
}

TEST(HashMatcher, CursorIsTheChainedHash) {
  const std::uint64_t seed = 0xABCDEF;
  hash_matcher m(8, seed);
  const xxh3_hasher h(seed);
  const std::vector<token_id> a{1, 2, 3, 4}, b{5, 6, 7, 8};
  const auto root = m.root(8, 555);
  EXPECT_EQ(root.hash, 555u);
  const auto ca = m.child(root, a);
  EXPECT_EQ(ca.hash, h.chain(555, a));
  EXPECT_EQ(m.child(ca, b).hash, h.chain(h.chain(555, a), b));
}

TEST(HashMatcher, MetadataIsFingerprintsPlusTable) {
  // A 4-byte fingerprint per block plus a table of 8-byte slots (fingerprint and block id), twice
  // as many as blocks: 20 bytes per block.
  EXPECT_EQ(hash_matcher(100, 1).metadata_bytes(), 100u * 4 + 200u * 8);
  EXPECT_EQ(hash_matcher(64, 1).metadata_bytes(), 64u * 20);
  EXPECT_EQ(policy_traits<hash_matcher>::name(), "hash");
}

TEST(SessionMatcher, MetadataIsTheIndexAlone) {
  // No child lists: the cache's block tree serves partial reuse.
  EXPECT_EQ(session_matcher(100, 1).metadata_bytes(), 100u * 20);
  EXPECT_EQ(policy_traits<session_matcher>::name(), "session");
}

TEST(SessionMatcher, AWideNodeIsOneProbe) {
  // 2,000 children under one namespace root: each lookup offers the verifier only the blocks
  // whose key fingerprint matches, not every child.
  constexpr std::uint32_t n = 2000;
  matcher_harness<session_matcher> h(n, 7);
  for (block_id b = 0; b < n; ++b)
    h.insert(b, h.ns_node(0), {static_cast<token_id>(b), 1, 2, 3});
  auto& m = h.matcher();
  const auto root = m.root(h.ns_node(0), 0);
  std::uint64_t offered = 0;
  for (block_id b = 0; b < n; ++b) {
    const std::vector<token_id> toks{static_cast<token_id>(b), 1, 2, 3};
    const block_id found = m.find(m.child(root, toks), [&](block_id cand) {
      ++offered;
      return h.tokens(cand) == toks;
    });
    EXPECT_EQ(found, b);
  }
  EXPECT_LT(offered, 2u * n) << "lookups verified many children each";
}

}  // namespace
}  // namespace kvkit::testing
