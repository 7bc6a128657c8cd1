// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The miss-reason suite (kvkit::miss_reason), parameterised by matcher: each reason produced on
// purpose in a real cache and reported to the request and counted in the statistics; the removal
// record's bound and memory; no word about other tenants in a request's reason; failed calls
// change nothing; and a differential test against a naive model of the reasons, fed by the
// cache's listener, on random request streams. Instantiated by tests/core/miss_reasons_test.cpp
// (hash, radix, session matchers) and tests/events/vllm_miss_reasons_test.cpp (the hash matcher
// over vLLM's block hashes, which needs OpenSSL).
#pragma once

#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/eviction/ttl.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/eviction_testing.hpp"

namespace kvkit::test {

namespace miss_suite {
constexpr std::uint32_t bs = 4;
}  // namespace miss_suite
using miss_suite::bs;

template <class M, class E = lru_eviction, class L = no_listener>
using cache_of = prefix_cache<free_list_allocator, M, E, no_storage, L>;

template <class Cache>
Cache make(std::uint32_t blocks, std::optional<std::uint32_t> record = {},
           const typename Cache::eviction_options& eviction = {}) {
  auto storage = no_storage::create(bs, blocks);
  EXPECT_TRUE(storage.ok()) << storage.status().message();
  auto c = Cache::create(cache_config{.seed = 7, .miss_record = record}, std::move(storage).value(),
                         eviction);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return std::move(c).value();
}

/// Admit, commit every token, finish; returns the admission.
template <class Cache>
admission run(Cache& c, const std::vector<token_id>& prompt, const request_options& o = {}) {
  auto a = c.admit(prompt, o);
  EXPECT_TRUE(a.ok()) << a.status().message();
  if (!a.ok())
    return {};
  EXPECT_TRUE(c.commit(a->id).ok());
  EXPECT_TRUE(c.finish(a->id).ok());
  return *a;
}

template <class M>
class MissReasons : public ::testing::Test {};
TYPED_TEST_SUITE_P(MissReasons);

// 9 tokens in blocks of 4: two eligible blocks and the last token's block.
TYPED_TEST_P(MissReasons, NeverStoredThenFullHit) {
  auto c = make<cache_of<TypeParam>>(16);
  const auto p = iota_tokens(1, 9);
  const admission first = run(c, p);
  EXPECT_EQ(first.miss, (miss_info{miss_reason::never_stored, 0, {}, 0}));
  EXPECT_EQ(c.explain_miss(p), (miss_info{miss_reason::full_hit, 2, {}, 0}));
  const admission second = run(c, p);
  EXPECT_EQ(second.request.cached_tokens, 8u);
  EXPECT_EQ(second.miss, (miss_info{miss_reason::full_hit, 2, {}, 0}));
  // A longer prompt sharing the first block stops at its second block.
  const auto q = concat(iota_tokens(1, 4), iota_tokens(50, 9));
  EXPECT_EQ(run(c, q).miss, (miss_info{miss_reason::never_stored, 1, {}, 0}));
  const cache_stats s = c.stats();
  EXPECT_EQ(s.miss_reasons.never_stored, 2u);
  EXPECT_EQ(s.miss_reasons.full_hit, 1u);
  EXPECT_EQ(s.miss_reasons.missed() + s.miss_reasons.full_hit, s.queries);
  KVKIT_EXPECT_INVARIANTS(c);
}

// A last block that is not full, and prompts with no eligible block at all.
TYPED_TEST_P(MissReasons, PartialLastBlock) {
  auto c = make<cache_of<TypeParam>>(16);
  const auto p = iota_tokens(1, 11);  // blocks: 4, 4, 3 tokens
  run(c, p);
  const admission again = run(c, p);
  EXPECT_EQ(again.request.cached_tokens, 8u);
  EXPECT_EQ(again.miss, (miss_info{miss_reason::partial_last_block, 2, {}, 0}));
  EXPECT_EQ(run(c, iota_tokens(100, 3)).miss,
            (miss_info{miss_reason::partial_last_block, 0, {}, 0}));
  EXPECT_EQ(run(c, iota_tokens(200, 4)).miss,
            (miss_info{miss_reason::partial_last_block, 0, {}, 0}))
      << "a full block holding the last token is never reused";
  EXPECT_EQ(run(c, iota_tokens(300, 1)).miss,
            (miss_info{miss_reason::partial_last_block, 0, {}, 0}));
  EXPECT_EQ(c.explain_miss({}), (miss_info{miss_reason::partial_last_block, 0, {}, 0}));
  EXPECT_EQ(c.stats().miss_reasons.partial_last_block, 4u);
  EXPECT_EQ(c.stats().miss_reasons.never_stored, 1u);
}

// Evicting exactly the second block of a cached prompt: a next request hits the first and is
// told the second was evicted by LRU, with the operations since.
TYPED_TEST_P(MissReasons, Evicted) {
  auto c = make<cache_of<TypeParam>>(4);
  const auto a = iota_tokens(1, 9);
  run(c, a);  // caches 2 blocks; 2 free
  // 4 blocks: takes the 2 free ones and evicts 2 (a's second block, released first, then its
  // first): both gone; the admit is tick 3, its commit tick 4.
  run(c, iota_tokens(100, 13));
  const admission back = run(c, a);  // tick 5
  EXPECT_EQ(back.miss.reason, miss_reason::evicted);
  EXPECT_EQ(back.miss.block, 0u);
  EXPECT_EQ(back.miss.policy, "lru");
  EXPECT_EQ(back.miss.age_ticks, 1u) << "evicted at tick 3, looked up at tick 4";
  EXPECT_EQ(c.stats().miss_reasons.evicted, 1u);
  // Now a second block alone: pressure of one block evicts the least recently released block.
  auto d = make<cache_of<TypeParam>>(6);
  run(d, a);                                          // a: 2 cached blocks, 4 free
  auto held = d.admit(iota_tokens(500, 12)).value();  // 3 of the free blocks
  auto one = d.admit(iota_tokens(900, 5)).value();    // the last free one, and a's second block
  ASSERT_TRUE(d.finish(one.id).ok());                 // never committed: 2 blocks free again
  const admission partly = run(d, a);
  EXPECT_EQ(partly.request.cached_tokens, 4u);
  EXPECT_EQ(partly.miss.reason, miss_reason::evicted);
  EXPECT_EQ(partly.miss.block, 1u);
  ASSERT_TRUE(d.finish(held.id).ok());
  KVKIT_EXPECT_INVARIANTS(d);
}

// Invalidation: of unreferenced blocks (freed now), of referenced ones (freed on release), and
// clear().
TYPED_TEST_P(MissReasons, Invalidated) {
  auto c = make<cache_of<TypeParam>>(16);
  const request_options t5{.tenant_salt = 5};
  const auto a = iota_tokens(1, 9);
  run(c, a, t5);
  EXPECT_EQ(c.invalidate_tenant(5), 2u);
  const admission after = run(c, a, t5);
  EXPECT_EQ(after.miss.reason, miss_reason::invalidated);
  EXPECT_EQ(after.miss.block, 0u);
  EXPECT_TRUE(after.miss.policy.empty());
  EXPECT_EQ(run(c, a, t5).miss.reason, miss_reason::full_hit);

  // Held by a live sequence while invalidated: never hit again, and reported so at once.
  const auto b = iota_tokens(100, 9);
  auto live = c.admit(b, t5).value();
  ASSERT_TRUE(c.commit(live.id).ok());
  EXPECT_EQ(c.invalidate_tenant(5), 2u);  // a's blocks; b's stay with their sequence
  EXPECT_EQ(c.explain_miss(b, t5).reason, miss_reason::invalidated);
  const admission b2 = run(c, b, t5);
  EXPECT_EQ(b2.miss.reason, miss_reason::invalidated);
  ASSERT_TRUE(c.finish(live.id).ok());

  const auto d = iota_tokens(200, 9);
  run(c, d);
  c.clear();
  EXPECT_EQ(run(c, d).miss.reason, miss_reason::invalidated);
  EXPECT_EQ(c.stats().miss_reasons.invalidated, 3u);
  KVKIT_EXPECT_INVARIANTS(c);
}

// Time to live: an expired block still in the pool (age 0), and one freed by expire().
TYPED_TEST_P(MissReasons, Expired) {
  manual_clock clock;
  ttl_options o;
  o.ttl = std::chrono::seconds(10);
  o.now = clock.fn();
  auto c = make<cache_of<TypeParam, ttl_eviction>>(16, {}, o);
  const auto a = iota_tokens(1, 9);
  const auto b = iota_tokens(100, 9);
  run(c, a);
  run(c, b);
  clock.advance(std::chrono::seconds(11));
  EXPECT_EQ(c.explain_miss(a), (miss_info{miss_reason::expired, 0, "ttl", 0}));
  const admission in_pool = run(c, a);  // its commit retires the expired copy
  EXPECT_EQ(in_pool.miss, (miss_info{miss_reason::expired, 0, "ttl", 0}));
  EXPECT_EQ(c.expire(), 2u);  // b's blocks
  run(c, iota_tokens(300, 5));
  const admission freed = run(c, b);
  EXPECT_EQ(freed.miss.reason, miss_reason::expired);
  EXPECT_EQ(freed.miss.policy, "ttl");
  EXPECT_EQ(freed.miss.age_ticks, 2u) << "expire() at tick 3+2, then an admit and a commit";
  EXPECT_EQ(c.stats().miss_reasons.expired, 2u);
  KVKIT_EXPECT_INVARIANTS(c);
}

// The same tokens cached under another tenant salt, session or extra keys: the request is told
// never_stored, exactly what it is told when nobody cached them; only the statistics count it.
TYPED_TEST_P(MissReasons, OtherNamespaceIsCountedButNeverTold) {
  const auto a = iota_tokens(1, 13);
  const std::uint64_t adapter[] = {77};
  const request_options others[] = {{.tenant_salt = 1},
                                    {.session_id = 9},
                                    {.extra_keys = adapter},
                                    {.tenant_salt = 1, .extra_keys = adapter}};
  for (const request_options& other : others) {
    auto with = make<cache_of<TypeParam>>(32);
    auto without = make<cache_of<TypeParam>>(32);
    run(with, a);  // the shared namespace holds a
    run(without, iota_tokens(500, 13));
    EXPECT_EQ(with.explain_miss(a, other), without.explain_miss(a, other));
    const admission told = run(with, a, other);
    const admission baseline = run(without, a, other);
    EXPECT_EQ(told.miss, baseline.miss);
    EXPECT_EQ(told.miss, (miss_info{miss_reason::never_stored, 0, {}, 0}));
    EXPECT_EQ(told.request, baseline.request);
    EXPECT_EQ(with.stats().miss_reasons.other_namespace, 1u);
    EXPECT_EQ(with.stats().miss_reasons.never_stored, 1u);  // the first run
    EXPECT_EQ(without.stats().miss_reasons.other_namespace, 0u);
    EXPECT_EQ(without.stats().miss_reasons.never_stored, 2u);
    KVKIT_EXPECT_INVARIANTS(with);
    // Past a first block cached in both namespaces, the second is cached in the shared one only.
    auto past = make<cache_of<TypeParam>>(32);
    run(past, a);
    EXPECT_EQ(run(past, concat(iota_tokens(1, 4), iota_tokens(600, 5)), other).miss,
              (miss_info{miss_reason::never_stored, 0, {}, 0}));
    EXPECT_EQ(run(past, a, other).miss, (miss_info{miss_reason::never_stored, 1, {}, 0}));
    EXPECT_EQ(past.stats().miss_reasons.other_namespace, 2u);
    EXPECT_EQ(past.stats().miss_reasons.never_stored, 1u);
    KVKIT_EXPECT_INVARIANTS(past);
  }
}

// Per class: the reasons of each class add up to its admissions.
TYPED_TEST_P(MissReasons, PerClass) {
  auto c = make<cache_of<TypeParam>>(16);
  const auto a = iota_tokens(1, 9);
  run(c, a, {.request_class = 3});
  run(c, a, {.request_class = 4});
  run(c, iota_tokens(50, 11), {.request_class = 4});
  EXPECT_EQ(c.stats(3).miss_reasons.never_stored, 1u);
  EXPECT_EQ(c.stats(4).miss_reasons.full_hit, 1u);
  EXPECT_EQ(c.stats(4).miss_reasons.never_stored, 1u);
  EXPECT_EQ(c.stats(4).miss_reasons.missed() + c.stats(4).miss_reasons.full_hit,
            c.stats(4).queries);
  EXPECT_EQ(c.stats(5).miss_reasons, miss_reason_counts{});
}

// A prompt the pool can never hold: explain_miss() says so; admit() fails and changes nothing
// (statistics, record, matches, reasons).
TYPED_TEST_P(MissReasons, PoolTooSmallAndFailedCallsChangeNothing) {
  auto c = make<cache_of<TypeParam>>(4);
  const auto a = iota_tokens(1, 9);
  run(c, a);
  const auto huge = iota_tokens(1, 4 * bs + 1);  // 5 blocks; its first two are cached
  EXPECT_EQ(c.explain_miss(huge), (miss_info{miss_reason::pool_too_small, 2, {}, 0}));
  expect_rejected_unchanged(c, {}, {probe{a}, probe{huge}}, errc::out_of_blocks, {"blocks"},
                            [&] { return c.admit(huge); });
  expect_rejected_unchanged(c, {}, {probe{a}}, errc::invalid_argument, {"request_class"},
                            [&] { return c.admit(a, {.request_class = max_request_classes}); });
  expect_rejected_unchanged(c, {}, {probe{a}}, errc::empty_input, {"empty"},
                            [&] { return c.admit({}); });
  // A prompt that fits the pool but not the free room now.
  auto hold = c.admit(iota_tokens(700, 12)).value();  // 3 blocks: the 2 free, and one of a's
  expect_rejected_unchanged(c, {hold.id}, {probe{a}}, errc::out_of_blocks, {"blocks"},
                            [&] { return c.admit(iota_tokens(800, 9)); });
  EXPECT_EQ(c.explain_miss(iota_tokens(700, 13)).reason, miss_reason::never_stored);
  ASSERT_TRUE(c.finish(hold.id).ok());
  const cache_config too_big{.seed = 1, .miss_record = (1u << 31) + 1};
  auto bad = cache_of<TypeParam>::create(too_big, no_storage::create(bs, 4).value());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), errc::invalid_config);
  EXPECT_NE(bad.status().message().find("miss_record"), std::string::npos);
}

// The record remembers the last N/2 to N removals (two generations): older ones fall out
// (never_stored again), newer ones are told; its memory is what stats() reports. 0 turns it (and
// the content index) off.
TYPED_TEST_P(MissReasons, RecordIsBoundedAndItsMemoryReported) {
  constexpr std::uint32_t blocks = 8;
  const auto record_bytes = [](std::uint32_t n) {
    return std::size_t{2} * std::bit_ceil(std::size_t{(n + 1) / 2} * 2) * 16;
  };
  const std::size_t content_bytes = blocks * 8 + std::bit_ceil(2 * blocks) * 4;
  auto c = make<cache_of<TypeParam>>(blocks, 4);
  auto all = make<cache_of<TypeParam>>(blocks, 1000);
  EXPECT_EQ(c.stats().miss_record_bytes, record_bytes(4) + content_bytes);
  EXPECT_EQ(all.stats().miss_record_bytes, record_bytes(1000) + content_bytes);
  // Fourteen one-block prompts (5 tokens: one eligible block) through a pool of 8: the later
  // ones evict the least recently used.
  std::vector<std::vector<token_id>> p;
  for (token_id i = 0; i < 14; ++i)
    p.push_back(iota_tokens(1000 * (i + 1), 5));
  for (const auto& x : p) {
    run(c, x);
    run(all, x);
  }
  std::vector<miss_reason> told, told_all;
  for (const auto& x : p) {
    told.push_back(c.explain_miss(x).reason);
    told_all.push_back(all.explain_miss(x).reason);
  }
  const auto count = [](const std::vector<miss_reason>& v, miss_reason r) {
    return static_cast<std::uint32_t>(std::count(v.begin(), v.end(), r));
  };
  // A record larger than every removal tells every evicted prompt; the small one forgets all
  // but the last 2 to 4.
  const std::uint32_t evicted = count(told_all, miss_reason::evicted);
  EXPECT_GE(evicted, 6u);
  EXPECT_EQ(count(told_all, miss_reason::never_stored), 0u);
  EXPECT_EQ(evicted + count(told_all, miss_reason::full_hit), p.size());
  EXPECT_GE(count(told, miss_reason::evicted), 2u);
  EXPECT_LE(count(told, miss_reason::evicted), 4u);
  EXPECT_EQ(count(told, miss_reason::never_stored) + count(told, miss_reason::evicted), evicted);
  EXPECT_EQ(told.front(), miss_reason::never_stored) << "the oldest removal fell out";
  std::size_t last_evicted = 0;
  for (std::size_t i = 0; i < told_all.size(); ++i)
    if (told_all[i] == miss_reason::evicted)
      last_evicted = i;
  EXPECT_EQ(told[last_evicted], miss_reason::evicted) << "the newest removal is told";

  auto off = make<cache_of<TypeParam>>(blocks, 0);
  EXPECT_EQ(off.stats().miss_record_bytes, 0u);
  for (const auto& x : p)
    run(off, x);
  EXPECT_EQ(off.explain_miss(p.front()).reason, miss_reason::never_stored);
  run(off, p.back(), {.tenant_salt = 3});
  EXPECT_EQ(off.stats().miss_reasons.other_namespace, 0u);
  auto dflt = make<cache_of<TypeParam>>(blocks);
  EXPECT_EQ(dflt.stats().miss_record_bytes, record_bytes(blocks) + content_bytes);
}

// ---- differential: the cache's reasons against a naive model fed by its listener -------------

// The naive model: every block ever stored or removed, by (namespace keys, whole token prefix),
// with no bound; "live" prefixes by namespace. It knows nothing of keys or hashes.
struct naive_reasons {
  struct prefix_state {
    int live = 0;          // cached blocks with this prefix (several: a detached copy)
    bool removed = false;  // removed or invalidated at least once
    removal_reason why{};  // the latest removal or invalidation
  };
  // namespace (tenant, session) -> prefix tokens -> state
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::map<std::vector<token_id>, prefix_state>>
      blocks;
  std::map<std::uint64_t, std::vector<token_id>> prefix_of_key;  // chained key -> prefix

  void stored(const block_event& e) {
    std::vector<token_id> prefix;
    if (auto it = prefix_of_key.find(e.parent_key); it != prefix_of_key.end())
      prefix = it->second;
    prefix.insert(prefix.end(), e.tokens.begin(), e.tokens.end());
    prefix_of_key[e.key] = prefix;
    ++blocks[{e.tenant_salt, e.session_id}][prefix].live;
  }
  void removed(const block_event& e, removal_reason why) {
    prefix_state& s = blocks[{e.tenant_salt, e.session_id}][prefix_of_key.at(e.key)];
    --s.live;
    s.removed = true;
    s.why = why;
  }
  // Tenant @p tenant was invalidated: its cached prefixes are never hit again (those held by
  // sequences are removed when released).
  void invalidated(std::uint64_t tenant) {
    for (auto& [keys, prefixes] : blocks) {
      if (keys.first != tenant)
        continue;
      for (auto& [prefix, s] : prefixes) {
        if (s.live > 0) {
          s.removed = true;
          s.why = removal_reason::invalidated;
        }
      }
    }
  }
  // The reason of a request stopped at block k (k < eligible): told, and counted as another
  // namespace's.
  std::pair<miss_reason, bool> reason(const std::vector<token_id>& prompt, std::uint32_t k,
                                      std::uint64_t tenant, std::uint64_t session) const {
    const std::vector<token_id> prefix(prompt.begin(), prompt.begin() + (k + 1) * bs);
    if (auto ns = blocks.find({tenant, session}); ns != blocks.end()) {
      if (auto it = ns->second.find(prefix); it != ns->second.end() && it->second.removed) {
        switch (it->second.why) {
          case removal_reason::evicted:
            return {miss_reason::evicted, false};
          case removal_reason::expired:
            return {miss_reason::expired, false};
          default:
            return {miss_reason::invalidated, false};
        }
      }
    }
    for (const auto& [keys, prefixes] : blocks) {
      if (keys == std::make_pair(tenant, session))
        continue;
      if (auto it = prefixes.find(prefix); it != prefixes.end() && it->second.live > 0)
        return {miss_reason::never_stored, true};
    }
    return {miss_reason::never_stored, false};
  }
};

struct recording_listener {
  naive_reasons* model = nullptr;
  void on_stored(const block_event& e) { model->stored(e); }
  void on_removed(const block_event& e, removal_reason why) { model->removed(e, why); }
};

// Random streams of prompts from a few shared prefixes, two tenants, running sequences held
// across admissions and now and then an invalidation: with a record larger than every removal,
// each admission's reason and the counters equal the naive model's.
TYPED_TEST_P(MissReasons, MatchesANaiveModelOnRandomStreams) {
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    std::mt19937_64 rng(seed);
    naive_reasons model;
    auto c = make<cache_of<TypeParam, lru_eviction, recording_listener>>(24, 1u << 16);
    c.listener().model = &model;
    std::vector<sequence_id> live;
    miss_reason_counts expected;
    for (int step = 0; step < 300; ++step) {
      const std::uint64_t tenant = rng() % 2;
      // Prompts from 4 stems, 1-5 blocks long, a random tail.
      const auto stem = static_cast<token_id>(rng() % 4);
      std::vector<token_id> prompt;
      const std::size_t len = 1 + rng() % (5 * bs + 2);
      for (std::size_t i = 0; i < len; ++i)
        prompt.push_back(i < (rng() % 4) * bs + bs ? stem * 100 + static_cast<token_id>(i)
                                                   : static_cast<token_id>(10000 + rng() % 3));
      const request_options o{.tenant_salt = tenant};
      const std::uint32_t eligible = static_cast<std::uint32_t>((prompt.size() - 1) / bs);
      const naive_reasons found = model;  // what the request finds (its own evictions come after)
      auto a = c.admit(prompt, o);
      if (!a.ok()) {
        ASSERT_EQ(a.code(), errc::out_of_blocks);
        for (sequence_id id : live)
          ASSERT_TRUE(c.finish(id).ok());
        live.clear();
        continue;
      }
      const std::uint32_t k = a->cached_blocks;
      miss_reason want;
      bool other = false;
      if (prompt.size() > 1 && a->request.cached_tokens == prompt.size() - 1) {
        want = miss_reason::full_hit;
      } else if (k >= eligible) {
        want = miss_reason::partial_last_block;
      } else {
        std::tie(want, other) = found.reason(prompt, k, tenant, 0);
      }
      ASSERT_EQ(a->miss.reason, want) << "seed " << seed << " step " << step << " block " << k;
      ASSERT_EQ(a->miss.block, k);
      detail::count_reason(expected, want, other);
      ASSERT_EQ(c.stats().miss_reasons, expected)
          << "seed " << seed << " step " << step << " block " << k;
      ASSERT_TRUE(c.commit(a->id).ok());
      if (rng() % 3 == 0) {
        live.push_back(a->id);
      } else {
        ASSERT_TRUE(c.finish(a->id).ok());
      }
      if (live.size() > 3) {
        ASSERT_TRUE(c.finish(live.front()).ok());
        live.erase(live.begin());
      }
      if (rng() % 40 == 0) {
        const std::uint64_t t = rng() % 2;
        model.invalidated(t);
        c.invalidate_tenant(t);
      }
    }
    EXPECT_EQ(c.stats().miss_reasons, expected) << "seed " << seed;
    KVKIT_EXPECT_INVARIANTS(c);
    for (sequence_id id : live)
      ASSERT_TRUE(c.finish(id).ok());
  }
}

REGISTER_TYPED_TEST_SUITE_P(MissReasons, NeverStoredThenFullHit, PartialLastBlock, Evicted,
                            Invalidated, Expired, OtherNamespaceIsCountedButNeverTold, PerClass,
                            PoolTooSmallAndFailedCallsChangeNothing,
                            RecordIsBoundedAndItsMemoryReported, MatchesANaiveModelOnRandomStreams);

}  // namespace kvkit::test
