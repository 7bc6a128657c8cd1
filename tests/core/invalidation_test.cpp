// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Regression: invalidating a namespace whose blocks are all unreferenced released its slot twice,
// so two later namespaces shared it and invalidated K/V was served again.
#include <kvkit/kvkit.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace {

using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                    kvkit::lru_eviction, kvkit::no_storage>;

std::vector<kvkit::token_id> prompt(kvkit::token_id base) {
  std::vector<kvkit::token_id> p(12);
  for (int i = 0; i < 12; ++i)
    p[static_cast<std::size_t>(i)] = base + i;
  return p;
}

TEST(Invalidation, RepeatedTenantInvalidationNeverRevivesBlocks) {
  auto cache = cache_t::create({.seed = 3}, kvkit::no_storage::create(4, 64).value()).value();
  const kvkit::request_options tenant{.tenant_salt = 1};
  const auto a = prompt(100), b = prompt(200), d = prompt(300);

  auto first = cache.admit(a, tenant).value();
  ASSERT_TRUE(cache.commit(first.id));
  ASSERT_TRUE(cache.finish(first.id));
  EXPECT_EQ(cache.invalidate_tenant(1), 3u);  // all three blocks unreferenced: freed now
  ASSERT_TRUE(cache.check_invariants()) << cache.check_invariants().message();

  auto live = cache.admit(b, tenant).value();
  ASSERT_TRUE(cache.commit(live.id));
  EXPECT_EQ(cache.match(b, tenant), 8u);
  EXPECT_EQ(cache.invalidate_tenant(1), 0u);  // b's blocks are referenced: freed on release
  EXPECT_EQ(cache.match(b, tenant), 0u);
  // Held by the live sequence, but no longer cached: the gauge does not count them.
  EXPECT_EQ(cache.stats().blocks_cached, 0u);
  EXPECT_EQ(cache.stats().blocks_referenced, 3u);

  auto other = cache.admit(d, tenant).value();
  ASSERT_TRUE(cache.check_invariants()) << cache.check_invariants().message();
  EXPECT_EQ(cache.match(b, tenant), 0u) << "invalidated blocks were hit again";
  ASSERT_TRUE(cache.finish(live.id));
  EXPECT_EQ(cache.stats().invalidated_blocks, 6u);
  ASSERT_TRUE(cache.finish(other.id));
  ASSERT_TRUE(cache.check_invariants()) << cache.check_invariants().message();
  EXPECT_EQ(cache.stats().blocks_cached, 0u);
  EXPECT_EQ(cache.available_blocks(), 64u);
}

}  // namespace
