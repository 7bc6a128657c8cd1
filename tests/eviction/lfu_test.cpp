// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// lfu_eviction: lowest aged frequency first (LFU-DA), ties by candidacy order; the age fades old
// popularity; in a cache, a reused prefix outlives one-off prompts that LRU would keep.

#include <kvkit/eviction/lfu.hpp>
#include <kvkit/eviction/lru.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/eviction_testing.hpp"

namespace kvkit::test {
namespace {

void touch_n(lfu_eviction& e, block_id b, int n) {
  for (int i = 0; i < n; ++i)
    e.touch(b, access_info{});
}

std::vector<block_id> drain(lfu_eviction& e) {
  std::vector<block_id> out;
  for (block_id b = e.victim(); b != invalid_block; b = e.victim())
    out.push_back(b);
  return out;
}

TEST(LfuEviction, LowestFrequencyFirstTiesInInsertionOrder) {
  lfu_eviction e(16);
  const int freq[] = {3, 1, 4, 1, 5, 2};  // blocks 0..5
  for (block_id b = 0; b < 6; ++b)
    touch_n(e, b, freq[b]);
  for (block_id b : {5u, 4u, 3u, 2u, 1u, 0u})
    e.insert(b);
  EXPECT_EQ(e.frequency(4), 5u);
  // Frequency 1: blocks 3 then 1 (3 was inserted first); then 2 (block 5), 3, 4, 5.
  EXPECT_EQ(drain(e), (std::vector<block_id>{3, 1, 5, 0, 2, 4}));
}

TEST(LfuEviction, AgeIsTheKeyOfTheLastVictim) {
  lfu_eviction e(8);
  touch_n(e, 0, 2);
  touch_n(e, 1, 5);
  e.insert(0);
  e.insert(1);
  EXPECT_EQ(e.age(), 0u);
  EXPECT_EQ(e.victim(), 0u);
  EXPECT_EQ(e.age(), 2u);
  // A block with frequency 1 now enters at key 2 + 1 = 3, below block 1's 5.
  touch_n(e, 2, 1);
  e.insert(2);
  EXPECT_EQ(e.victim(), 2u);
  EXPECT_EQ(e.age(), 3u);
  EXPECT_EQ(e.victim(), 1u);
  EXPECT_EQ(e.age(), 5u);
}

// Dynamic aging: block 0 was hot (10 accesses) long ago. Nine one-off blocks come and go, each
// raising the age by one; then two blocks used only twice enter at age 9 + 2 = 11 and outrank
// block 0's key of 10. Plain LFU would keep block 0 forever.
TEST(LfuEviction, OldPopularityFadesAsTheAgeGrows) {
  lfu_eviction e(16);
  touch_n(e, 0, 10);
  e.insert(0);
  for (block_id b = 1; b <= 9; ++b) {
    touch_n(e, b, 1);
    e.insert(b);
    EXPECT_EQ(e.victim(), b) << "a one-off block goes before the hot one";
    EXPECT_EQ(e.age(), b);
  }
  touch_n(e, 10, 2);
  e.insert(10);
  touch_n(e, 11, 2);
  e.insert(11);
  EXPECT_EQ(e.victim(), 0u) << "the block hot long ago loses to recent moderately used ones";
  EXPECT_EQ(drain(e), (std::vector<block_id>{10, 11}));
}

TEST(LfuEviction, TouchOfACandidateRekeysIt) {
  lfu_eviction e(8);
  e.insert(0);
  e.insert(1);
  e.insert(2);
  e.touch(0, access_info{});  // 0 moves from key 0 to key 1
  EXPECT_EQ(drain(e), (std::vector<block_id>{1, 2, 0}));
}

TEST(LfuEviction, ForgetResetsTheFrequency) {
  lfu_eviction e(8);
  touch_n(e, 3, 7);
  EXPECT_EQ(e.frequency(3), 7u);
  e.forget(3);
  EXPECT_EQ(e.frequency(3), 0u);
  touch_n(e, 3, 1);
  touch_n(e, 4, 2);
  e.insert(4);
  e.insert(3);
  EXPECT_EQ(drain(e), (std::vector<block_id>{3, 4}));
}

TEST(LfuEviction, NameAndMetadata) {
  EXPECT_EQ(policy_traits<lfu_eviction>::name(), "lfu");
  EXPECT_TRUE(policy_traits<lfu_eviction>::leaves_only());
  EXPECT_EQ(lfu_eviction(100).metadata_bytes(), 2800u);
}

// Pool of 8 blocks of 4 tokens. H (9 tokens, 2 cached blocks) runs three times; one-offs A and B
// follow; C then needs one eviction. LRU takes H's tail (released first), LFU takes A's (lowest
// frequency, inserted before B's).
TEST(LfuEviction, InACacheAReusedPrefixOutlivesOneOffPrompts) {
  const auto h = iota_tokens(1, 9);
  const auto a = iota_tokens(100, 9);
  const auto b = iota_tokens(200, 9);
  const auto c = iota_tokens(300, 9);
  auto lfu = make_cache_with<lfu_eviction>(8, 4);
  auto lru = make_cache_with<lru_eviction>(8, 4);
  auto run = [&](auto& cache) {
    for (int i = 0; i < 3; ++i)
      run_request(cache, h);
    run_request(cache, a);
    run_request(cache, b);
    EXPECT_EQ(cache.stats().blocks_free, 2u);
    run_request(cache, c);
    EXPECT_EQ(cache.stats().evictions, 1u);
    EXPECT_EQ(cache.stats().cascade_evictions, 0u);
    KVKIT_EXPECT_INVARIANTS(cache);
  };
  run(lfu);
  run(lru);
  EXPECT_EQ(lfu.match(h), 8u);
  EXPECT_EQ(lfu.match(a), 4u);
  EXPECT_EQ(lfu.match(b), 8u);
  EXPECT_EQ(lru.match(h), 4u);
  EXPECT_EQ(lru.match(a), 8u);
}

}  // namespace
}  // namespace kvkit::test

namespace kvkit::test {
namespace {

// fork() shares a partially filled block that is not cached yet; it is counted once, when commit
// registers it, like any other block.
TEST(LfuEviction, InACacheAForkedPartialBlockCountsFromItsRegistration) {
  auto c = make_cache_with<lfu_eviction>(8, 4);
  auto a = c.admit(iota_tokens(1, 6));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(c.commit(a->id).ok());
  auto f = c.fork(a->id);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(c.finish(*f).ok());
  const std::vector<token_id> more = {7, 8};
  ASSERT_TRUE(c.append(a->id, more).ok());
  ASSERT_TRUE(c.commit(a->id).ok());
  const auto v = c.sequence(a->id);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(c.eviction().frequency(v->blocks[0]), 2u);  // registered, then hit by the fork
  EXPECT_EQ(c.eviction().frequency(v->blocks[1]), 1u);  // registered
  ASSERT_TRUE(c.finish(a->id).ok());
}

}  // namespace
}  // namespace kvkit::test
