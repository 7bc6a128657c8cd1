// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Every eviction policy inside a prefix_cache: random workloads (admit, partial and full commits,
// appends, forks, pins, finishes, expiry, invalidation) with check_invariants() after every step.
// A referenced block is never evicted (live sequences keep their block tables and tokens), and a
// policy offered only leaves (or one that orders parents after children, as LRU and TTL do) never
// causes a cascade eviction.

#include <kvkit/eviction/fifo.hpp>
#include <kvkit/eviction/lfu.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/eviction/priority.hpp>
#include <kvkit/eviction/sieve.hpp>
#include <kvkit/eviction/ttl.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/eviction_testing.hpp"

namespace kvkit::test {
namespace {

using std::chrono::milliseconds;

template <class E>
policy_options_t<E> options_for(const manual_clock& clock) {
  if constexpr (std::is_same_v<E, ttl_eviction>) {
    ttl_options o;
    o.ttl = milliseconds(40);
    o.now = clock.fn();
    return o;
  } else if constexpr (std::is_same_v<E, priority_eviction>) {
    priority_options o;
    o.classes = {{0, milliseconds(0)}, {4, milliseconds(25)}, {9, milliseconds(0)}};
    o.default_priority = 1;
    o.now = clock.fn();
    return o;
  } else {
    (void)clock;
    return {};
  }
}

template <class E>
class eviction_in_cache : public ::testing::Test {};

using all_policies = ::testing::Types<lru_eviction, lfu_eviction, fifo_eviction, ttl_eviction,
                                      priority_eviction, sieve_eviction>;
TYPED_TEST_SUITE(eviction_in_cache, all_policies);

struct live {
  sequence_id id;
  std::vector<token_id> tokens;
  std::vector<block_id> blocks;
  std::uint32_t committed_blocks = 0;  // blocks known to be cached (hits and commits)
};

// Shared prefixes of 0 to 5 blocks, then random tails over a small alphabet, so prompts share
// whole blocks, partial blocks and nothing at all.
std::vector<token_id> random_prompt(std::mt19937& rng) {
  static const std::vector<token_id> prefixes[] = {
      {}, iota_tokens(1, 8), iota_tokens(1, 20), iota_tokens(50, 12), iota_tokens(50, 6)};
  std::vector<token_id> p = prefixes[rng() % 5];
  const std::size_t tail = 1 + rng() % 14;
  for (std::size_t i = 0; i < tail; ++i)
    p.push_back(static_cast<token_id>(200 + rng() % 3));
  return p;
}

template <class Cache>
void expect_unchanged(const Cache& c, const std::vector<live>& seqs, std::uint64_t step) {
  for (const live& s : seqs) {
    const auto v = c.sequence(s.id);
    ASSERT_TRUE(v.ok()) << "step " << step << ": " << v.status().message();
    ASSERT_TRUE(std::equal(v->tokens.begin(), v->tokens.end(), s.tokens.begin(), s.tokens.end()))
        << "step " << step;
    ASSERT_TRUE(std::equal(v->blocks.begin(), v->blocks.end(), s.blocks.begin(), s.blocks.end()))
        << "step " << step << ": a live sequence's block table changed under it";
  }
}

template <class Cache>
void refresh(const Cache& c, live& s) {
  const auto v = c.sequence(s.id);
  ASSERT_TRUE(v.ok());
  s.tokens.assign(v->tokens.begin(), v->tokens.end());
  s.blocks.assign(v->blocks.begin(), v->blocks.end());
}

TYPED_TEST(eviction_in_cache, RandomWorkloadsKeepEveryInvariant) {
  using E = TypeParam;
  for (std::uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    manual_clock clock;
    auto c = make_cache_with<E>(24, 4, options_for<E>(clock));
    std::mt19937 rng(seed);
    std::vector<live> seqs;
    std::uint64_t prev_evictions = 0;
    for (std::uint64_t step = 0; step < 3000; ++step) {
      clock.advance(milliseconds(rng() % 3));
      const unsigned op = rng() % 100;
      if (op < 30 || seqs.empty()) {  // admit
        request_options o;
        o.request_class = rng() % 4;
        o.tenant_salt = rng() % 8 == 0 ? 7 : 0;
        const auto prompt = random_prompt(rng);
        auto a = c.admit(prompt, o);
        if (a.ok()) {
          live s;
          s.id = a->id;
          refresh(c, s);
          seqs.push_back(std::move(s));
        } else {
          ASSERT_EQ(a.code(), errc::out_of_blocks) << a.status().message();
        }
      } else if (op < 50) {  // commit some or all computed tokens
        live& s = seqs[rng() % seqs.size()];
        const auto v = c.sequence(s.id);
        ASSERT_TRUE(v.ok());
        const std::uint32_t lo = v->computed_tokens;
        const auto hi = static_cast<std::uint32_t>(v->tokens.size());
        const std::uint32_t n = lo + (hi > lo ? rng() % (hi - lo + 1) : 0);
        ASSERT_TRUE(c.commit(s.id, n).ok());
        refresh(c, s);       // deduplication may switch blocks of this sequence only
      } else if (op < 62) {  // append decoded tokens
        live& s = seqs[rng() % seqs.size()];
        std::vector<token_id> t(1 + rng() % 6);
        for (auto& x : t)
          x = static_cast<token_id>(200 + rng() % 3);
        const status st = c.append(s.id, t);
        if (st.ok()) {
          refresh(c, s);
        } else {
          ASSERT_EQ(st.code(), errc::out_of_blocks) << st.message();
        }
      } else if (op < 67) {  // fork a fully computed sequence
        live& s = seqs[rng() % seqs.size()];
        const auto v = c.sequence(s.id);
        ASSERT_TRUE(v.ok());
        if (v->computed_tokens == v->tokens.size()) {
          auto f = c.fork(s.id);
          ASSERT_TRUE(f.ok()) << f.status().message();
          live copy;
          copy.id = *f;
          refresh(c, copy);
          seqs.push_back(std::move(copy));
        }
      } else if (op < 70) {  // pin a prefix
        auto p = c.pin(iota_tokens(1, 20));
        if (p.ok()) {
          live s;
          s.id = p->id;
          refresh(c, s);
          seqs.push_back(std::move(s));
        }
      } else if (op < 95) {  // finish
        const std::size_t i = rng() % seqs.size();
        ASSERT_TRUE(c.finish(seqs[i].id).ok());
        seqs.erase(seqs.begin() + static_cast<std::ptrdiff_t>(i));
      } else if (op < 98) {
        c.expire();
      } else {
        c.invalidate_tenant(7);
      }
      const status inv = c.check_invariants();
      ASSERT_TRUE(inv.ok()) << "step " << step << ": " << inv.message();
      expect_unchanged(c, seqs, step);
      const cache_stats st = c.stats();
      ASSERT_EQ(st.cascade_evictions, 0u) << "step " << step;
      ASSERT_GE(st.evictions, prev_evictions);
      prev_evictions = st.evictions;
    }
    for (const live& s : seqs)
      ASSERT_TRUE(c.finish(s.id).ok());
    KVKIT_EXPECT_INVARIANTS(c);
    EXPECT_GT(c.stats().evictions, 100u) << "the workload must put the cache under pressure";
    EXPECT_GT(c.stats().hit_tokens, 0u);
    if constexpr (std::is_same_v<E, ttl_eviction>) {
      clock.advance(milliseconds(41));
      c.expire();
      EXPECT_EQ(c.stats().blocks_cached, 0u) << "everything idle past the ttl expires";
    }
  }
}

// Every block of a sequence that is still running stays cached whatever the policy, even when
// every other block must go: the pool is exactly the held blocks plus what one admission needs.
TYPED_TEST(eviction_in_cache, NeverEvictsAReferencedBlock) {
  using E = TypeParam;
  manual_clock clock;
  auto c = make_cache_with<E>(10, 4, options_for<E>(clock));
  const auto held = iota_tokens(1, 16);  // 4 blocks, all full
  auto h = c.admit(held);
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(c.commit(h->id).ok());
  for (token_id i = 0; i < 30; ++i) {
    run_request(c, iota_tokens(1000 + 100 * i, 9), i % 3);
    clock.advance(milliseconds(10));
    c.expire();
    ASSERT_EQ(c.match(held), 12u) << "request " << i;
    KVKIT_EXPECT_INVARIANTS(c);
  }
  EXPECT_EQ(c.stats().cascade_evictions, 0u);
  ASSERT_TRUE(c.finish(h->id).ok());
  KVKIT_EXPECT_INVARIANTS(c);
}

}  // namespace
}  // namespace kvkit::test
