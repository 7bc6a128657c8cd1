// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Conformance of kvkit::host_tier over every eviction policy of the catalogue: round trips,
// verification, capacity, eviction order, idle time to live, invalidation, partial chains,
// statistics, and a differential test against a naive model.
#include <kvkit/eviction/fifo.hpp>
#include <kvkit/eviction/lfu.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/eviction/priority.hpp>
#include <kvkit/eviction/sieve.hpp>
#include <kvkit/eviction/ttl.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/tier.hpp>
#include <kvkit/tiers/host_tier.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "tiers/tier_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using kvkit::test::block_buffers;
using kvkit::test::iota_tokens;
using kvkit::test::small_layout;
using kvkit::test::test_chain;

static_assert(kvkit::cache_tier<kvkit::host_tier<kvkit::lru_eviction>>);
static_assert(kvkit::cache_tier<kvkit::host_tier<kvkit::lfu_eviction>>);
static_assert(kvkit::tier_traits<kvkit::host_tier<>>::name() == "host");

constexpr std::uint64_t seed = 0x5EED;

// A manual clock shared by a test and its tier.
struct manual_clock {
  std::shared_ptr<std::int64_t> t = std::make_shared<std::int64_t>(1'000'000);
  [[nodiscard]] std::function<std::chrono::nanoseconds()> fn() const {
    auto p = t;
    return [p] {
      return std::chrono::nanoseconds(*p);
    };
  }
  void advance(std::chrono::nanoseconds d) const { *t += d.count(); }
};

template <class E>
kvkit::host_tier<E> make_tier(std::uint32_t capacity, const manual_clock& clock,
                              std::chrono::nanoseconds ttl = std::chrono::nanoseconds::max()) {
  typename kvkit::host_tier<E>::options o;
  o.capacity_blocks = capacity;
  o.idle_ttl = ttl;
  o.now = clock.fn();
  if constexpr (std::is_same_v<E, kvkit::priority_eviction>) {
    o.eviction.classes = {{0, 0ns}, {5, 0ns}};  // class 1: a raised priority, kept
    o.eviction.now = clock.fn();
  }
  if constexpr (std::is_same_v<E, kvkit::ttl_eviction>) {
    o.eviction.now = clock.fn();
  }
  auto t = kvkit::host_tier<E>::create(small_layout(), std::move(o));
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message());
  return std::move(*t);
}

template <class E>
class HostTier : public ::testing::Test {};

using policies =
    ::testing::Types<kvkit::lru_eviction, kvkit::lfu_eviction, kvkit::fifo_eviction,
                     kvkit::ttl_eviction, kvkit::priority_eviction, kvkit::sieve_eviction>;
TYPED_TEST_SUITE(HostTier, policies);

template <class Tier>
void expect_ok(const Tier& tier) {
  const auto s = tier.check_invariants();
  EXPECT_TRUE(s.ok()) << s.message();
}

TYPED_TEST(HostTier, StoredChainLoadsBackByteForByte) {
  manual_clock clock;
  auto tier = make_tier<TypeParam>(16, clock);
  const test_chain c(small_layout(), seed, 7, 0, {}, iota_tokens(24, 100));
  ASSERT_EQ(c.size(), 6u);
  const auto blocks = c.blocks(0, 6, /*tail_first=*/true);  // as the pool evicts: tail first
  EXPECT_EQ(tier.store(blocks, kvkit::tier_store_reason::eviction), 6u);
  expect_ok(tier);
  EXPECT_EQ(tier.lookup(c.chain()), 6u);

  block_buffers out(small_layout(), 6);
  EXPECT_EQ(tier.load(c.chain(), out.views), 6u);
  for (std::size_t i = 0; i < 6; ++i)
    EXPECT_TRUE(out.holds(i, c.kv[i])) << "block " << i;

  // A continuation: the pool holds blocks 0-1, the tier continues from block 2.
  block_buffers rest(small_layout(), 4);
  EXPECT_EQ(tier.load(c.chain(2, 6), rest.views), 4u);
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_TRUE(rest.holds(i, c.kv[2 + i]));

  // Fewer destinations than blocks: only that many are loaded.
  block_buffers two(small_layout(), 2);
  EXPECT_EQ(tier.load(c.chain(), two.views), 2u);
  expect_ok(tier);
}

TYPED_TEST(HostTier, RunEndsAtFirstBlockThatFailsVerification) {
  manual_clock clock;
  auto tier = make_tier<TypeParam>(16, clock);
  const test_chain c(small_layout(), seed, 7, 0, {}, iota_tokens(16, 0));
  (void)tier.store(c.blocks(0, 4), kvkit::tier_store_reason::eviction);

  // Same keys, but block 2's tokens differ (as a hash collision would present itself).
  test_chain forged(c);
  forged.tokens[2 * 4 + 1] += 1000;
  block_buffers out(small_layout(), 4);
  EXPECT_EQ(tier.load(forged.chain(), out.views), 2u);
  EXPECT_TRUE(out.untouched(2));
  EXPECT_TRUE(out.untouched(3));
  EXPECT_EQ(tier.stats().error_count(kvkit::tier_error::content_mismatch), 1u);

  // A wrong parent key for the first block: nothing.
  auto wrong_parent = c.chain(1, 4);
  wrong_parent.parent ^= 1;
  EXPECT_EQ(tier.lookup(wrong_parent), 0u);

  // Another tenant with the same keys (a forced namespace collision): nothing, never bytes.
  auto other_tenant = c.chain();
  other_tenant.ns.tenant_salt = 8;
  block_buffers none(small_layout(), 4);
  EXPECT_EQ(tier.load(other_tenant, none.views), 0u);
  EXPECT_TRUE(none.untouched(0));

  // Another tenant's real chain has other keys: a plain miss.
  const test_chain t8(small_layout(), seed, 8, 0, {}, iota_tokens(16, 0));
  EXPECT_EQ(tier.lookup(t8.chain()), 0u);
  expect_ok(tier);
}

TYPED_TEST(HostTier, NeverHoldsMoreThanItsCapacity) {
  manual_clock clock;
  auto tier = make_tier<TypeParam>(8, clock);
  std::uint32_t stored = 0;
  for (int p = 0; p < 10; ++p) {
    const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(12, 1000 * p));
    stored += tier.store(c.blocks(0, 3, true), kvkit::tier_store_reason::eviction);
    EXPECT_LE(tier.size(), 8u);
    expect_ok(tier);
  }
  EXPECT_EQ(stored, 30u);
  EXPECT_EQ(tier.size(), 8u);
  const auto st = tier.stats();
  EXPECT_EQ(st.evictions, 22u);
  EXPECT_EQ(st.entries, 8u);
  EXPECT_EQ(st.capacity, 8u);
  EXPECT_EQ(st.bytes_used, 8u * small_layout().block_bytes_all_layers());
  // Whatever survived still loads correctly from its chain's first block held.
  for (int p = 0; p < 10; ++p) {
    const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(12, 1000 * p));
    for (std::size_t from = 0; from < 3; ++from) {
      block_buffers out(small_layout(), 3 - from);
      const auto n = tier.load(c.chain(from, 3), out.views);
      for (std::size_t i = 0; i < n; ++i)
        EXPECT_TRUE(out.holds(i, c.kv[from + i]));
    }
  }
  expect_ok(tier);
}

// Which of A..E survive: capacity 3; A (class 1), B, C stored; A loaded twice, B once; D, E
// stored. Each policy's answer follows from its own rule.
template <class E>
std::set<char> expected_survivors();
template <>
std::set<char> expected_survivors<kvkit::lru_eviction>() {
  return {'B', 'D', 'E'};  // recency after the loads: C, A, B -> C then A go
}
template <>
std::set<char> expected_survivors<kvkit::ttl_eviction>() {
  return {'B', 'D', 'E'};  // LRU without expiry
}
template <>
std::set<char> expected_survivors<kvkit::fifo_eviction>() {
  return {'C', 'D', 'E'};  // first stored, first evicted: A then B
}
template <>
std::set<char> expected_survivors<kvkit::lfu_eviction>() {
  return {'A', 'D', 'E'};  // uses A 3, B 2, C 1: C goes; then B (2) before the newer D (1+age)
}
template <>
std::set<char> expected_survivors<kvkit::sieve_eviction>() {
  return {'A', 'B', 'E'};  // C never reused goes; the hand then passes visited A, B and takes D
}
template <>
std::set<char> expected_survivors<kvkit::priority_eviction>() {
  return {'A', 'D', 'E'};  // A's class is raised: C and B (default priority) go first
}

TYPED_TEST(HostTier, EvictionOrderFollowsThePolicy) {
  manual_clock clock;
  auto tier = make_tier<TypeParam>(3, clock);
  std::map<char, std::unique_ptr<test_chain>> c;
  for (char name : {'A', 'B', 'C', 'D', 'E'}) {
    c[name] = std::make_unique<test_chain>(small_layout(), seed, 1, 0, std::vector<std::uint64_t>{},
                                           iota_tokens(4, 100 * (name - 'A')));
  }
  c['A']->request_class = 1;
  auto store = [&](char n) {
    EXPECT_EQ(tier.store(c[n]->blocks(0, 1), kvkit::tier_store_reason::eviction), 1u);
  };
  auto load = [&](char n) {
    block_buffers out(small_layout(), 1);
    EXPECT_EQ(tier.load(c[n]->chain(), out.views), 1u);
  };
  store('A');
  store('B');
  store('C');
  load('A');
  load('A');
  load('B');
  store('D');
  store('E');
  std::set<char> survivors;
  for (auto& [name, chain] : c) {
    if (tier.lookup(chain->chain()) == 1)
      survivors.insert(name);
  }
  EXPECT_EQ(survivors, expected_survivors<TypeParam>());
  expect_ok(tier);
}

TYPED_TEST(HostTier, IdleEntriesExpireAndAreNeverReturned) {
  manual_clock clock;
  auto tier = make_tier<TypeParam>(16, clock, 100ms);
  const test_chain a(small_layout(), seed, 1, 0, {}, iota_tokens(8, 0));
  const test_chain b(small_layout(), seed, 1, 0, {}, iota_tokens(8, 500));
  (void)tier.store(a.blocks(0, 2), kvkit::tier_store_reason::eviction);
  (void)tier.store(b.blocks(0, 2), kvkit::tier_store_reason::eviction);
  clock.advance(60ms);
  block_buffers out(small_layout(), 2);
  EXPECT_EQ(tier.load(a.chain(), out.views), 2u);  // a is used: idle time restarts
  clock.advance(60ms);                             // b idle 120 ms, a 60 ms
  EXPECT_EQ(tier.lookup(b.chain()), 0u);           // expired: a miss even before expire()
  EXPECT_EQ(tier.lookup(a.chain()), 2u);
  EXPECT_EQ(tier.size(), 4u);
  EXPECT_EQ(tier.expire(), 2u);
  EXPECT_EQ(tier.size(), 2u);
  EXPECT_EQ(tier.stats().expirations, 2u);
  expect_ok(tier);
  clock.advance(101ms);
  EXPECT_EQ(tier.expire(), 2u);
  EXPECT_EQ(tier.size(), 0u);
  expect_ok(tier);
}

TYPED_TEST(HostTier, InvalidationDropsExactlyItsNamespaces) {
  manual_clock clock;
  auto tier = make_tier<TypeParam>(64, clock);
  const test_chain t1(small_layout(), seed, 1, 0, {}, iota_tokens(8, 0));
  const test_chain t2(small_layout(), seed, 2, 0, {}, iota_tokens(8, 0));
  const test_chain t1_session(small_layout(), seed, 1, 77, {}, iota_tokens(8, 0));
  const test_chain t2_v3(small_layout(), seed, 2, 0, {3, 9}, iota_tokens(8, 0));
  for (const test_chain* c : {&t1, &t2, &t1_session, &t2_v3})
    EXPECT_EQ(tier.store(c->blocks(0, 2), kvkit::tier_store_reason::eviction), 2u);
  EXPECT_EQ(tier.size(), 8u);

  auto inv = tier.invalidate(kvkit::tier_scope::session(77));
  EXPECT_EQ(inv.dropped, 2u);
  EXPECT_TRUE(inv.complete);
  EXPECT_EQ(tier.lookup(t1_session.chain()), 0u);
  EXPECT_EQ(tier.lookup(t1.chain()), 2u);
  expect_ok(tier);

  EXPECT_EQ(tier.invalidate(kvkit::tier_scope::extra_key(9)).dropped, 2u);
  EXPECT_EQ(tier.lookup(t2_v3.chain()), 0u);
  EXPECT_EQ(tier.lookup(t2.chain()), 2u);
  expect_ok(tier);

  EXPECT_EQ(tier.invalidate(kvkit::tier_scope::tenant(1)).dropped, 2u);
  EXPECT_EQ(tier.lookup(t1.chain()), 0u);
  EXPECT_EQ(tier.lookup(t2.chain()), 2u);
  EXPECT_EQ(tier.invalidate(kvkit::tier_scope::tenant(1)).dropped, 0u);
  EXPECT_EQ(tier.stats().invalidated, 6u);
  expect_ok(tier);

  // The namespace can be filled again afterwards.
  EXPECT_EQ(tier.store(t1.blocks(0, 2), kvkit::tier_store_reason::eviction), 2u);
  EXPECT_EQ(tier.lookup(t1.chain()), 2u);
  expect_ok(tier);
}

TYPED_TEST(HostTier, PartialChainsWaitForTheirParentAndJoinIt) {
  manual_clock clock;
  auto tier = make_tier<TypeParam>(16, clock);
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(12, 0));
  // Block 2 first: its parent (block 1) is still in the pool.
  EXPECT_EQ(tier.store(c.blocks(2, 3), kvkit::tier_store_reason::eviction), 1u);
  expect_ok(tier);
  EXPECT_EQ(tier.lookup(c.chain()), 0u);      // block 0 is not here
  EXPECT_EQ(tier.lookup(c.chain(2, 3)), 1u);  // reachable from the pool's block 1
  // Blocks 0 and 1 arrive: the chain is whole.
  EXPECT_EQ(tier.store(c.blocks(0, 2, true), kvkit::tier_store_reason::eviction), 2u);
  expect_ok(tier);
  EXPECT_EQ(tier.lookup(c.chain()), 3u);
  // Storing a block held already only refreshes it.
  EXPECT_EQ(tier.store(c.blocks(1, 2), kvkit::tier_store_reason::eviction), 1u);
  EXPECT_EQ(tier.stats().refreshed_blocks, 1u);
  EXPECT_EQ(tier.stats().stored_blocks, 3u);
  EXPECT_EQ(tier.size(), 3u);
  expect_ok(tier);
}

// With the pool's access pattern (chains demoted tail first, hits refreshed tail first), every
// policy evicts leaves before their parents: no entry is ever detached from a held parent.
TYPED_TEST(HostTier, PoolOrderNeverDetachesAChild) {
  manual_clock clock;
  auto tier = make_tier<TypeParam>(10, clock);
  std::mt19937_64 rng(7);
  std::vector<std::unique_ptr<test_chain>> prompts;
  for (int i = 0; i < 12; ++i) {
    // Three prompts per group share their leading blocks and differ in the last one.
    auto tokens = iota_tokens(4 * (2 + rng() % 5), static_cast<kvkit::token_id>(i % 4) * 1000);
    tokens.back() += static_cast<kvkit::token_id>(i / 4);
    prompts.push_back(std::make_unique<test_chain>(small_layout(), seed, 1, 0,
                                                   std::vector<std::uint64_t>{}, tokens));
  }
  for (int op = 0; op < 500; ++op) {
    const test_chain& c = *prompts[rng() % prompts.size()];
    if (rng() % 2 == 0) {
      (void)tier.store(c.blocks(0, c.size(), /*tail_first=*/true),
                       kvkit::tier_store_reason::eviction);
    } else {
      block_buffers out(small_layout(), c.size());
      (void)tier.load(c.chain(), out.views);
    }
    const auto s = tier.check_invariants();
    ASSERT_TRUE(s.ok()) << s.message();
  }
  EXPECT_GT(tier.stats().evictions, 50u);
  EXPECT_EQ(tier.stats().detached, 0u);
}

TYPED_TEST(HostTier, StatisticsCountLookupsHitsAndBytes) {
  manual_clock clock;
  auto tier = make_tier<TypeParam>(16, clock);
  const auto l = small_layout();
  const test_chain c(l, seed, 1, 0, {}, iota_tokens(16, 0));
  (void)tier.store(c.blocks(0, 3), kvkit::tier_store_reason::eviction);
  block_buffers out(l, 4);
  EXPECT_EQ(tier.load(c.chain(), out.views), 3u);  // 4 asked, 3 held
  const test_chain other(l, seed, 1, 0, {}, iota_tokens(16, 900));
  EXPECT_EQ(tier.load(other.chain(), out.views), 0u);
  EXPECT_EQ(tier.lookup(c.chain(0, 2)), 2u);
  const auto st = tier.stats();
  EXPECT_EQ(st.lookups, 3u);
  EXPECT_EQ(st.lookup_blocks, 10u);
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.hit_blocks, 5u);
  EXPECT_EQ(st.hit_tokens, 20u);
  EXPECT_EQ(st.loaded_blocks, 3u);
  EXPECT_EQ(st.bytes_out, 3u * l.block_bytes_all_layers());
  EXPECT_EQ(st.bytes_in, 3u * l.block_bytes_all_layers());
  EXPECT_EQ(st.promotion_latency.count, 1u);  // one load promoted blocks
  EXPECT_GE(st.promotion_latency.max_ns, st.promotion_latency.p99_ns);
  EXPECT_GE(st.promotion_latency.p99_ns, st.promotion_latency.p50_ns);
  EXPECT_EQ(st.total_errors(), 0u);
  EXPECT_GT(st.metadata_bytes, 0u);
}

TYPED_TEST(HostTier, WritePolicyChoosesWhichStoresAreTaken) {
  manual_clock clock;
  typename kvkit::host_tier<TypeParam>::options o;
  o.capacity_blocks = 8;
  o.now = clock.fn();
  o.write = kvkit::tier_write_policy::through;
  auto through = kvkit::host_tier<TypeParam>::create(small_layout(), o);
  ASSERT_TRUE(through.ok());
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(8, 0));
  const auto blocks = c.blocks(0, 2);
  EXPECT_EQ(through->store(blocks, kvkit::tier_store_reason::eviction), 0u);
  EXPECT_EQ(through->size(), 0u);
  EXPECT_EQ(through->store(blocks, kvkit::tier_store_reason::commit), 2u);

  auto victim_cache = make_tier<TypeParam>(8, clock);
  EXPECT_FALSE(victim_cache.accepts(kvkit::tier_store_reason::commit));
  EXPECT_EQ(victim_cache.store(blocks, kvkit::tier_store_reason::commit), 0u);
  EXPECT_EQ(victim_cache.store(blocks, kvkit::tier_store_reason::warm), 2u);
  EXPECT_TRUE(kvkit::tier_traits<kvkit::host_tier<TypeParam>>::accepts(
      victim_cache, kvkit::tier_store_reason::eviction));
}

TYPED_TEST(HostTier, BadBlocksAreRefusedAndChangeNothing) {
  manual_clock clock;
  auto tier = make_tier<TypeParam>(2, clock);
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(8, 0));
  (void)tier.store(c.blocks(0, 2), kvkit::tier_store_reason::eviction);
  auto b = c.block(0);
  b.tokens = b.tokens.first(3);  // not a whole block
  const test_chain d(small_layout(), seed, 1, 0, {}, iota_tokens(8, 50));
  auto collided = d.block(0);
  collided.key = c.keys[1];  // another content under a held key
  auto own_parent = d.block(1);
  own_parent.parent = own_parent.key;  // a block cannot be its own parent
  auto no_bytes = d.block(1);
  no_bytes.kv = {};
  const kvkit::tier_block bad[] = {b, collided, own_parent, no_bytes};
  EXPECT_EQ(tier.store(bad, kvkit::tier_store_reason::eviction), 0u);
  EXPECT_EQ(tier.stats().rejected_blocks, 4u);
  EXPECT_EQ(tier.stats().evictions, 0u);  // nothing evicted for a refused block
  EXPECT_EQ(tier.lookup(c.chain()), 2u);
  block_buffers out(small_layout(), 2);
  EXPECT_EQ(tier.load(c.chain(), out.views), 2u);
  EXPECT_TRUE(out.holds(1, c.kv[1]));
  expect_ok(tier);
}

// Random operations against a naive model (a map from key to content): with room for everything
// the tier answers exactly as the model; with a small capacity it may answer less, never other
// bytes, and its invariants hold after every operation.
TYPED_TEST(HostTier, MatchesANaiveModel) {
  for (const std::uint32_t capacity : {4096u, 24u}) {
    manual_clock clock;
    auto tier = make_tier<TypeParam>(capacity, clock, 10s);
    std::mt19937_64 rng(capacity);
    struct entry {
      std::vector<kvkit::token_id> tokens;
      std::uint64_t parent;
      std::uint64_t salt, session;
      std::vector<std::uint64_t> extra;
      std::int64_t last;
    };
    std::map<std::uint64_t, entry> model;
    std::vector<std::unique_ptr<test_chain>> prompts;
    for (int i = 0; i < 40; ++i) {
      const std::uint64_t salt = rng() % 3;
      const std::uint64_t session = rng() % 4 == 0 ? 5 + rng() % 2 : 0;
      std::vector<std::uint64_t> extra;
      if (rng() % 3 == 0)
        extra.push_back(100 + rng() % 2);
      // Prompts share prefixes: a few bases, different lengths.
      auto tokens = iota_tokens(4 * (2 + rng() % 6), static_cast<kvkit::token_id>(rng() % 3) * 50);
      tokens.back() += static_cast<kvkit::token_id>(rng() % 2);
      prompts.push_back(
          std::make_unique<test_chain>(small_layout(), seed, salt, session, extra, tokens));
    }
    auto model_run = [&](const test_chain& c, std::size_t from) {
      std::size_t n = 0;
      for (std::size_t i = from; i < c.size(); ++i) {
        auto it = model.find(c.keys[i]);
        if (it == model.end())
          break;
        const entry& e = it->second;
        const auto t = c.block_tokens(i);
        if (e.parent != c.parent_of(i) || !std::equal(t.begin(), t.end(), e.tokens.begin()) ||
            e.salt != c.ns.tenant_salt || e.session != c.ns.session_id || e.extra != c.extra ||
            *clock.t - e.last > 10'000'000'000)
          break;
        ++n;
      }
      return n;
    };
    for (int op = 0; op < 3000; ++op) {
      const test_chain& c = *prompts[rng() % prompts.size()];
      const auto r = rng() % 100;
      if (r < 45) {
        const std::size_t to = 1 + rng() % c.size();
        const std::size_t from = rng() % to;
        const auto blocks = c.blocks(from, to, rng() % 2 == 0);
        (void)tier.store(blocks, kvkit::tier_store_reason::eviction);
        for (std::size_t i = from; i < to; ++i) {
          auto t = c.block_tokens(i);
          model[c.keys[i]] = entry{{t.begin(), t.end()}, c.parent_of(i), c.ns.tenant_salt,
                                   c.ns.session_id,      c.extra,        *clock.t};
        }
      } else if (r < 85) {
        const std::size_t from = rng() % c.size();
        block_buffers out(small_layout(), c.size() - from);
        const auto expect = model_run(c, from);
        const auto n = tier.load(c.chain(from, c.size()), out.views);
        if (capacity > 100) {
          ASSERT_EQ(n, expect) << "op " << op;
        } else {
          ASSERT_LE(n, expect) << "op " << op;
        }
        for (std::size_t i = 0; i < n; ++i) {
          ASSERT_TRUE(out.holds(i, c.kv[from + i])) << "op " << op;
          model[c.keys[from + i]].last = *clock.t;
        }
      } else if (r < 90) {
        const auto scope = rng() % 3 == 0   ? kvkit::tier_scope::tenant(rng() % 3)
                           : rng() % 2 == 0 ? kvkit::tier_scope::session(5 + rng() % 2)
                                            : kvkit::tier_scope::extra_key(100 + rng() % 2);
        (void)tier.invalidate(scope);
        std::erase_if(model, [&](const auto& kv) {
          const entry& e = kv.second;
          switch (scope.what) {
            case kvkit::tier_scope::kind::tenant:
              return e.salt == scope.value;
            case kvkit::tier_scope::kind::session:
              return e.session == scope.value;
            case kvkit::tier_scope::kind::extra_key:
              return std::find(e.extra.begin(), e.extra.end(), scope.value) != e.extra.end();
          }
          return false;
        });
      } else if (r < 95) {
        clock.advance(std::chrono::milliseconds(rng() % 3000));
      } else {
        (void)tier.expire();
        std::erase_if(model,
                      [&](const auto& kv) { return *clock.t - kv.second.last > 10'000'000'000; });
      }
      if (op % 50 == 0 || capacity < 100) {
        const auto s = tier.check_invariants();
        ASSERT_TRUE(s.ok()) << "op " << op << ": " << s.message();
      }
      ASSERT_LE(tier.size(), capacity);
    }
    // The run exercised what it claims to: hits, evictions under pressure, expiry.
    const auto st = tier.stats();
    std::printf(
        "capacity %u: hit blocks %llu, evictions %llu, detached %llu, expirations %llu, "
        "invalidated %llu\n",
        capacity, static_cast<unsigned long long>(st.hit_blocks),
        static_cast<unsigned long long>(st.evictions), static_cast<unsigned long long>(st.detached),
        static_cast<unsigned long long>(st.expirations),
        static_cast<unsigned long long>(st.invalidated));
    EXPECT_GT(st.hit_blocks, 500u);
    EXPECT_GT(st.expirations + st.invalidated, 0u);
    if (capacity < 100) {
      EXPECT_GT(st.evictions, 100u);
    }
  }
}

TEST(HostTierCreate, RejectsBadSettingsWithAClearMessage) {
  kvkit::host_tier<>::options o;
  auto zero = kvkit::host_tier<>::create(small_layout(), o);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.code(), kvkit::errc::invalid_config);
  EXPECT_NE(zero.error().message().find("capacity_blocks must be in [1, 2^31], got 0"),
            std::string::npos);

  o.capacity_blocks = 4;
  auto l = small_layout();
  l.block_size = 3;
  auto bad_layout = kvkit::host_tier<>::create(l, o);
  ASSERT_FALSE(bad_layout.ok());
  EXPECT_NE(bad_layout.error().message().find("block_size"), std::string::npos);

  o.arena.allocate = [](std::size_t) -> void* {
    return nullptr;
  };
  auto half = kvkit::host_tier<>::create(small_layout(), o);
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.error().message().find("both allocate and deallocate"), std::string::npos);

  o.arena.deallocate = [](void*, std::size_t) {
  };
  auto none = kvkit::host_tier<>::create(small_layout(), o);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(
      none.error().message().find("could not allocate its arena of 2048 bytes (4 blocks of 512)"),
      std::string::npos);
}

TEST(HostTierArena, UsesTheGivenAllocatorOnceForEveryBlock) {
  struct counts {
    int allocations = 0;
    int frees = 0;
    std::size_t bytes = 0;
  };
  auto c = std::make_shared<counts>();
  {
    kvkit::host_tier<>::options o;
    o.capacity_blocks = 5;
    o.arena.allocate = [c](std::size_t n) -> void* {
      ++c->allocations;
      c->bytes = n;
      return ::operator new(n);
    };
    o.arena.deallocate = [c](void* p, std::size_t n) {
      ++c->frees;
      EXPECT_EQ(n, c->bytes);
      ::operator delete(p);
    };
    auto tier = kvkit::host_tier<>::create(small_layout(), o);
    ASSERT_TRUE(tier.ok());
    auto moved = std::move(*tier);
    EXPECT_EQ(c->allocations, 1);
    EXPECT_EQ(c->bytes, 5 * small_layout().block_bytes_all_layers());
  }
  EXPECT_EQ(c->frees, 1);
}

TEST(HostTierStorage, LoadsIntoAndStoresFromHostStorageBlocks) {
  kvkit::kv_layout l = small_layout();
  l.num_blocks = 8;
  auto storage = kvkit::host_storage<kvkit::fp16>::create(l);
  ASSERT_TRUE(storage.ok());
  // Write a recognisable block 3 into the pool, demote it, load it into pool block 6.
  std::uint16_t v = 1;
  for (std::uint32_t layer = 0; layer < l.num_layers; ++layer)
    for (std::uint32_t kv = 0; kv < 2; ++kv)
      for (auto& x : storage->block(layer, kv, 3))
        x.bits = v++;
  manual_clock clock;
  auto tier = make_tier<kvkit::lru_eviction>(4, clock);
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(4, 0));
  auto b = c.block(0);
  b.kv = kvkit::block_view(std::as_const(*storage), 3);
  EXPECT_EQ(tier.store(std::span(&b, 1), kvkit::tier_store_reason::eviction), 1u);
  const kvkit::kv_block_view dst = kvkit::block_view(*storage, 6);
  EXPECT_EQ(tier.load(c.chain(), std::span(&dst, 1)), 1u);
  for (std::uint32_t layer = 0; layer < l.num_layers; ++layer) {
    for (std::uint32_t kv = 0; kv < 2; ++kv) {
      const auto s = storage->block(layer, kv, 3);
      const auto d = storage->block(layer, kv, 6);
      for (std::size_t i = 0; i < s.size(); ++i)
        ASSERT_EQ(s[i].bits, d[i].bits) << layer << " " << kv << " " << i;
    }
  }
}

TEST(CopyChain, WarmsOneTierFromAnother) {
  manual_clock clock;
  auto from = make_tier<kvkit::lru_eviction>(8, clock);
  auto to = make_tier<kvkit::lfu_eviction>(8, clock);
  const test_chain c(small_layout(), seed, 1, 0, {}, iota_tokens(16, 0));
  (void)from.store(c.blocks(0, 3), kvkit::tier_store_reason::eviction);
  EXPECT_EQ(kvkit::copy_chain(from, to, c.chain()), 3u);
  block_buffers out(small_layout(), 4);
  EXPECT_EQ(to.load(c.chain(), out.views), 3u);
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_TRUE(out.holds(i, c.kv[i]));
}

}  // namespace
