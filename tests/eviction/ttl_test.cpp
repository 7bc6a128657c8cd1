// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// ttl_eviction: LRU order under pressure; a candidate idle longer than the time to live expires,
// is never hit, and prefix_cache::expire() frees it. Time comes from a manual clock.

#include <kvkit/eviction/ttl.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/eviction_testing.hpp"

namespace kvkit::test {
namespace {

using std::chrono::seconds;

ttl_options options_with(const manual_clock& clock, std::chrono::nanoseconds ttl) {
  ttl_options o;
  o.ttl = ttl;
  o.now = clock.fn();
  return o;
}

TEST(TtlEviction, VictimsAreLeastRecentlyUsedFirst) {
  manual_clock clock;
  ttl_eviction e(8, options_with(clock, seconds(10)));
  for (block_id b : {4u, 1u, 6u})
    e.insert(b);
  e.touch(4, access_info{});  // a candidate touched moves to the most recent end
  EXPECT_EQ(e.victim(), 1u);
  EXPECT_EQ(e.victim(), 6u);
  EXPECT_EQ(e.victim(), 4u);
  EXPECT_EQ(e.victim(), invalid_block);
}

TEST(TtlEviction, CandidatesExpireAfterTheirIdleTimeExceedsTheTtl) {
  manual_clock clock;
  ttl_eviction e(8, options_with(clock, seconds(10)));
  e.insert(0);
  clock.advance(seconds(4));
  e.insert(1);
  clock.advance(seconds(4));
  e.insert(2);
  e.touch(5, access_info{});  // not a candidate: never expired
  clock.advance(seconds(2));  // idle: 0 -> 10 s, 1 -> 6 s, 2 -> 2 s
  EXPECT_FALSE(e.expired(0)) << "exactly the ttl is not past it";
  EXPECT_EQ(e.pop_expired(), invalid_block);
  clock.advance(seconds(1));
  EXPECT_TRUE(e.expired(0));
  EXPECT_FALSE(e.expired(1));
  EXPECT_FALSE(e.expired(5));
  EXPECT_EQ(e.pop_expired(), 0u);
  EXPECT_EQ(e.pop_expired(), invalid_block);
  EXPECT_EQ(e.size(), 2u);
  e.touch(1, access_info{});  // refreshed: idle 0
  clock.advance(seconds(9));  // idle: 1 -> 9 s, 2 -> 12 s
  EXPECT_FALSE(e.expired(1));
  EXPECT_TRUE(e.expired(2));
  EXPECT_EQ(e.pop_expired(), 2u);
  EXPECT_EQ(e.pop_expired(), invalid_block);
  EXPECT_EQ(e.victim(), 1u);
}

TEST(TtlEviction, DefaultNeverExpiresAndNegativeTtlIsZero) {
  ttl_eviction forever(4);
  forever.insert(2);
  EXPECT_FALSE(forever.expired(2));
  EXPECT_EQ(forever.pop_expired(), invalid_block);
  manual_clock clock;
  ttl_eviction zero(4, options_with(clock, seconds(-5)));
  EXPECT_EQ(zero.ttl(), std::chrono::nanoseconds(0));
  zero.insert(1);
  EXPECT_FALSE(zero.expired(1));
  clock.advance(std::chrono::nanoseconds(1));
  EXPECT_TRUE(zero.expired(1));
}

TEST(TtlEviction, NameAndMetadata) {
  EXPECT_EQ(policy_traits<ttl_eviction>::name(), "ttl");
  EXPECT_FALSE(policy_traits<ttl_eviction>::leaves_only());
  EXPECT_EQ(ttl_eviction(100).metadata_bytes(), 1600u);
}

// Pool of 16 blocks of 4 tokens, ttl 10 s. A runs at t, B at t + 5 s. At t + 11 s A is expired
// (not hit, not matched) and B is not; expire() frees exactly A's blocks.
TEST(TtlEviction, InACacheExpiredBlocksAreNotHitAndExpireFreesThem) {
  manual_clock clock;
  auto c = make_cache_with<ttl_eviction>(16, 4, options_with(clock, seconds(10)));
  const auto a = iota_tokens(1, 9);
  const auto b = iota_tokens(100, 13);
  run_request(c, a);
  clock.advance(seconds(5));
  run_request(c, b);
  clock.advance(seconds(6));
  EXPECT_EQ(c.match(a), 0u);
  EXPECT_EQ(c.match(b), 12u);
  EXPECT_EQ(c.stats().blocks_cached, 5u);
  EXPECT_EQ(c.expire(), 2u);
  EXPECT_EQ(c.stats().expired_blocks, 2u);
  EXPECT_EQ(c.stats().blocks_cached, 3u);
  EXPECT_EQ(c.stats().evictions, 0u);
  KVKIT_EXPECT_INVARIANTS(c);
  clock.advance(seconds(5));
  EXPECT_EQ(c.match(b), 0u);
  EXPECT_EQ(c.expire(), 3u);
  EXPECT_EQ(c.stats().blocks_cached, 0u);
  EXPECT_EQ(c.stats().blocks_free, 16u);
  KVKIT_EXPECT_INVARIANTS(c);
}

// An expired prefix admitted again is a miss; committing it retires the expired copy and
// registers the new one, which is then hit.
TEST(TtlEviction, InACacheAnExpiredPrefixIsRecomputedAndReplaced) {
  manual_clock clock;
  auto c = make_cache_with<ttl_eviction>(16, 4, options_with(clock, seconds(10)));
  const auto a = iota_tokens(1, 9);
  run_request(c, a);
  clock.advance(seconds(11));
  EXPECT_EQ(run_request(c, a), 0u);
  KVKIT_EXPECT_INVARIANTS(c);
  EXPECT_EQ(c.stats().blocks_cached, 2u);
  EXPECT_EQ(c.stats().expired_blocks, 2u);
  EXPECT_EQ(run_request(c, a), 8u);
  EXPECT_EQ(c.expire(), 0u);
  KVKIT_EXPECT_INVARIANTS(c);
}

// A referenced block never expires: a live sequence keeps its prefix hit-able past the ttl.
TEST(TtlEviction, InACacheReferencedBlocksDoNotExpire) {
  manual_clock clock;
  auto c = make_cache_with<ttl_eviction>(16, 4, options_with(clock, seconds(10)));
  const auto a = iota_tokens(1, 9);
  auto s = c.admit(a);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(c.commit(s->id).ok());
  clock.advance(seconds(60));
  EXPECT_EQ(c.match(a), 8u);
  EXPECT_EQ(c.expire(), 0u);
  ASSERT_TRUE(c.finish(s->id).ok());
  EXPECT_EQ(c.expire(), 0u) << "idle time starts when the block is released";
  clock.advance(seconds(11));
  EXPECT_EQ(c.expire(), 2u);
  KVKIT_EXPECT_INVARIANTS(c);
}

}  // namespace
}  // namespace kvkit::test
