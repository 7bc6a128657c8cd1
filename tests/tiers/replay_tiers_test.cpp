// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit-replay with tiers (benchmarks/replay/tiers.hpp) on the shipped Mooncake trace: the levels
// add up to the total, the pool's share equals a replay without tiers (a promoted block fills a
// block the pool allocates anyway), an unbounded remote level reaches the unlimited pool's hit
// rate, and a host tier lies between the pool alone and one pool of both sizes together.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "replay/tiers.hpp"
#include "support/shipped_trace.hpp"

namespace {

namespace rp = kvkit::replay;

TEST(ReplayTiers, LevelsOnTheShippedTrace) {
  std::ifstream in(kvkit::test::shipped_trace_path());
  if (!in)
    GTEST_SKIP() << kvkit::test::shipped_trace_missing();
  rp::parse_options po;
  auto t = rp::parse_trace(in, po);
  ASSERT_TRUE(t.ok()) << t.error().message();
  rp::replay_options o;
  o.capacity = 2196;
  auto pool = rp::replay(*t, o, "free_list", "hash", "lru");
  ASSERT_TRUE(pool.ok());
  rp::tier_options to;
  to.host_blocks = 8784;
  rp::tier_figures host_fig;
  auto host = rp::replay_tiered(*t, o, to, "lru", &host_fig);
  ASSERT_TRUE(host.ok()) << host.error().message();
  to.remote = "model";
  rp::tier_figures all_fig;
  auto all = rp::replay_tiered(*t, o, to, "lru", &all_fig);
  ASSERT_TRUE(all.ok()) << all.error().message();
  rp::replay_options big = o;
  big.capacity = 2196 + 8784;
  auto combined = rp::replay(*t, big, "free_list", "hash", "lru");
  rp::replay_options unlimited = o;
  unlimited.capacity = 0;
  auto ideal = rp::replay(*t, unlimited, "free_list", "hash", "lru");
  ASSERT_TRUE(combined.ok() && ideal.ok());

  for (const auto* r : {&*host, &*all})
    EXPECT_EQ(r->level_hit_tokens[0] + r->level_hit_tokens[1] + r->level_hit_tokens[2],
              r->hit_tokens);
  EXPECT_EQ(pool->level_hit_tokens[0], pool->hit_tokens) << "without tiers, all from the pool";
  EXPECT_EQ(host->level_hit_tokens[0], pool->hit_tokens);
  EXPECT_EQ(all->level_hit_tokens[0], pool->hit_tokens);
  EXPECT_EQ(host->level_hit_tokens[1], all->level_hit_tokens[1]);
  EXPECT_EQ(host->level_hit_tokens[2], 0u);
  EXPECT_GT(host->hit_tokens, pool->hit_tokens);
  EXPECT_LE(host->hit_tokens, combined->hit_tokens);
  EXPECT_EQ(all->hit_tokens, ideal->hit_tokens) << "an unbounded remote level misses nothing";
  EXPECT_EQ(all_fig.remote.total_errors(), 0u);
  EXPECT_EQ(host_fig.demoted, host->evictions);
  EXPECT_EQ(all_fig.demoted, 2 * all->evictions) << "each eviction goes to both levels";
}

TEST(ReplayTiers, BadRemoteIsNamed) {
  rp::tier_options to;
  to.remote = "somewhere";
  const auto s = rp::check_tiers(to);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("accepted: model"), std::string::npos) << s.message();
}

}  // namespace
