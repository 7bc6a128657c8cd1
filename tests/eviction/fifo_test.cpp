// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// fifo_eviction: first registered (first touched since forgotten), first evicted; hits do not
// change the order.

#include <kvkit/eviction/fifo.hpp>
#include <kvkit/eviction/lru.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/eviction_testing.hpp"

namespace kvkit::test {
namespace {

std::vector<block_id> drain(fifo_eviction& e) {
  std::vector<block_id> out;
  for (block_id b = e.victim(); b != invalid_block; b = e.victim())
    out.push_back(b);
  return out;
}

TEST(FifoEviction, RegistrationOrderNotReleaseOrder) {
  fifo_eviction e(16);
  for (block_id b : {5u, 2u, 7u, 0u})
    e.touch(b, access_info{});  // registered in this order
  for (block_id b : {0u, 7u, 2u, 5u})
    e.insert(b);  // released in reverse
  EXPECT_EQ(drain(e), (std::vector<block_id>{5, 2, 7, 0}));
}

TEST(FifoEviction, HitsDoNotChangeTheOrder) {
  fifo_eviction e(8);
  for (block_id b = 0; b < 4; ++b) {
    e.touch(b, access_info{});
    e.insert(b);
  }
  for (int i = 0; i < 5; ++i) {  // block 0 is hit again and again
    e.erase(0);
    e.touch(0, access_info{});
    e.insert(0);
  }
  e.touch(1, access_info{});  // a touch while a candidate changes nothing either
  EXPECT_EQ(drain(e), (std::vector<block_id>{0, 1, 2, 3}));
}

TEST(FifoEviction, ForgottenBlockIsKeyedAgainByItsNextTouch) {
  fifo_eviction e(8);
  for (block_id b = 0; b < 3; ++b) {
    e.touch(b, access_info{});
    e.insert(b);
  }
  EXPECT_EQ(e.victim(), 0u);
  e.forget(0);
  e.touch(0, access_info{});  // new content in block 0: the newest
  e.insert(0);
  EXPECT_EQ(drain(e), (std::vector<block_id>{1, 2, 0}));
}

TEST(FifoEviction, UntouchedBlocksAreKeyedWhenInserted) {
  fifo_eviction e(8);
  e.insert(6);
  e.touch(3, access_info{});
  e.insert(4);
  e.insert(3);
  EXPECT_EQ(drain(e), (std::vector<block_id>{6, 3, 4}));
}

TEST(FifoEviction, NameAndMetadata) {
  EXPECT_EQ(policy_traits<fifo_eviction>::name(), "fifo");
  EXPECT_TRUE(policy_traits<fifo_eviction>::leaves_only());
  EXPECT_EQ(fifo_eviction(100).metadata_bytes(), 1600u);
}

// Pool of 6 blocks of 4 tokens: A and B (9 tokens, 2 cached blocks each) then A again (a hit);
// C needs one eviction. FIFO takes A's tail (registered first) although A was used last; LRU
// takes B's.
TEST(FifoEviction, InACacheTheFirstRegisteredPrefixGoesFirst) {
  const auto a = iota_tokens(1, 9);
  const auto b = iota_tokens(100, 9);
  const auto c = iota_tokens(200, 9);
  auto fifo = make_cache_with<fifo_eviction>(6, 4);
  auto lru = make_cache_with<lru_eviction>(6, 4);
  auto run = [&](auto& cache) {
    run_request(cache, a);
    run_request(cache, b);
    EXPECT_EQ(run_request(cache, a), 8u);
    run_request(cache, c);
    EXPECT_EQ(cache.stats().evictions, 1u);
    KVKIT_EXPECT_INVARIANTS(cache);
  };
  run(fifo);
  run(lru);
  EXPECT_EQ(fifo.match(a), 4u);
  EXPECT_EQ(fifo.match(b), 8u);
  EXPECT_EQ(lru.match(a), 8u);
  EXPECT_EQ(lru.match(b), 4u);
  // Then A's first block, now a leaf, is the oldest: FIFO takes it next.
  run_request(fifo, iota_tokens(300, 5));
  EXPECT_EQ(fifo.match(a), 0u);
  EXPECT_EQ(fifo.match(b), 8u);
  EXPECT_EQ(fifo.stats().cascade_evictions, 0u);
}

}  // namespace
}  // namespace kvkit::test
