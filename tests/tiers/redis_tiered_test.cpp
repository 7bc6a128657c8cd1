// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A Redis tier under real caches (kvkit::tiered), against a real redis-server that each test
// starts on a free loopback port: two caches share a prefix through it; the server killed,
// paused and restarted mid-run (requests still served, one report per episode, never wrong
// K/V); a corrupt value is a miss.
#include <kvkit/tiers/redis_tier.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/redis_server.hpp"
#include "tiers/tiered_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using kvkit::tier_error;
using kvkit::token_id;
using kvkit::test::host_t;
using kvkit::test::make_cache;
using kvkit::test::make_host;
using kvkit::test::pool_layout;
using kvkit::test::prompt_of;
using kvkit::test::redis_server;
using kvkit::test::run_request;
using remote_only_t = kvkit::tiered<kvkit::redis_tier>;
using two_level_t = kvkit::tiered<host_t, kvkit::redis_tier>;

struct episodes {
  std::shared_ptr<std::vector<kvkit::tier_event>> events =
      std::make_shared<std::vector<kvkit::tier_event>>();
  std::function<void(const kvkit::tier_event&)> fn() const {
    auto e = events;
    return [e](const kvkit::tier_event& ev) {
      auto copy = ev;
      copy.message = {};  // the view dies with the call
      copy.tier = {};
      e->push_back(copy);
    };
  }
  std::size_t begins(tier_error kind) const {
    std::size_t n = 0;
    for (const auto& e : *events)
      n += e.what == kvkit::tier_event::kind::episode_begin && e.error == kind ? 1 : 0;
    return n;
  }
};

kvkit::redis_tier make_remote(
    const redis_server& server, const episodes& ep,
    kvkit::tier_write_policy write = kvkit::tier_write_policy::on_eviction) {
  kvkit::redis_tier_options o;
  o.port = server.port();
  o.model = "tiered-test";
  o.connect_timeout = 200ms;
  o.command_timeout = 150ms;
  o.retry_initial = 20ms;
  o.retry_max = 160ms;
  o.write = write;
  o.on_event = ep.fn();
  return kvkit::redis_tier::create(pool_layout(1), o).value();
}

TEST(RedisUnderThePool, TwoCachesShareAPrefixThroughOneServer) {
  redis_server server;
  episodes ep;
  auto a = make_cache<remote_only_t>(32, 42);
  auto b = make_cache<remote_only_t>(32, 42);
  a.listener().attach<0>(make_remote(server, ep, kvkit::tier_write_policy::through));
  b.listener().attach<0>(make_remote(server, ep));
  const auto sys = prompt_of(100, 40);  // 10 blocks, written through on commit
  run_request(a, sys);
  EXPECT_EQ(a.listener().stats().levels[0].written_blocks, 10u);
  auto prompt = sys;
  prompt.insert(prompt.end(), {7, 7, 7});
  const auto adm = run_request(b, prompt);  // bytes compared block by block
  EXPECT_EQ(adm.request.cached_tokens, 40u);
  EXPECT_EQ(adm.tier_cached_tokens[0], 40u);
  EXPECT_EQ(b.listener().stats().levels[0].tier.round_trips, 2u)
      << "one round trip for the generations, one for the chain";
  EXPECT_EQ(b.listener().stats().levels[0].tier.total_errors(), 0u);
}

// Demotion and write-through move the blocks of one cache operation in one pipelined round trip,
// whatever their number; the tier's own round-trip counter says how many the operation cost.
std::uint64_t round_trips(auto& cache) {
  return cache.listener().stats().levels[0].tier.round_trips;
}

TEST(RedisUnderThePool, AnAdmissionThatEvictsTenBlocksWritesThemInOneRoundTrip) {
  redis_server server;
  episodes ep;
  auto cache = make_cache<remote_only_t>(10, 45);  // a pool of exactly 10 blocks
  cache.listener().attach<0>(make_remote(server, ep));
  const auto a = prompt_of(100, 40);  // 10 blocks
  const auto b = prompt_of(900, 40);  // 10 other blocks: evicts every block of a
  run_request(cache, a);
  EXPECT_EQ(cache.listener().stats().levels[0].demoted_blocks, 0u);

  const std::uint64_t before = round_trips(cache);
  const auto adm_b = cache.admit(b);
  ASSERT_TRUE(adm_b.ok()) << adm_b.error().message();
  const auto st = cache.listener().stats().levels[0];
  EXPECT_EQ(st.demoted_blocks, 10u) << "every evicted block of a is in Redis";
  EXPECT_EQ(st.tier.stored_blocks, 10u);
  EXPECT_EQ(round_trips(cache) - before, 2u)
      << "one round trip writes the ten evicted blocks, one asks for b's chain";
  EXPECT_EQ(adm_b->tier_cached_tokens[0], 0u);
  ASSERT_TRUE(cache.commit(adm_b->id).ok());
  ASSERT_TRUE(cache.finish(adm_b->id).ok());

  // The demoted chain comes back whole (bytes compared block by block), and b's ten blocks,
  // evicted by this admission, go down in one round trip before a's chain is loaded.
  const std::uint64_t before_a = round_trips(cache);
  const auto adm_a = run_request(cache, a);
  EXPECT_EQ(adm_a.tier_cached_tokens[0], 36u) << "9 eligible blocks of a promoted from Redis";
  EXPECT_EQ(cache.listener().stats().levels[0].demoted_blocks, 20u);
  EXPECT_EQ(round_trips(cache) - before_a, 2u) << "one write, one load";
  EXPECT_EQ(cache.listener().stats().levels[0].tier.total_errors(), 0u);
}

TEST(RedisUnderThePool, AnAppendThatEvictsEightBlocksWritesThemInOneRoundTrip) {
  redis_server server;
  episodes ep;
  auto cache = make_cache<remote_only_t>(12, 46);
  cache.listener().attach<0>(make_remote(server, ep));
  run_request(cache, prompt_of(100, 32));  // 8 cached blocks
  kvkit::sequence_id seq{};
  run_request(cache, prompt_of(700, 16), {}, /*keep=*/true, &seq);  // 4 more, kept live
  ASSERT_EQ(cache.available_blocks(), 8u);
  const std::uint64_t before = round_trips(cache);
  // 32 decoded tokens need 8 blocks: all 8 cached blocks of the first prompt are evicted, and
  // append asks no tier for anything, so the write is the operation's only round trip.
  ASSERT_TRUE(cache.append(seq, prompt_of(5000, 32)).ok());
  EXPECT_EQ(cache.listener().stats().levels[0].demoted_blocks, 8u);
  EXPECT_EQ(round_trips(cache) - before, 1u) << "eight evicted blocks, one round trip";
  ASSERT_TRUE(cache.finish(seq).ok());
  EXPECT_EQ(round_trips(cache) - before, 1u) << "finishing evicts nothing: no round trip";

  auto other = make_cache<remote_only_t>(12, 46);
  other.listener().attach<0>(make_remote(server, ep));
  EXPECT_EQ(run_request(other, prompt_of(100, 32)).tier_cached_tokens[0], 28u)
      << "another engine finds the demoted chain (7 eligible blocks)";
}

TEST(RedisUnderThePool, ACommitOfTenBlocksWritesThemThroughInOneRoundTrip) {
  redis_server server;
  episodes ep;
  auto cache = make_cache<remote_only_t>(32, 47);
  cache.listener().attach<0>(make_remote(server, ep, kvkit::tier_write_policy::through));
  const auto p = prompt_of(300, 40);  // 10 blocks
  const auto adm = cache.admit(p);
  ASSERT_TRUE(adm.ok()) << adm.error().message();
  const std::uint64_t before = round_trips(cache);
  ASSERT_TRUE(cache.commit(adm->id, 20).ok());  // 5 blocks computed
  EXPECT_EQ(round_trips(cache) - before, 1u);
  EXPECT_EQ(cache.listener().stats().levels[0].written_blocks, 5u);
  ASSERT_TRUE(cache.commit(adm->id).ok());  // the other 5
  EXPECT_EQ(round_trips(cache) - before, 2u) << "one round trip per commit, not per block";
  EXPECT_EQ(cache.listener().stats().levels[0].written_blocks, 10u);
  EXPECT_EQ(cache.listener().stats().levels[0].tier.stored_blocks, 10u);
  ASSERT_TRUE(cache.finish(adm->id).ok());
  EXPECT_EQ(round_trips(cache) - before, 2u);
}

TEST(RedisUnderThePool, WarmingAChainOfTenBlocksTakesOneRoundTrip) {
  redis_server server;
  episodes ep;
  auto cache = make_cache<remote_only_t>(32, 48);
  cache.listener().attach<0>(make_remote(server, ep));
  const auto sys = prompt_of(200, 40);  // 10 blocks
  kvkit::sequence_id seq{};
  run_request(cache, sys, {}, /*keep=*/true, &seq);
  const std::uint64_t before = round_trips(cache);
  const auto held = kvkit::warm_tiers(cache, seq);
  ASSERT_TRUE(held.ok()) << held.error().message();
  EXPECT_EQ((*held)[0], 10u);
  EXPECT_EQ(round_trips(cache) - before, 1u) << "ten blocks, one round trip";
  EXPECT_EQ(cache.listener().stats().levels[0].warmed_blocks, 10u);
  ASSERT_TRUE(cache.finish(seq).ok());
  auto other = make_cache<remote_only_t>(32, 48);
  other.listener().attach<0>(make_remote(server, ep));
  EXPECT_EQ(run_request(other, sys).tier_cached_tokens[0], 36u);
}

// A mixed workload of repeated prompts over a small pool, so blocks are demoted to the host tier
// and Redis and promoted back; run_request checks the bytes of every cached block.
struct workload {
  std::mt19937 rng{5};
  std::vector<std::vector<token_id>> prompts;
  workload() {
    for (int i = 0; i < 12; ++i)
      prompts.push_back(prompt_of(static_cast<token_id>(1000 * (i + 1)), 13 + 4 * (i % 5)));
  }
  template <class Cache>
  kvkit::admission step(Cache& c) {
    return run_request(c, prompts[rng() % prompts.size()]);
  }
};

TEST(RedisUnderThePool, KilledPausedRestartedServerNeverFailsARequest) {
  redis_server server;
  episodes ep;
  auto cache = make_cache<two_level_t>(24, 43);
  cache.listener().attach<0>(make_host(8));
  cache.listener().attach<1>(make_remote(server, ep));
  workload w;
  const auto remote_tokens = [&] {
    return cache.listener().stats().levels[1].promoted_tokens;
  };
  for (int i = 0; i < 200; ++i)
    w.step(cache);
  const std::uint64_t before = remote_tokens();
  EXPECT_GT(before, 0u) << "the workload must promote from Redis while it runs";
  EXPECT_EQ(cache.listener().stats().levels[1].tier.total_errors(), 0u);

  // Killed: every request is still served (from the pool and the host tier); one episode.
  server.kill();
  for (int i = 0; i < 100; ++i)
    w.step(cache);
  auto st = cache.listener().stats().levels[1];
  EXPECT_EQ(remote_tokens(), before) << "nothing can come from a dead server";
  EXPECT_GT(
      st.tier.error_count(tier_error::connect) + st.tier.error_count(tier_error::disconnected), 0u);
  EXPECT_GT(st.tier.error_count(tier_error::unavailable), 0u) << "back-off skips operations";
  EXPECT_LE(ep.begins(tier_error::connect) + ep.begins(tier_error::disconnected), 2u)
      << "an outage is reported once (a broken connection, then refused reconnects)";
  EXPECT_GT(cache.listener().stats().levels[0].promoted_tokens, 0u);

  // Restarted empty: values are gone; the tier reconnects, demotions refill it, hits come back.
  server.restart();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  std::uint64_t after_restart = remote_tokens();
  while (remote_tokens() == after_restart && std::chrono::steady_clock::now() < deadline) {
    w.step(cache);
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_GT(remote_tokens(), after_restart) << "Redis hits resume after a restart";

  // Paused (SIGSTOP): the request that meets it waits at most the command timeout, later ones are
  // skipped during back-off; all are served; one timeout episode.
  server.pause();
  const std::uint64_t paused_from = remote_tokens();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 60; ++i)
    w.step(cache);
  const auto paused_for = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(remote_tokens(), paused_from);
  EXPECT_GT(cache.listener().stats().levels[1].tier.error_count(tier_error::timeout), 0u);
  EXPECT_EQ(ep.begins(tier_error::timeout), 1u);
  EXPECT_LT(paused_for, 5s) << "a paused server must not stall the cache";
  server.resume();
  const auto deadline2 = std::chrono::steady_clock::now() + 10s;
  while (remote_tokens() == paused_from && std::chrono::steady_clock::now() < deadline2) {
    w.step(cache);
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_GT(remote_tokens(), paused_from) << "Redis hits resume after the pause";
  EXPECT_TRUE(cache.check_invariants().ok());
  EXPECT_EQ(cache.listener().stats().levels[1].tier.error_episodes,
            ep.begins(tier_error::connect) + ep.begins(tier_error::disconnected) +
                ep.begins(tier_error::unavailable) + ep.begins(tier_error::timeout));
}

TEST(RedisUnderThePool, ACorruptValueIsAMissNeverWrongBytes) {
  redis_server server;
  episodes ep;
  auto a = make_cache<remote_only_t>(32, 44);
  a.listener().attach<0>(make_remote(server, ep, kvkit::tier_write_policy::through));
  const auto sys = prompt_of(500, 33);  // 8 eligible blocks
  run_request(a, sys);
  // Corrupt block 3's value: flip bytes of its K/V (the checksum no longer matches).
  auto* remote = a.listener().tier<0>();
  const auto keys = kvkit::tier_keys(a, sys);
  const auto ns = a.listener().namespace_of(0, 0, {});
  const auto k3 = remote->data_key(ns, keys[3]);
  ASSERT_TRUE(k3.has_value());
  std::string v = server.command({"GET", *k3});
  ASSERT_GT(v.size(), 200u);
  v[v.size() - 5] = static_cast<char>(v[v.size() - 5] ^ 0x5A);
  server.command({"SET", *k3, v});

  auto b = make_cache<remote_only_t>(32, 44);
  b.listener().attach<0>(make_remote(server, ep));
  const auto adm = run_request(b, sys);  // compares the bytes of the 3 promoted blocks
  EXPECT_EQ(adm.tier_cached_tokens[0], 12u) << "blocks 0-2 promoted, block 3 is a miss";
  EXPECT_EQ(b.listener().stats().levels[0].tier.error_count(tier_error::checksum_mismatch), 1u);
  EXPECT_EQ(ep.begins(tier_error::checksum_mismatch), 1u);
  // The bad value was deleted, and b's commit wrote nothing (on eviction): a is asked again and
  // writes it through; the next cache finds the whole chain.
  auto c = make_cache<remote_only_t>(32, 44);
  c.listener().attach<0>(make_remote(server, ep, kvkit::tier_write_policy::through));
  run_request(c, sys);
  auto d = make_cache<remote_only_t>(32, 44);
  d.listener().attach<0>(make_remote(server, ep));
  EXPECT_EQ(run_request(d, sys).tier_cached_tokens[0], 32u);
}

}  // namespace
