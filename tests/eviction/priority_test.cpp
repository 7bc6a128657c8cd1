// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// priority_eviction: the lowest priority goes first, least recent first within a priority; a
// class raises the priority of what it touches for its retention time, then blocks fall back to
// the default priority. In a cache, a tier's prefix survives a flood of one-off requests.

#include <kvkit/eviction/lru.hpp>
#include <kvkit/eviction/priority.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/eviction_testing.hpp"

namespace kvkit::test {
namespace {

using std::chrono::seconds;

// Class 0: default traffic; class 1: a tier held at priority 5 for 60 s after each use; class 2:
// priority 9 forever; class 3: priority 5 for 10 s.
priority_options tiers(const manual_clock& clock) {
  priority_options o;
  o.classes = {{0, seconds(0)}, {5, seconds(60)}, {9, seconds(0)}, {5, seconds(10)}};
  o.now = clock.fn();
  return o;
}

void touch(priority_eviction& e, block_id b, std::uint32_t cls) {
  e.touch(b, access_info{0, cls});
}

std::vector<block_id> drain(priority_eviction& e) {
  std::vector<block_id> out;
  for (block_id b = e.victim(); b != invalid_block; b = e.victim())
    out.push_back(b);
  return out;
}

TEST(PriorityEviction, LowestPriorityFirstThenLeastRecent) {
  manual_clock clock;
  priority_eviction e(16, tiers(clock));
  touch(e, 0, 2);
  touch(e, 1, 1);
  touch(e, 2, 0);
  touch(e, 3, 1);
  touch(e, 4, 7);  // an unknown class: default priority
  for (block_id b : {0u, 1u, 2u, 3u, 4u})
    e.insert(b);
  EXPECT_EQ(e.priority(0), 9u);
  EXPECT_EQ(e.priority(1), 5u);
  EXPECT_EQ(e.priority(4), 0u);
  EXPECT_EQ(drain(e), (std::vector<block_id>{2, 4, 1, 3, 0}));
}

TEST(PriorityEviction, PriorityOnlyRisesAndSameClassTouchesExtendTheHold) {
  manual_clock clock;
  priority_eviction e(8, tiers(clock));
  touch(e, 0, 1);  // priority 5 until t + 60 s
  touch(e, 0, 0);  // default traffic does not lower it
  EXPECT_EQ(e.priority(0), 5u);
  clock.advance(seconds(50));
  touch(e, 0, 3);              // same priority, shorter retention: the hold stays at t + 60 s
  clock.advance(seconds(11));  // t + 61 s
  EXPECT_EQ(e.priority(0), 0u);
  touch(e, 0, 1);  // t + 61 s: held again until t + 121 s
  clock.advance(seconds(30));
  touch(e, 0, 1);              // extended to t + 151 s
  clock.advance(seconds(59));  // t + 150 s
  EXPECT_EQ(e.priority(0), 5u);
  clock.advance(seconds(2));
  EXPECT_EQ(e.priority(0), 0u);
  touch(e, 1, 1);
  touch(e, 1, 2);  // a higher class raises it further, forever
  clock.advance(seconds(1000));
  EXPECT_EQ(e.priority(1), 9u);
}

TEST(PriorityEviction, LapsedCandidatesFallToTheDefaultPriority) {
  manual_clock clock;
  priority_eviction e(8, tiers(clock));
  touch(e, 0, 3);  // priority 5 for 10 s
  e.insert(0);
  touch(e, 1, 0);
  e.insert(1);
  touch(e, 2, 1);  // priority 5 for 60 s
  e.insert(2);
  EXPECT_EQ(e.victim(), 1u);
  touch(e, 3, 0);
  e.insert(3);
  clock.advance(seconds(11));
  // Block 0 lapsed: it joins the most recent end of priority 0, after block 3.
  EXPECT_EQ(e.victim(), 3u);
  EXPECT_EQ(e.victim(), 0u);
  EXPECT_EQ(e.victim(), 2u);
  EXPECT_EQ(e.victim(), invalid_block);
}

// Recency is release order (reported by released()), not insertion order: a parent inserted
// when its last child is evicted was released before that child's later siblings, and goes
// before them.
TEST(PriorityEviction, LateCandidatesTakeTheirPlaceByRelease) {
  priority_eviction e(8);
  e.released(1);
  e.insert(1);
  e.released(0);  // a parent: released, still has a cached child
  e.released(2);
  e.insert(2);
  e.released(3);
  e.insert(3);
  e.insert(0);  // its child was evicted: between 1 and 3's releases, so before 2
  e.insert(4);  // never reported: released now
  EXPECT_EQ(drain(e), (std::vector<block_id>{1, 0, 2, 3, 4}));
}

// With every block at one priority the victims come in release order, whatever the order of
// insertion: against a sort by release order.
TEST(PriorityEviction, OnePriorityIsReleaseOrder) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    constexpr std::uint32_t n = 64;
    priority_eviction e(n);
    std::vector<block_id> order(n);
    for (block_id b = 0; b < n; ++b)
      order[b] = b;
    std::shuffle(order.begin(), order.end(), rng);  // release order
    for (block_id b : order)
      e.released(b);
    std::vector<block_id> inserted = order;
    std::shuffle(inserted.begin(), inserted.end(), rng);  // insertion order
    for (block_id b : inserted)
      e.insert(b);
    EXPECT_EQ(drain(e), order) << "round " << round;
  }
}

TEST(PriorityEviction, ForgetReturnsToTheDefault) {
  manual_clock clock;
  priority_eviction e(8, tiers(clock));
  touch(e, 5, 2);
  EXPECT_EQ(e.priority(5), 9u);
  e.forget(5);
  EXPECT_EQ(e.priority(5), 0u);
}

TEST(PriorityEviction, DefaultPriorityAboveZeroAndClamping) {
  manual_clock clock;
  priority_options o = tiers(clock);
  o.default_priority = 5;  // class 1 and 3 (priority 5) now change nothing; class 0 neither
  priority_eviction e(8, o);
  touch(e, 0, 0);
  touch(e, 1, 2);
  touch(e, 2, 1);
  for (block_id b : {1u, 0u, 2u})
    e.insert(b);
  EXPECT_EQ(e.priority(0), 5u);
  EXPECT_EQ(e.priority(2), 5u);
  EXPECT_EQ(drain(e), (std::vector<block_id>{0, 2, 1}));
  EXPECT_EQ(priority_eviction::max_levels, 16u);
}

TEST(PriorityEviction, PrioritiesAboveTheTopLevelAreClamped) {
  manual_clock clock;
  priority_options o;
  o.classes = {{0, seconds(0)}, {16, seconds(0)}, {200, seconds(0)}, {15, seconds(0)}};
  o.default_priority = 40;  // clamps to 15 as well
  o.now = clock.fn();
  priority_eviction e(4, o);
  for (std::uint32_t c = 0; c < 4; ++c)
    touch(e, c, c);
  for (block_id b = 0; b < 4; ++b)
    EXPECT_EQ(e.priority(b), 15u) << b;
}

TEST(PriorityEviction, NameAndMetadata) {
  EXPECT_EQ(policy_traits<priority_eviction>::name(), "priority");
  EXPECT_TRUE(policy_traits<priority_eviction>::leaves_only());
  EXPECT_EQ(priority_eviction(100).metadata_bytes(), 2500u);
}

// Pool of 16 blocks of 4 tokens. A tier-1 prefix of 4 blocks (class 1: priority 5, held 60 s)
// then 40 one-off default requests of 2 cached blocks each: everything else is evicted, the tier
// prefix is not. LRU loses it. After its retention the prefix falls back to the default priority
// and the flood evicts it too.
TEST(PriorityEviction, InACacheATierPrefixSurvivesAFloodOfOneOffRequests) {
  manual_clock clock;
  auto pri = make_cache_with<priority_eviction>(16, 4, tiers(clock));
  auto lru = make_cache_with<lru_eviction>(16, 4);
  const auto tier = iota_tokens(1, 17);
  auto flood = [&](auto& cache, token_id first, int n) {
    for (int i = 0; i < n; ++i) {
      run_request(cache, iota_tokens(first + 100 * static_cast<token_id>(i), 9), 0);
      clock.advance(seconds(1));
    }
  };
  run_request(pri, tier, 1);
  run_request(lru, tier, 1);
  flood(pri, 1000, 40);
  flood(lru, 1000, 40);
  EXPECT_EQ(pri.match(tier), 16u);
  EXPECT_EQ(lru.match(tier), 0u);
  EXPECT_EQ(pri.match(iota_tokens(1000, 9)), 0u) << "the first one-off request is gone";
  EXPECT_GT(pri.stats().evictions, 60u);
  EXPECT_EQ(pri.stats().cascade_evictions, 0u);
  KVKIT_EXPECT_INVARIANTS(pri);
  // 40 s passed; a hit by the tier at t + 40 s holds it until t + 100 s.
  EXPECT_EQ(run_request(pri, tier, 1), 16u);
  flood(pri, 10000, 59);
  EXPECT_EQ(pri.match(tier), 16u) << "still within its retention";
  flood(pri, 20000, 20);
  EXPECT_EQ(pri.match(tier), 0u) << "fell back to the default priority and was evicted";
  EXPECT_EQ(pri.stats().cascade_evictions, 0u);
  KVKIT_EXPECT_INVARIANTS(pri);
}

}  // namespace
}  // namespace kvkit::test
