// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit::redis_tier against a real redis-server that each test starts on a free loopback port:
// round trips, one round trip per chain, sharing between engines, invalidation, TTL, and the
// fault matrix (server absent, killed, restarted empty, paused; values truncated, of another
// layout or format version, with a wrong checksum, of another chain; memory limit reached).
// In every fault the tier returns a miss (never wrong bytes), counts the error and reports it
// once per episode.
#include <kvkit/tier.hpp>
#include <kvkit/tiers/detail/tier_value.hpp>
#include <kvkit/tiers/host_tier.hpp>
#include <kvkit/tiers/redis_tier.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/redis_server.hpp"
#include "tiers/tier_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using kvkit::tier_error;
using kvkit::tier_store_reason;
using kvkit::test::block_buffers;
using kvkit::test::iota_tokens;
using kvkit::test::redis_server;
using kvkit::test::small_layout;
using kvkit::test::test_chain;

static_assert(kvkit::cache_tier<kvkit::redis_tier>);
static_assert(kvkit::tier_traits<kvkit::redis_tier>::name() == "redis");

constexpr std::uint64_t seed = 0xC0FFEE;

struct recorded_event {
  kvkit::tier_event::kind what;
  tier_error error;
  std::string message;
  std::uint64_t errors;
};

struct recorder {
  std::shared_ptr<std::vector<recorded_event>> events =
      std::make_shared<std::vector<recorded_event>>();
  [[nodiscard]] std::function<void(const kvkit::tier_event&)> fn() const {
    auto e = events;
    return [e](const kvkit::tier_event& ev) {
      e->push_back({ev.what, ev.error, std::string(ev.message), ev.errors});
    };
  }
  [[nodiscard]] std::size_t begins(tier_error kind) const {
    std::size_t n = 0;
    for (const auto& e : *events)
      n += e.what == kvkit::tier_event::kind::episode_begin && e.error == kind ? 1 : 0;
    return n;
  }
  [[nodiscard]] std::size_t begins() const {
    std::size_t n = 0;
    for (const auto& e : *events)
      n += e.what == kvkit::tier_event::kind::episode_begin ? 1 : 0;
    return n;
  }
  [[nodiscard]] std::size_t ends() const { return events->size() - begins(); }
};

kvkit::redis_tier_options options_for(const redis_server& server, const recorder& rec) {
  kvkit::redis_tier_options o;
  o.port = server.port();
  o.model = "test-model";
  o.connect_timeout = 200ms;
  o.command_timeout = 150ms;
  o.retry_initial = 20ms;
  o.retry_max = 160ms;
  o.on_event = rec.fn();
  return o;
}

kvkit::redis_tier make_tier(const kvkit::redis_tier_options& o,
                            const kvkit::kv_layout& layout = small_layout()) {
  auto t = kvkit::redis_tier::create(layout, o);
  if (!t.ok())
    ADD_FAILURE() << t.error().message();
  return std::move(*t);
}

// Loads `c` until it returns `want` blocks or `limit` passes (the tier backs off after faults).
std::uint32_t load_until(kvkit::redis_tier& tier, const test_chain& c, block_buffers& out,
                         std::uint32_t want, std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::uint32_t n = 0;
  do {
    n = tier.load(c.chain(), out.views);
    if (n == want)
      return n;
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return n;
}

// A value of block `i` of `c` as the tier writes it, for forging.
std::string encode(const test_chain& c, std::size_t i, std::uint64_t fingerprint,
                   const kvkit::kv_layout& l = small_layout()) {
  std::string v(kvkit::detail::tier_value_bytes(l), '\0');
  kvkit::detail::encode_tier_value(reinterpret_cast<std::byte*>(v.data()), l, fingerprint,
                                   c.block(i));
  return v;
}

class RedisTier : public ::testing::Test {
 protected:
  redis_server server;
  recorder rec;
};

TEST_F(RedisTier, StoredChainLoadsBackByteForByte) {
  auto tier = make_tier(options_for(server, rec));
  const test_chain c(small_layout(), seed, 7, 0, {}, iota_tokens(24, 100));
  EXPECT_EQ(tier.store(c.blocks(0, 6, true), tier_store_reason::eviction), 6u);
  EXPECT_EQ(tier.lookup(c.chain()), 6u);
  block_buffers out(small_layout(), 6);
  EXPECT_EQ(tier.load(c.chain(), out.views), 6u);
  for (std::size_t i = 0; i < 6; ++i)
    EXPECT_TRUE(out.holds(i, c.kv[i])) << i;
  // A continuation after the pool's blocks 0-1.
  block_buffers rest(small_layout(), 4);
  EXPECT_EQ(tier.load(c.chain(2, 6), rest.views), 4u);
  EXPECT_TRUE(rest.holds(3, c.kv[5]));
  // Another tenant, same tokens: other keys, a miss.
  const test_chain other(small_layout(), seed, 8, 0, {}, iota_tokens(24, 100));
  EXPECT_EQ(tier.lookup(other.chain()), 0u);
  // A chain the tier has only half of.
  const test_chain longer(small_layout(), seed, 7, 0, {}, iota_tokens(40, 100));
  EXPECT_EQ(tier.lookup(longer.chain()), 6u);

  const auto st = tier.stats();
  const auto bb = small_layout().block_bytes_all_layers();
  EXPECT_EQ(st.stored_blocks, 6u);
  EXPECT_EQ(st.bytes_in, 6u * bb);
  EXPECT_EQ(st.loaded_blocks, 10u);
  EXPECT_EQ(st.bytes_out, 10u * bb);
  EXPECT_EQ(st.lookups, 5u);
  EXPECT_EQ(st.hits, 4u);
  EXPECT_EQ(st.hit_blocks, 22u);
  EXPECT_EQ(st.hit_tokens, 88u);
  EXPECT_EQ(st.promotion_latency.count, 2u);
  EXPECT_EQ(st.total_errors(), 0u);
  EXPECT_TRUE(rec.events->empty());
  // Keys name the model and the layout.
  EXPECT_EQ(tier.key_prefix(), "kvkit:v1:test-model:L2.H2.D8.B4.fp16.NHD");
  const auto key = tier.data_key(c.ns, c.keys[0]);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->rfind(tier.key_prefix() + ":{", 0), 0u);
  EXPECT_EQ(server.command({"EXISTS", *key}), "1");
}

TEST_F(RedisTier, AChainMovesInOneRoundTrip) {
  auto tier = make_tier(options_for(server, rec));
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(64, 0));  // 16 blocks
  ASSERT_EQ(c.size(), 16u);
  // The first operation in a namespace also reads its generations: one more round trip.
  EXPECT_EQ(tier.store(c.blocks(0, 16), tier_store_reason::eviction), 16u);
  EXPECT_EQ(tier.stats().round_trips, 2u);
  server.reset_stats();

  EXPECT_EQ(tier.store(c.blocks(0, 16, true), tier_store_reason::eviction), 16u);
  EXPECT_EQ(tier.stats().round_trips, 3u);
  EXPECT_EQ(server.calls("set"), 16u);

  block_buffers out(small_layout(), 16);
  EXPECT_EQ(tier.load(c.chain(), out.views), 16u);
  EXPECT_EQ(tier.stats().round_trips, 4u);
  EXPECT_EQ(server.calls("getex"), 16u);

  EXPECT_EQ(tier.lookup(c.chain()), 16u);
  EXPECT_EQ(tier.stats().round_trips, 5u);
  EXPECT_EQ(server.calls("getrange"), 16u);
  EXPECT_EQ(server.calls("strlen"), 16u);
  EXPECT_EQ(server.calls("get"), 0u);
  EXPECT_EQ(server.calls("getex"), 16u);
}

TEST_F(RedisTier, TwoEnginesOfOneModelShareAndOthersDoNot) {
  auto a = make_tier(options_for(server, rec));
  auto b = make_tier(options_for(server, rec));
  const test_chain c(small_layout(), seed, 1, 0, {42}, iota_tokens(16, 0));
  EXPECT_EQ(a.store(c.blocks(0, 4, true), tier_store_reason::eviction), 4u);
  block_buffers out(small_layout(), 4);
  EXPECT_EQ(b.load(c.chain(), out.views), 4u);
  EXPECT_TRUE(out.holds(3, c.kv[3]));

  auto other_model_opts = options_for(server, rec);
  other_model_opts.model = "other-model";
  auto other_model = make_tier(other_model_opts);
  EXPECT_EQ(other_model.lookup(c.chain()), 0u);

  auto wide = small_layout();
  wide.head_dim = 16;
  auto other_layout = make_tier(options_for(server, rec), wide);
  const test_chain cw(wide, seed, 1, 0, {42}, iota_tokens(16, 0));
  EXPECT_EQ(other_layout.lookup(cw.chain()), 0u);
  EXPECT_EQ(other_layout.stats().total_errors(), 0u);  // other keys: plain misses
}

TEST_F(RedisTier, InvalidationReachesEveryEngineWithoutScanning) {
  auto a_opts = options_for(server, rec);
  a_opts.generation_refresh = 0ms;  // engine A reads generations on every operation
  auto a = make_tier(a_opts);
  auto b_opts = options_for(server, rec);
  b_opts.generation_refresh = 100ms;
  auto b = make_tier(b_opts);
  const test_chain t1(small_layout(), seed, 1, 0, {}, iota_tokens(8, 0));
  const test_chain t2(small_layout(), seed, 2, 0, {}, iota_tokens(8, 0));
  const test_chain s5(small_layout(), seed, 2, 5, {}, iota_tokens(8, 0));
  const test_chain v9(small_layout(), seed, 2, 0, {9}, iota_tokens(8, 0));
  for (const test_chain* c : {&t1, &t2, &s5, &v9})
    ASSERT_EQ(a.store(c->blocks(0, 2), tier_store_reason::eviction), 2u);
  for (const test_chain* c : {&t1, &t2, &s5, &v9})
    ASSERT_EQ(b.lookup(c->chain()), 2u);
  const auto keys_before = server.command({"DBSIZE"});

  server.reset_stats();
  // B invalidates tenant 1: it holds at B at once, and A reads the new generation.
  const auto inv = b.invalidate(kvkit::tier_scope::tenant(1));
  EXPECT_TRUE(inv.complete);
  EXPECT_EQ(b.lookup(t1.chain()), 0u);
  EXPECT_EQ(a.lookup(t1.chain()), 0u);
  EXPECT_EQ(a.lookup(t2.chain()), 2u);
  EXPECT_EQ(server.calls("scan") + server.calls("keys"), 0u);  // no keyspace scan
  EXPECT_EQ(server.command({"DBSIZE"}), keys_before);          // nothing deleted either

  // A invalidates session 5 and extra key 9; B sees both within its refresh time.
  EXPECT_TRUE(a.invalidate(kvkit::tier_scope::session(5)).complete);
  EXPECT_TRUE(a.invalidate(kvkit::tier_scope::extra_key(9)).complete);
  EXPECT_EQ(a.lookup(s5.chain()), 0u);
  EXPECT_EQ(a.lookup(v9.chain()), 0u);
  std::this_thread::sleep_for(120ms);
  EXPECT_EQ(b.lookup(s5.chain()), 0u);
  EXPECT_EQ(b.lookup(v9.chain()), 0u);
  EXPECT_EQ(b.lookup(t2.chain()), 2u);

  // The namespace starts afresh.
  EXPECT_EQ(b.store(t1.blocks(0, 2), tier_store_reason::eviction), 2u);
  EXPECT_EQ(a.lookup(t1.chain()), 2u);
  EXPECT_EQ(a.stats().total_errors() + b.stats().total_errors(), 0u);
}

TEST_F(RedisTier, ValuesExpireAndHitsRestartTheirTimeToLive) {
  auto opts = options_for(server, rec);
  opts.ttl = 100s;
  auto tier = make_tier(opts);
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(8, 0));
  ASSERT_EQ(tier.store(c.blocks(0, 2), tier_store_reason::eviction), 2u);
  const auto key = *tier.data_key(c.ns, c.keys[1]);
  EXPECT_GT(std::stoi(server.command({"TTL", key})), 90);
  server.command({"EXPIRE", key, "5"});
  block_buffers out(small_layout(), 2);
  EXPECT_EQ(tier.load(c.chain(), out.views), 2u);  // GETEX renews it
  EXPECT_GT(std::stoi(server.command({"TTL", key})), 90);

  opts.ttl = 1s;
  auto short_lived = make_tier(opts);
  const test_chain d(small_layout(), seed, 1, 0, {}, iota_tokens(8, 900));
  ASSERT_EQ(short_lived.store(d.blocks(0, 2), tier_store_reason::eviction), 2u);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(short_lived.lookup(d.chain()), 0u);
}

TEST_F(RedisTier, WritePolicyChoosesWhichStoresAreWritten) {
  auto opts = options_for(server, rec);
  opts.write = kvkit::tier_write_policy::through;
  auto through = make_tier(opts);
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(8, 0));
  EXPECT_EQ(through.store(c.blocks(0, 2), tier_store_reason::eviction), 0u);
  EXPECT_EQ(through.lookup(c.chain()), 0u);
  EXPECT_EQ(through.store(c.blocks(0, 2), tier_store_reason::commit), 2u);
  EXPECT_EQ(through.lookup(c.chain()), 2u);
  auto victim = make_tier(options_for(server, rec));
  EXPECT_FALSE(victim.accepts(tier_store_reason::commit));
  EXPECT_TRUE(victim.accepts(tier_store_reason::warm));
}

TEST_F(RedisTier, WarmsAHostTierFromRedis) {
  auto remote = make_tier(options_for(server, rec));
  kvkit::host_tier<>::options ho;
  ho.capacity_blocks = 16;
  auto host = kvkit::host_tier<>::create(small_layout(), ho);
  ASSERT_TRUE(host.ok());
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  ASSERT_EQ(remote.store(c.blocks(0, 4), tier_store_reason::eviction), 4u);
  EXPECT_EQ(kvkit::copy_chain(remote, *host, c.chain()), 4u);
  block_buffers out(small_layout(), 4);
  EXPECT_EQ(host->load(c.chain(), out.views), 4u);
  EXPECT_TRUE(out.holds(2, c.kv[2]));
}

TEST(RedisTierCreate, RejectsBadSettingsWithAClearMessage) {
  kvkit::redis_tier_options o;
  auto no_model = kvkit::redis_tier::create(small_layout(), o);
  ASSERT_FALSE(no_model.ok());
  EXPECT_EQ(no_model.code(), kvkit::errc::invalid_config);
  EXPECT_NE(no_model.error().message().find("model must be 1 to 128 letters"), std::string::npos);
  o.model = "has space";
  EXPECT_FALSE(kvkit::redis_tier::create(small_layout(), o).ok());
  o.model = "llama-3.1-8b@main";
  o.port = 0;
  auto port = kvkit::redis_tier::create(small_layout(), o);
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.error().message().find("port must be in [1, 65535], got 0"), std::string::npos);
  o.port = 6379;
  o.retry_max = 10ms;
  auto retry = kvkit::redis_tier::create(small_layout(), o);
  ASSERT_FALSE(retry.ok());
  EXPECT_NE(retry.error().message().find("retry_max must be >= retry_initial"), std::string::npos);
  o.retry_max = 1s;
  o.command_timeout = 0ms;
  EXPECT_FALSE(kvkit::redis_tier::create(small_layout(), o).ok());
  o.command_timeout = 100ms;
  auto ok = kvkit::redis_tier::create(small_layout(), o);  // does not connect
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->stats().round_trips, 0u);
}

// ---- the fault matrix ---------------------------------------------------------------------------

TEST_F(RedisTier, ServerAbsentAtStartIsAMissUntilItComes) {
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  server.kill();  // the port is free: nothing listens
  auto tier = make_tier(options_for(server, rec));
  block_buffers out(small_layout(), 4);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(tier.load(c.chain(), out.views), 0u);
    EXPECT_EQ(tier.store(c.blocks(0, 4), tier_store_reason::eviction), 0u);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);  // never hangs
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_TRUE(out.untouched(i));
  const auto st = tier.stats();
  EXPECT_GE(st.error_count(tier_error::connect), 1u);
  EXPECT_EQ(st.error_count(tier_error::connect) + st.error_count(tier_error::unavailable), 40u);
  EXPECT_EQ(rec.begins(), 1u);  // one report for the whole outage
  EXPECT_EQ(rec.begins(tier_error::connect), 1u);
  EXPECT_NE((*rec.events)[0].message.find("cannot connect to redis 127.0.0.1:"), std::string::npos);

  server.restart();
  std::uint32_t stored = 0;
  for (int i = 0; i < 100 && stored == 0; ++i) {
    stored = tier.store(c.blocks(0, 4), tier_store_reason::eviction);
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(stored, 4u);
  EXPECT_EQ(load_until(tier, c, out, 4), 4u);
  EXPECT_TRUE(out.holds(3, c.kv[3]));
  EXPECT_EQ(rec.ends(), 1u);  // the episode ended, once
  EXPECT_EQ(rec.begins(), 1u);
}

TEST_F(RedisTier, ServerKilledMidRunThenRestartedEmpty) {
  auto tier = make_tier(options_for(server, rec));
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  ASSERT_EQ(tier.store(c.blocks(0, 4), tier_store_reason::eviction), 4u);
  block_buffers out(small_layout(), 4);
  ASSERT_EQ(tier.load(c.chain(), out.views), 4u);

  server.kill();
  for (int i = 0; i < 30; ++i) {
    block_buffers none(small_layout(), 4);
    EXPECT_EQ(tier.load(c.chain(), none.views), 0u);
    EXPECT_TRUE(none.untouched(0));
    std::this_thread::sleep_for(5ms);
  }
  auto st = tier.stats();
  EXPECT_EQ(st.error_count(tier_error::disconnected), 1u);  // the broken connection
  EXPECT_GE(st.error_count(tier_error::connect), 1u);       // then refused reconnections
  EXPECT_EQ(rec.begins(), 1u);
  EXPECT_EQ(rec.begins(tier_error::disconnected), 1u);

  server.restart();  // empty
  block_buffers again(small_layout(), 4);
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (rec.ends() == 0 && std::chrono::steady_clock::now() < deadline) {
    EXPECT_EQ(tier.load(c.chain(), again.views), 0u);  // reachable, but empty: a plain miss
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(rec.ends(), 1u);
  EXPECT_TRUE(again.untouched(0));
  // Filled again, it serves again; the episode count did not grow.
  EXPECT_EQ(tier.store(c.blocks(0, 4), tier_store_reason::eviction), 4u);
  EXPECT_EQ(tier.load(c.chain(), again.views), 4u);
  EXPECT_TRUE(again.holds(0, c.kv[0]));
  EXPECT_EQ(tier.stats().error_episodes, 1u);
}

TEST_F(RedisTier, PausedServerCostsAtMostTheTimeoutAndIsReportedOnce) {
  auto tier = make_tier(options_for(server, rec));
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  ASSERT_EQ(tier.store(c.blocks(0, 4), tier_store_reason::eviction), 4u);
  server.pause();
  block_buffers out(small_layout(), 4);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(tier.load(c.chain(), out.views), 0u);
  const auto first = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(first, 140ms);  // waited for the command timeout (150 ms)...
  EXPECT_LT(first, 1s);     // ...and not longer
  EXPECT_EQ(tier.stats().error_count(tier_error::timeout), 1u);
  // Requests meanwhile: skipped at once while backing off, or one timeout per retry.
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(tier.load(c.chain(), out.views), 0u);
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 50 * 2ms + 4 * 200ms);
  EXPECT_TRUE(out.untouched(0));
  EXPECT_GE(tier.stats().error_count(tier_error::unavailable), 40u);
  EXPECT_EQ(rec.begins(), 1u);
  EXPECT_EQ(rec.begins(tier_error::timeout), 1u);

  server.resume();
  EXPECT_EQ(load_until(tier, c, out, 4), 4u);
  EXPECT_TRUE(out.holds(2, c.kv[2]));
  EXPECT_EQ(rec.ends(), 1u);
  EXPECT_EQ(rec.begins(), 1u);
}

class RedisTierBadValues : public RedisTier {
 protected:
  // Stores a 4-block chain, replaces block 2's value with `forged`, loads: blocks 0-1 only.
  void expect_miss_at_block_2(const std::string& forged, tier_error expected) {
    auto tier = make_tier(options_for(server, rec));
    const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
    ASSERT_EQ(tier.store(c.blocks(0, 4), tier_store_reason::eviction), 4u);
    const auto key = *tier.data_key(c.ns, c.keys[2]);
    ASSERT_EQ(server.command({"SET", key, forged}), "OK");
    // A lookup reads headers only: it cannot see a wrong checksum; a load does.
    EXPECT_EQ(tier.lookup(c.chain()), expected == tier_error::checksum_mismatch ? 4u : 2u);
    block_buffers out(small_layout(), 4);
    EXPECT_EQ(tier.load(c.chain(), out.views), 2u);
    EXPECT_TRUE(out.holds(1, c.kv[1]));
    EXPECT_TRUE(out.untouched(2));  // never wrong bytes
    EXPECT_TRUE(out.untouched(3));
    const auto st = tier.stats();
    EXPECT_GE(st.error_count(expected), 1u);
    EXPECT_EQ(st.total_errors(), st.error_count(expected));
    EXPECT_EQ(rec.begins(), 1u);
    EXPECT_EQ(rec.begins(expected), 1u);
    // The bad value is deleted with the next round trip: one bad value, one episode.
    EXPECT_EQ(tier.load(c.chain(), out.views), 2u);
    EXPECT_EQ(server.command({"EXISTS", key}), "0");
    // Written again, the block serves again.
    EXPECT_EQ(tier.store(c.blocks(2, 3), tier_store_reason::eviction), 1u);
    EXPECT_EQ(tier.load(c.chain(), out.views), 4u);
    EXPECT_TRUE(out.holds(2, c.kv[2]));
  }
  [[nodiscard]] std::uint64_t fingerprint() const {
    return kvkit::detail::layout_fingerprint(small_layout(), "test-model");
  }
};

TEST_F(RedisTierBadValues, TruncatedValue) {
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  const std::string v = encode(c, 2, fingerprint());
  expect_miss_at_block_2(v.substr(0, v.size() - 100), tier_error::malformed);
}

TEST_F(RedisTierBadValues, ValueShorterThanAHeader) {
  expect_miss_at_block_2("garbage", tier_error::malformed);
}

TEST_F(RedisTierBadValues, ValueOfAnotherLayout) {
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  auto other = small_layout();
  other.order = kvkit::kv_order::hnd;  // same size, other memory order
  expect_miss_at_block_2(encode(c, 2, kvkit::detail::layout_fingerprint(other, "test-model")),
                         tier_error::layout_mismatch);
}

TEST_F(RedisTierBadValues, ValueOfAnotherFormatVersion) {
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  std::string v = encode(c, 2, fingerprint());
  const std::uint16_t version = 2;
  std::memcpy(v.data() + 4, &version, sizeof(version));
  expect_miss_at_block_2(v, tier_error::version_mismatch);
}

TEST_F(RedisTierBadValues, WrongChecksum) {
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  std::string v = encode(c, 2, fingerprint());
  v[v.size() - 7] = static_cast<char>(v[v.size() - 7] ^ 0x10);  // one flipped bit of K/V
  expect_miss_at_block_2(v, tier_error::checksum_mismatch);
}

TEST_F(RedisTierBadValues, ValueOfAnotherChainUnderThisKey) {
  const test_chain other(small_layout(), seed, 1, 0, {}, iota_tokens(16, 500));
  expect_miss_at_block_2(encode(other, 2, fingerprint()), tier_error::content_mismatch);
}

TEST_F(RedisTierBadValues, ForcedCollisionTokensDiffer) {
  // What a 64-bit key collision would store: this block's key and parent, another block's
  // tokens and K/V.
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  test_chain collided(c);
  collided.tokens[2 * 4] += 77;
  collided.kv[2] = kvkit::test::kv_bytes_for(0xBAD, small_layout());
  expect_miss_at_block_2(encode(collided, 2, fingerprint()), tier_error::content_mismatch);
}

TEST_F(RedisTier, RepeatedBadValueIsCountedEachTimeAndReportedOnce) {
  auto opts = options_for(server, rec);
  opts.delete_bad_values = false;
  auto tier = make_tier(opts);
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  ASSERT_EQ(tier.store(c.blocks(0, 4), tier_store_reason::eviction), 4u);
  const auto key = *tier.data_key(c.ns, c.keys[1]);
  std::string v = server.command({"GET", key});
  v[v.size() - 1] = static_cast<char>(v[v.size() - 1] ^ 1);
  server.command({"SET", key, v});
  block_buffers out(small_layout(), 4);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(tier.load(c.chain(), out.views), 1u);
  EXPECT_TRUE(out.untouched(1));
  EXPECT_EQ(tier.stats().error_count(tier_error::checksum_mismatch), 10u);
  EXPECT_EQ(rec.begins(), 1u);
  EXPECT_EQ(tier.stats().error_episodes, 1u);
}

TEST_F(RedisTier, MissingBlockInsideAChainIsAMissAndAGap) {
  auto tier = make_tier(options_for(server, rec));
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  ASSERT_EQ(tier.store(c.blocks(0, 4), tier_store_reason::eviction), 4u);
  server.command({"DEL", *tier.data_key(c.ns, c.keys[1])});
  block_buffers out(small_layout(), 4);
  EXPECT_EQ(tier.load(c.chain(), out.views), 1u);
  EXPECT_EQ(tier.lookup(c.chain()), 1u);
  EXPECT_EQ(tier.stats().chain_gaps, 2u);
  EXPECT_EQ(tier.stats().total_errors(), 0u);
}

TEST_F(RedisTier, MemoryLimitWithoutEvictionRefusesWritesAndKeepsServing) {
  auto tier = make_tier(options_for(server, rec));
  const test_chain first(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  ASSERT_EQ(tier.store(first.blocks(0, 4), tier_store_reason::eviction), 4u);
  const std::string info = server.command({"INFO", "memory"});
  const auto at = info.find("used_memory:");
  ASSERT_NE(at, std::string::npos);
  const auto now_used = std::stoull(info.substr(at + 12));
  server.set_maxmemory(now_used + 64 * 1024, "noeviction");

  std::uint32_t refused = 0;
  for (int p = 1; p < 400; ++p) {
    const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 1000 * p));
    refused += 4 - tier.store(c.blocks(0, 4), tier_store_reason::eviction);
  }
  EXPECT_GT(refused, 0u);
  const auto st = tier.stats();
  EXPECT_EQ(st.error_count(tier_error::out_of_memory), refused);
  EXPECT_EQ(rec.begins(tier_error::out_of_memory), 1u);
  EXPECT_EQ(rec.begins(), 1u);
  // What was stored still loads, byte for byte.
  block_buffers out(small_layout(), 4);
  EXPECT_EQ(tier.load(first.chain(), out.views), 4u);
  EXPECT_TRUE(out.holds(3, first.kv[3]));
}

TEST_F(RedisTier, MemoryLimitWithEvictionDropsKeysNeverBytes) {
  auto tier = make_tier(options_for(server, rec));
  const std::string info = server.command({"INFO", "memory"});
  const auto now_used = std::stoull(info.substr(info.find("used_memory:") + 12));
  server.set_maxmemory(now_used + 1024 * 1024, "allkeys-lru");
  std::vector<std::unique_ptr<test_chain>> chains;
  for (int p = 0; p < 600; ++p) {
    chains.push_back(std::make_unique<test_chain>(small_layout(), seed, 1 + p % 3, 0,
                                                  std::vector<std::uint64_t>{},
                                                  iota_tokens(32, 1000 * p)));
    (void)tier.store(chains.back()->blocks(0, 8, true), tier_store_reason::eviction);
  }
  EXPECT_GT(std::stoull(server.command({"INFO", "stats"})
                            .substr(server.command({"INFO", "stats"}).find("evicted_keys:") + 13)),
            0u);
  std::uint64_t loaded = 0;
  for (const auto& c : chains) {
    block_buffers out(small_layout(), 8);
    const auto n = tier.load(c->chain(), out.views);
    loaded += n;
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_TRUE(out.holds(i, c->kv[i]));
    for (std::size_t i = n; i < 8; ++i)
      ASSERT_TRUE(out.untouched(i));
  }
  EXPECT_GT(loaded, 0u);
  EXPECT_LT(loaded, 600u * 8u);
  // Evicted keys are misses, not errors.
  EXPECT_EQ(tier.stats().total_errors(), 0u);
}

}  // namespace
