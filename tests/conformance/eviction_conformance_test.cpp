// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The eviction conformance suite over every eviction policy, plus each policy's own order.

#include <kvkit/eviction/fifo.hpp>
#include <kvkit/eviction/lfu.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/eviction/priority.hpp>
#include <kvkit/eviction/sieve.hpp>
#include <kvkit/eviction/ttl.hpp>
#include <kvkit/testing/eviction_conformance.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace kvkit::testing {
namespace {

using eviction_policies = ::testing::Types<lru_eviction, lfu_eviction, fifo_eviction, ttl_eviction,
                                           priority_eviction, sieve_eviction>;
INSTANTIATE_TYPED_TEST_SUITE_P(all, eviction_conformance, eviction_policies);

std::vector<block_id> drain(lru_eviction& e) {
  std::vector<block_id> out;
  for (block_id b = e.victim(); b != invalid_block; b = e.victim())
    out.push_back(b);
  return out;
}

TEST(LruEviction, VictimsComeInInsertionOrder) {
  lru_eviction e(16);
  for (block_id b : {7u, 3u, 12u, 0u, 9u})
    e.insert(b);
  EXPECT_EQ(drain(e), (std::vector<block_id>{7, 3, 12, 0, 9}));
}

TEST(LruEviction, EraseAndReinsertMovesToTheMostRecentEnd) {
  lru_eviction e(16);
  for (block_id b = 0; b < 6; ++b)
    e.insert(b);
  e.erase(0);  // head
  e.erase(3);  // middle
  e.erase(5);  // tail
  e.insert(0);
  EXPECT_TRUE(e.contains(0));
  EXPECT_FALSE(e.contains(3));
  EXPECT_EQ(drain(e), (std::vector<block_id>{1, 2, 4, 0}));
}

TEST(LruEviction, InterleavedVictimsAndInsertsKeepOrder) {
  lru_eviction e(8);
  e.insert(4);
  e.insert(2);
  EXPECT_EQ(e.victim(), 4u);
  e.insert(6);
  e.insert(4);
  EXPECT_EQ(e.victim(), 2u);
  EXPECT_EQ(e.victim(), 6u);
  EXPECT_EQ(e.victim(), 4u);
  EXPECT_EQ(e.victim(), invalid_block);
  EXPECT_FALSE(e.contains(4));
}

TEST(LruEviction, MetadataIsEightBytesPerBlock) {
  EXPECT_EQ(lru_eviction(100).metadata_bytes(), 800u);
  EXPECT_EQ(policy_traits<lru_eviction>::name(), "lru");
}

}  // namespace
}  // namespace kvkit::testing
