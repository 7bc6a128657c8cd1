// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// lowest_index_allocator: lowest free id first (checked against a std::set model at every size
// class of the bitmap: one word, two and three summary levels), high_water_mark(), and use inside
// a prefix_cache.

#include <kvkit/allocator/lowest_index.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/random_cache_workload.hpp"

namespace kvkit::test {
namespace {

TEST(LowestIndexAllocator, HandsOutAscendingIdsThenInvalid) {
  lowest_index_allocator a(5);
  EXPECT_EQ(a.capacity(), 5u);
  EXPECT_EQ(a.free_count(), 5u);
  for (block_id b = 0; b < 5; ++b)
    EXPECT_EQ(a.allocate(), b);
  EXPECT_EQ(a.allocate(), invalid_block);
  EXPECT_EQ(a.free_count(), 0u);
}

TEST(LowestIndexAllocator, LowestFreeIdFirstAfterArbitraryFrees) {
  lowest_index_allocator a(200);
  for (block_id b = 0; b < 150; ++b)
    ASSERT_EQ(a.allocate(), b);
  for (block_id b : {130u, 7u, 64u, 63u, 149u, 0u, 100u})
    a.deallocate(b);
  EXPECT_EQ(a.free_count(), 57u);
  for (block_id b : {0u, 7u, 63u, 64u, 100u, 130u, 149u, 150u, 151u})
    EXPECT_EQ(a.allocate(), b);
  EXPECT_FALSE(a.is_free(149));
  EXPECT_TRUE(a.is_free(152));
}

TEST(LowestIndexAllocator, CapacityZeroHasNothingToGive) {
  lowest_index_allocator a(0);
  EXPECT_EQ(a.free_count(), 0u);
  EXPECT_EQ(a.allocate(), invalid_block);
  EXPECT_EQ(a.high_water_mark(), 0u);
}

TEST(LowestIndexAllocator, HighWaterMarkIsOnePastTheHighestIdInUse) {
  lowest_index_allocator a(5000);
  EXPECT_EQ(a.high_water_mark(), 0u);
  for (int i = 0; i < 4500; ++i)
    (void)a.allocate();
  EXPECT_EQ(a.high_water_mark(), 4500u);
  a.deallocate(10);  // a hole below the top changes nothing
  EXPECT_EQ(a.high_water_mark(), 4500u);
  for (block_id b = 4499; b >= 4000; --b)
    a.deallocate(b);  // free the top 500
  EXPECT_EQ(a.high_water_mark(), 4000u);
  for (block_id b = 3999; b >= 11; --b)
    a.deallocate(b);
  EXPECT_EQ(a.high_water_mark(), 10u);  // 0..9 in use
  for (block_id b = 0; b < 10; ++b)
    a.deallocate(b);
  EXPECT_EQ(a.high_water_mark(), 0u);
  EXPECT_EQ(a.free_count(), 5000u);
  EXPECT_EQ(a.allocate(), 0u);
  EXPECT_EQ(a.high_water_mark(), 1u);
}

// Random alloc/free against a model at sizes that cross word and level boundaries: allocate()
// returns the model's lowest free id, high_water_mark() its highest used id + 1, and the
// high-water mark never exceeds the most blocks ever in use at once (the compact-footprint
// promise: id b is handed out only when 0..b-1 are all in use).
TEST(LowestIndexAllocator, MatchesSetModelAcrossLevelBoundaries) {
  for (std::uint32_t capacity : {1u, 63u, 64u, 65u, 127u, 4095u, 4096u, 4097u, 70000u, 262145u}) {
    SCOPED_TRACE(capacity);
    lowest_index_allocator a(capacity);
    std::set<block_id> free_ids, used_ids;
    for (block_id b = 0; b < capacity; ++b)
      free_ids.insert(b);
    std::mt19937 rng(capacity);
    std::vector<block_id> held;
    std::uint32_t peak = 0;
    const int steps = capacity < 5000 ? 20000 : 60000;
    // Fill to a random level first so that big pools are exercised deep into their id range.
    const std::uint32_t fill = capacity > 1 ? capacity / 2 + rng() % (capacity / 2) : 0;
    for (std::uint32_t i = 0; i < fill; ++i) {
      const block_id b = a.allocate();
      ASSERT_EQ(b, *free_ids.begin());
      free_ids.erase(b);
      used_ids.insert(b);
      held.push_back(b);
    }
    peak = fill;
    for (int step = 0; step < steps; ++step) {
      const bool alloc = held.empty() || (held.size() < capacity && rng() % 100 < 50);
      if (alloc) {
        const block_id b = a.allocate();
        ASSERT_EQ(b, *free_ids.begin()) << "step " << step;
        free_ids.erase(b);
        used_ids.insert(b);
        held.push_back(b);
      } else {
        const std::size_t i = rng() % held.size();
        const block_id b = held[i];
        held[i] = held.back();
        held.pop_back();
        a.deallocate(b);
        free_ids.insert(b);
        used_ids.erase(b);
      }
      peak = std::max(peak, static_cast<std::uint32_t>(held.size()));
      ASSERT_EQ(a.free_count(), free_ids.size()) << "step " << step;
      const std::uint32_t hwm = used_ids.empty() ? 0u : *used_ids.rbegin() + 1;
      ASSERT_EQ(a.high_water_mark(), hwm) << "step " << step;
      ASSERT_LE(hwm, peak) << "step " << step;
    }
    // Drain: everything left comes out lowest first, then nothing.
    while (!free_ids.empty()) {
      ASSERT_EQ(a.allocate(), *free_ids.begin());
      free_ids.erase(free_ids.begin());
    }
    EXPECT_EQ(a.allocate(), invalid_block);
    EXPECT_EQ(a.high_water_mark(), capacity);
  }
}

TEST(LowestIndexAllocator, MetadataIsAboutOneBitPerBlock) {
  EXPECT_EQ(lowest_index_allocator(64).metadata_bytes(), 8u);  // one word, no summary
  // 4,096 blocks: 64 leaf words + 1 word in each of the two summaries.
  EXPECT_EQ(lowest_index_allocator(4096).metadata_bytes(), (64u + 2u) * 8u);
  // 2^20 blocks: 16,384 leaf words + 2 x (256 + 4 + 1) summary words (3 levels), 1.03 bits per
  // block.
  EXPECT_EQ(lowest_index_allocator(1u << 20).metadata_bytes(), (16384u + 2u * 261u) * 8u);
  EXPECT_EQ(policy_traits<lowest_index_allocator>::name(), "lowest_index");
}

TEST(LowestIndexAllocator, InsidePrefixCacheKeepsInvariantsAndACompactFootprint) {
  using cache_t = prefix_cache<lowest_index_allocator, hash_matcher, lru_eviction, no_storage>;
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    cache_t cache = make_cache<cache_t>(96, 4, seed);
    const workload_summary s =
        run_random_cache_workload(cache, seed, 3000, [](const cache_t& c, std::uint32_t peak) {
          // The cache frees before it evicts, so ids above the most blocks ever in use are
          // never touched.
          ASSERT_LE(c.allocator().high_water_mark(), peak);
          ASSERT_EQ(c.allocator().free_count(), c.stats().blocks_free);
        });
    EXPECT_GT(s.admitted, 500u);
    EXPECT_GT(s.out_of_blocks, 0u) << "the pool should run full at times";
  }
}

}  // namespace
}  // namespace kvkit::test
