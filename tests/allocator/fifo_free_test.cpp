// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// fifo_free_allocator: blocks come back in the order they were freed (checked against a
// std::deque model, across many wraps of the ring), and use inside a prefix_cache.

#include <kvkit/allocator/fifo_free.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/random_cache_workload.hpp"

namespace kvkit::test {
namespace {

TEST(FifoFreeAllocator, HandsOutAscendingIdsThenInvalid) {
  fifo_free_allocator a(5);
  EXPECT_EQ(a.capacity(), 5u);
  for (block_id b = 0; b < 5; ++b)
    EXPECT_EQ(a.allocate(), b);
  EXPECT_EQ(a.allocate(), invalid_block);
  EXPECT_EQ(a.free_count(), 0u);
}

TEST(FifoFreeAllocator, FreedBlocksComeBackInTheOrderTheyWereFreed) {
  fifo_free_allocator a(8);
  for (block_id b = 0; b < 8; ++b)
    ASSERT_EQ(a.allocate(), b);
  for (block_id b : {5u, 1u, 7u, 0u})
    a.deallocate(b);
  EXPECT_EQ(a.allocate(), 5u);
  a.deallocate(3);  // queued behind 1, 7, 0
  EXPECT_EQ(a.allocate(), 1u);
  EXPECT_EQ(a.allocate(), 7u);
  EXPECT_EQ(a.allocate(), 0u);
  EXPECT_EQ(a.allocate(), 3u);
  EXPECT_EQ(a.allocate(), invalid_block);
}

TEST(FifoFreeAllocator, AFreedBlockWaitsBehindEveryBlockAlreadyFree) {
  fifo_free_allocator a(8);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(a.allocate(), static_cast<block_id>(i));
  a.deallocate(1);
  a.deallocate(0);
  // 3..7 were free before 1 and 0 were returned, so they come first.
  for (block_id b : {3u, 4u, 5u, 6u, 7u, 1u, 0u})
    EXPECT_EQ(a.allocate(), b);
  EXPECT_EQ(a.allocate(), invalid_block);
}

TEST(FifoFreeAllocator, MatchesDequeModelOverManyWraps) {
  for (std::uint32_t capacity : {1u, 2u, 3u, 64u, 1000u}) {
    SCOPED_TRACE(capacity);
    fifo_free_allocator a(capacity);
    std::deque<block_id> model;
    for (block_id b = 0; b < capacity; ++b)
      model.push_back(b);
    std::vector<block_id> held;
    std::mt19937 rng(capacity);
    for (int step = 0; step < 50000; ++step) {
      const bool alloc = held.empty() || (held.size() < capacity && rng() % 100 < 50);
      if (alloc) {
        const block_id b = a.allocate();
        ASSERT_EQ(b, model.front()) << "step " << step;
        model.pop_front();
        held.push_back(b);
      } else {
        const std::size_t i = rng() % held.size();
        const block_id b = held[i];
        held[i] = held.back();
        held.pop_back();
        a.deallocate(b);
        model.push_back(b);
      }
      ASSERT_EQ(a.free_count(), model.size()) << "step " << step;
    }
  }
}

TEST(FifoFreeAllocator, MetadataIsFourBytesPerBlock) {
  EXPECT_EQ(fifo_free_allocator(100).metadata_bytes(), 400u);
  EXPECT_EQ(policy_traits<fifo_free_allocator>::name(), "fifo_free");
}

TEST(FifoFreeAllocator, InsidePrefixCacheKeepsInvariants) {
  using cache_t = prefix_cache<fifo_free_allocator, hash_matcher, lru_eviction, no_storage>;
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    cache_t cache = make_cache<cache_t>(96, 4, seed);
    const workload_summary s =
        run_random_cache_workload(cache, seed, 3000, [](const cache_t& c, std::uint32_t) {
          ASSERT_EQ(c.allocator().free_count(), c.stats().blocks_free);
        });
    EXPECT_GT(s.admitted, 500u);
    EXPECT_GT(s.out_of_blocks, 0u) << "the pool should run full at times";
  }
}

}  // namespace
}  // namespace kvkit::test
