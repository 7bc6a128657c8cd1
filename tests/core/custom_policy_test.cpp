// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A user-written eviction policy with only the required members composes with the built-in
// policies and works. Its order (newest released first) offers parents before their children, so
// the cache must evict the victim's whole subtree to leave no cached block unreachable.

#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/testing/eviction_conformance.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "support/cache_testing.hpp"

namespace {

// Evicts the most recently released block first. Only the required members: no touch(), no
// metadata_bytes(), no name.
class newest_first_eviction {
 public:
  explicit newest_first_eviction(std::uint32_t capacity) { order_.reserve(capacity); }
  void insert(kvkit::block_id b) { order_.push_back(b); }
  void erase(kvkit::block_id b) { order_.erase(std::find(order_.begin(), order_.end(), b)); }
  kvkit::block_id victim() {
    if (order_.empty())
      return kvkit::invalid_block;
    const kvkit::block_id b = order_.back();
    order_.pop_back();
    return b;
  }
  std::uint32_t size() const { return static_cast<std::uint32_t>(order_.size()); }

 private:
  std::vector<kvkit::block_id> order_;
};

static_assert(kvkit::eviction_policy<newest_first_eviction>);
static_assert(kvkit::policy_traits<newest_first_eviction>::name() == "custom");

using custom_cache = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                         newest_first_eviction, kvkit::no_storage>;
using lru_cache = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                      kvkit::lru_eviction, kvkit::no_storage>;

TEST(CustomEvictionPolicy, ComposesAndServesHits) {
  using kvkit::test::iota_tokens;
  custom_cache c = kvkit::test::make_cache<custom_cache>(8, 4);
  const auto p = iota_tokens(1, 9);
  auto a = c.admit(p);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(c.commit(a->id).ok());
  ASSERT_TRUE(c.finish(a->id).ok());
  KVKIT_EXPECT_INVARIANTS(c);
  EXPECT_EQ(c.stats().blocks_evictable, 2u);
  EXPECT_EQ(c.eviction().size(), 2u);
  auto b = c.admit(p);  // takes both blocks back out of the policy
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->request.cached_tokens, 8u);
  EXPECT_EQ(c.eviction().size(), 0u);
  KVKIT_EXPECT_INVARIANTS(c);
}

// Pool of 5 blocks of 4 tokens: a 9-token prompt leaves its 2 full blocks cached and evictable
// and 3 blocks free; then a 13-token prompt needs 4 blocks, so one eviction.
template <class Cache>
kvkit::cache_stats evict_once(Cache& c, const std::vector<kvkit::token_id>& p) {
  using kvkit::test::iota_tokens;
  auto a = c.admit(p);
  EXPECT_TRUE(a.ok()) << a.status().message();
  EXPECT_TRUE(c.commit(a->id).ok());
  EXPECT_TRUE(c.finish(a->id).ok());
  EXPECT_EQ(c.stats().blocks_free, 3u);
  auto b = c.admit(iota_tokens(100, 13));
  EXPECT_TRUE(b.ok()) << b.status().message();
  KVKIT_EXPECT_INVARIANTS(c);
  return c.stats();
}

TEST(CustomEvictionPolicy, ParentVictimIsEvictedWithItsSubtree) {
  const auto p = kvkit::test::iota_tokens(1, 9);
  custom_cache c = kvkit::test::make_cache<custom_cache>(5, 4);
  const kvkit::cache_stats s = evict_once(c, p);
  // The victim was the first block (released last); its child went with it.
  EXPECT_EQ(s.evictions, 2u);
  EXPECT_EQ(s.cascade_evictions, 1u);
  EXPECT_EQ(s.blocks_cached, 0u);
  EXPECT_EQ(s.blocks_evictable, 0u);
  EXPECT_EQ(s.blocks_free, 1u);
  EXPECT_EQ(c.match(p), 0u);

  // LRU offers the child first: one block goes, the first block stays reachable.
  lru_cache l = kvkit::test::make_cache<lru_cache>(5, 4);
  const kvkit::cache_stats ls = evict_once(l, p);
  EXPECT_EQ(ls.evictions, 1u);
  EXPECT_EQ(ls.cascade_evictions, 0u);
  EXPECT_EQ(ls.blocks_cached, 1u);
  EXPECT_EQ(ls.blocks_free, 0u);
  EXPECT_EQ(l.match(p), 4u);
}

TEST(CustomEvictionPolicy, MetadataOfAPolicyThatDoesNotReportItIsZero) {
  const newest_first_eviction e(16);
  EXPECT_EQ(kvkit::policy_traits<newest_first_eviction>::metadata_bytes(e), 0u);
  custom_cache c = kvkit::test::make_cache<custom_cache>(16, 4);
  lru_cache l = kvkit::test::make_cache<lru_cache>(16, 4);
  // Same cache but for the eviction policy: the difference is exactly LRU's own report.
  EXPECT_EQ(l.stats().metadata_bytes - c.stats().metadata_bytes,
            kvkit::lru_eviction(16).metadata_bytes());
}

}  // namespace

namespace kvkit::testing {
// The user's policy passes the same conformance suite as the built-in ones.
INSTANTIATE_TYPED_TEST_SUITE_P(custom, eviction_conformance,
                               ::testing::Types<newest_first_eviction>);
}  // namespace kvkit::testing
