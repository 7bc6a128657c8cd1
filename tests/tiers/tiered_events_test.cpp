// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit::listeners: tiers under the pool and a KV-event sink on one cache. The composition
// promotes exactly as the tiers alone do (the same admissions, request by request, on a random
// workload), and its events rebuild exactly the blocks the pool holds after every request,
// promoted blocks included.
#include <kvkit/event_listener.hpp>
#include <kvkit/events.hpp>
#include <kvkit/listeners.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "tiers/tiered_test_support.hpp"

namespace {

using kvkit::token_id;
using kvkit::test::host_t;
using kvkit::test::make_host;
using kvkit::test::prompt_of;
using kvkit::test::run_request;
using tiers_t = kvkit::tiered<host_t>;
using events_t = kvkit::event_listener<kvkit::recording_event_sink>;
using both_t = kvkit::listeners<tiers_t, events_t>;

template <class Cache>
std::map<std::uint64_t, std::uint32_t> cached_keys(const Cache& c) {
  std::map<std::uint64_t, std::uint32_t> out;
  for (kvkit::block_id b = 0; b < c.num_blocks(); ++b) {
    if (const std::uint64_t k = c.block_key(b); k != 0)
      ++out[k];
  }
  return out;
}

std::map<std::uint64_t, std::uint32_t> resident_keys(const kvkit::recording_event_sink& sink) {
  std::map<std::uint64_t, std::uint32_t> out;
  for (const auto& [hash, block] : sink.resident().blocks())
    out[hash] = block.copies;
  return out;
}

static_assert(kvkit::detail::listener_promotes<both_t, kvkit::host_storage<kvkit::fp16>>);
static_assert(!kvkit::listener_skips_removed_namespace<both_t>,
              "the tiers read a removed block's namespace");
static_assert(kvkit::listener_skips_removed_namespace<kvkit::listeners<events_t>>);

TEST(Listeners, TiersAndEventsOnOneCacheAgreeWithEachAlone) {
  constexpr std::uint32_t pool = 12, host = 24;
  auto tiers_only = kvkit::test::make_cache<tiers_t>(pool);
  auto both = kvkit::test::make_cache<both_t>(pool);
  tiers_only.listener().attach<0>(make_host(host));
  both.listener().get<0>().attach<0>(make_host(host));
  kvkit::recording_event_sink sink;
  both.listener().get<1>().attach(sink);
  ASSERT_TRUE(both.listener().listening());

  std::mt19937_64 rng(2026);
  std::vector<std::vector<token_id>> prefixes;
  for (token_id i = 0; i < 6; ++i)
    prefixes.push_back(prompt_of(1000 * (i + 1), 4 * (2 + i % 3)));
  std::uint64_t promoted = 0, pool_hits = 0;
  for (int r = 0; r < 400; ++r) {
    std::vector<token_id> prompt = prefixes[rng() % prefixes.size()];
    const std::size_t suffix = rng() % 10;
    for (std::size_t i = 0; i < suffix; ++i)
      prompt.push_back(static_cast<token_id>(50000 + rng() % 8));
    const kvkit::request_options o{.tenant_salt = rng() % 4 == 0 ? 9u : 0u};
    const kvkit::admission a = run_request(tiers_only, prompt, o);
    const kvkit::admission b = run_request(both, prompt, o);
    ASSERT_EQ(a.request.cached_tokens, b.request.cached_tokens) << "request " << r;
    ASSERT_EQ(a.cached_blocks, b.cached_blocks) << "request " << r;
    ASSERT_EQ(a.tier_cached_tokens, b.tier_cached_tokens) << "request " << r;
    promoted += b.tier_cached_tokens[0];
    pool_hits += b.request.cached_tokens - b.tier_cached_tokens[0];
    both.listener().get<1>().flush();
    ASSERT_EQ(resident_keys(sink), cached_keys(both)) << "request " << r;
    if (r % 97 == 96) {  // invalidation reaches the tiers of both caches alike
      EXPECT_EQ(tiers_only.invalidate_tenant(9), both.invalidate_tenant(9));
      both.listener().get<1>().flush();
      ASSERT_EQ(resident_keys(sink), cached_keys(both)) << "after invalidation " << r;
    }
  }
  // The workload exercised both the pool and the tier, and the tier's counters agree.
  EXPECT_GT(promoted, 0u);
  EXPECT_GT(pool_hits, 0u);
  EXPECT_EQ(tiers_only.listener().stats().levels[0].promoted_tokens,
            both.listener().get<0>().stats().levels[0].promoted_tokens);
  EXPECT_EQ(tiers_only.listener().stats().levels[0].demoted_blocks,
            both.listener().get<0>().stats().levels[0].demoted_blocks);
  EXPECT_EQ(tiers_only.stats().blocks_cached, both.stats().blocks_cached);

  both.clear();
  both.listener().get<1>().flush();
  EXPECT_TRUE(resident_keys(sink).empty());
  EXPECT_EQ(sink.events().back().kind, kvkit::event_kind::cleared);
}

TEST(Listeners, ADetachedSinkStopsOnlyTheEvents) {
  auto both = kvkit::test::make_cache<both_t>(8);
  both.listener().get<0>().attach<0>(make_host(64));
  kvkit::recording_event_sink sink;
  both.listener().get<1>().attach(sink);
  const auto a = prompt_of(1000, 17);
  run_request(both, a);
  const std::size_t seen = sink.events().size();
  EXPECT_EQ(seen, 4u);  // four whole blocks stored
  both.listener().get<1>().detach();
  EXPECT_TRUE(both.listener().listening()) << "the tiers still listen";
  run_request(both, prompt_of(2000, 32));
  run_request(both, prompt_of(3000, 32));
  EXPECT_EQ(sink.events().size(), seen);
  // `a` was demoted while the sink was detached, and comes back from the host tier.
  const auto adm = run_request(both, a);
  EXPECT_EQ(adm.tier_cached_tokens[0], 16u);
}

}  // namespace
