// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// sieve_eviction: FIFO with a visited bit and a moving hand; one-off blocks go before reused ones,
// so a scan does not flush a working set that LRU loses.

#include <kvkit/eviction/lru.hpp>
#include <kvkit/eviction/sieve.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/eviction_testing.hpp"

namespace kvkit::test {
namespace {

void touch(sieve_eviction& e, block_id b) {
  e.touch(b, access_info{});
}

void register_block(sieve_eviction& e, block_id b) {
  touch(e, b);
  e.insert(b);
}

void hit(sieve_eviction& e, block_id b) {
  e.erase(b);
  touch(e, b);
  e.insert(b);
}

std::vector<block_id> drain(sieve_eviction& e) {
  std::vector<block_id> out;
  for (block_id b = e.victim(); b != invalid_block; b = e.victim())
    out.push_back(b);
  return out;
}

TEST(SieveEviction, RegistrationIsNotAVisitButAHitIs) {
  sieve_eviction e(8);
  register_block(e, 0);
  EXPECT_FALSE(e.visited_bit(0));
  hit(e, 0);
  EXPECT_TRUE(e.visited_bit(0));
  e.forget(0);  // (a cache forgets only freed blocks; the bit goes either way)
  EXPECT_FALSE(e.visited_bit(0));
}

// 0..4 registered; 1 and 3 hit (they come back at the newest end, visited): 0 2 4 1* 3*. The hand
// evicts 0, 2, 4, then clears 1 and 3, wraps, and evicts 1 and 3.
TEST(SieveEviction, UnvisitedBlocksGoFirstThenTheHandClearsAndWraps) {
  sieve_eviction e(8);
  for (block_id b = 0; b < 5; ++b)
    register_block(e, b);
  hit(e, 1);
  hit(e, 3);
  EXPECT_EQ(drain(e), (std::vector<block_id>{0, 2, 4, 1, 3}));
}

// A touch while a candidate sets the bit without moving the block (SIEVE's lazy promotion), and
// the hand keeps its place between victims.
TEST(SieveEviction, TheHandKeepsItsPlace) {
  sieve_eviction e(8);
  for (block_id b = 0; b < 4; ++b)
    register_block(e, b);
  touch(e, 0);                // 0* 1 2 3
  EXPECT_EQ(e.victim(), 1u);  // clears 0; hand -> 2
  register_block(e, 4);       // 0 2 3 4
  touch(e, 2);                // 0 2* 3 4
  EXPECT_EQ(e.victim(), 3u);  // clears 2; hand -> 4
  EXPECT_EQ(e.victim(), 4u);  // hand -> past the newest end
  EXPECT_EQ(e.victim(), 0u);  // from the oldest end: 0 was cleared
  EXPECT_EQ(e.victim(), 2u);
  EXPECT_EQ(e.victim(), invalid_block);
}

TEST(SieveEviction, EraseOfTheBlockUnderTheHandMovesIt) {
  sieve_eviction e(8);
  for (block_id b = 0; b < 4; ++b)
    register_block(e, b);
  touch(e, 0);
  EXPECT_EQ(e.victim(), 1u);  // hand -> 2
  e.erase(2);                 // hand -> 3
  touch(e, 3);
  EXPECT_EQ(e.victim(), 0u);  // clears 3, wraps, 0 was cleared by the first sweep
  EXPECT_EQ(e.victim(), 3u);
}

TEST(SieveEviction, NameAndMetadata) {
  EXPECT_EQ(policy_traits<sieve_eviction>::name(), "sieve");
  EXPECT_TRUE(policy_traits<sieve_eviction>::leaves_only());
  EXPECT_EQ(sieve_eviction(100).metadata_bytes(), 900u);
}

// Through 8 slots, each round loops twice over a working set of 4 objects, then scans 8 new
// objects. The scan flushes LRU, which then misses every first access of a round; SIEVE evicts only
// scanned objects and hits every access after the first loop.
template <class E>
std::uint32_t working_set_hits(int rounds) {
  object_cache<E> c(8);
  std::uint32_t hits = 0;
  std::uint64_t next_scan = 1000;
  for (int r = 0; r < rounds; ++r) {
    for (int loop = 0; loop < 2; ++loop) {
      for (std::uint64_t k = 0; k < 4; ++k)
        hits += c.access(k) ? 1 : 0;
    }
    for (int s = 0; s < 8; ++s)
      c.access(next_scan++);
  }
  return hits;
}

TEST(SieveEviction, ScanResistantWhereLruIsNot) {
  constexpr std::uint32_t rounds = 50;
  EXPECT_EQ(working_set_hits<lru_eviction>(rounds), 4u * rounds) << "second loops only";
  EXPECT_EQ(working_set_hits<sieve_eviction>(rounds), 8u * rounds - 4u) << "all but the first";
}

// The same through a prefix cache of 12 blocks: each round runs a hot 2-block prompt twice, then
// 6 one-off prompts of 2 cached blocks each. LRU hits only the second run of each round.
TEST(SieveEviction, InACacheAHotPromptSurvivesScans) {
  auto sieve = make_cache_with<sieve_eviction>(12, 4);
  auto lru = make_cache_with<lru_eviction>(12, 4);
  const auto hot = iota_tokens(1, 9);
  auto run = [&](auto& cache) {
    std::uint32_t hot_hits = 0;
    token_id next = 1000;
    for (int round = 0; round < 20; ++round) {
      for (int twice = 0; twice < 2; ++twice)
        hot_hits += run_request(cache, hot) == 8u ? 1 : 0;
      for (int s = 0; s < 6; ++s, next += 100)
        run_request(cache, iota_tokens(next, 9));
      KVKIT_EXPECT_INVARIANTS(cache);
    }
    return hot_hits;
  };
  EXPECT_EQ(run(sieve), 39u);
  EXPECT_EQ(run(lru), 20u);
  EXPECT_EQ(lru.stats().cascade_evictions, 0u);
  EXPECT_EQ(sieve.stats().cascade_evictions, 0u);
}

}  // namespace
}  // namespace kvkit::test

namespace kvkit::test {
namespace {

// A block's first touch is its registration. fork() shares a partially filled block that is not
// cached yet; when that block is later filled and registered, it has not been hit, so it must not
// be marked visited.
TEST(SieveEviction, InACacheAForkedPartialBlockIsNotVisitedWhenRegistered) {
  auto c = make_cache_with<sieve_eviction>(8, 4);
  auto a = c.admit(iota_tokens(1, 6));  // one full block and a partial one
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(c.commit(a->id).ok());
  auto f = c.fork(a->id);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(c.finish(*f).ok());
  const std::vector<token_id> more = {7, 8};
  ASSERT_TRUE(c.append(a->id, more).ok());  // fills the partial block in place
  ASSERT_TRUE(c.commit(a->id).ok());        // and registers it
  const auto v = c.sequence(a->id);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(c.eviction().visited_bit(v->blocks[1]));
  EXPECT_TRUE(c.eviction().visited_bit(v->blocks[0])) << "fork hit the cached first block";
  ASSERT_TRUE(c.finish(a->id).ok());
  KVKIT_EXPECT_INVARIANTS(c);
}

}  // namespace
}  // namespace kvkit::test
