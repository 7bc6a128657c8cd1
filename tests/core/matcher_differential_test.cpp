// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The hash, radix and session matchers driven through the same request streams. Where no prompt
// can diverge inside a cached block, they must agree exactly (every admission, block table and
// counter); on unconstrained streams the tree matchers may add partial-block reuse, so they never
// cache less than the hash matcher, and every hit holds the right K/V.

#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/matcher/radix.hpp>
#include <kvkit/matcher/session.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/kv_model.hpp"

namespace kvkit::test {
namespace {

constexpr std::uint32_t bs = 4;

template <class M>
using cache_over = prefix_cache<free_list_allocator, M, lru_eviction, host_storage<float>>;
using hash_cache = cache_over<hash_matcher>;
using radix_cache = cache_over<radix_matcher>;
using session_cache = cache_over<session_matcher>;

// The same stream of requests against the three caches.
struct trio {
  explicit trio(std::uint32_t blocks)
      : hash(make_cache<hash_cache>(blocks, bs)),
        radix(make_cache<radix_cache>(blocks, bs)),
        session(make_cache<session_cache>(blocks, bs)) {}
  hash_cache hash;
  radix_cache radix;
  session_cache session;
};

// Stats minus what differs by design (the matchers' bookkeeping bytes).
cache_stats comparable(cache_stats s) {
  s.metadata_bytes = 0;
  return s;
}

struct live_seq {
  sequence_id h, r, s;
  std::uint64_t ns;
  std::size_t length;
};

template <class Cache>
void check_admission(Cache& c, const admission& a, const std::vector<token_id>& prompt,
                     std::uint64_t ns, int step) {
  ASSERT_EQ(kv_errors(c, a.id, 0, a.request.cached_tokens, ns), 0u)
      << "step " << step << ": a hit holds wrong K/V";
  write_kv(c, a.id, a.request.cached_tokens, prompt.size(), ns);
}

template <class Cache>
void expect_invariants(const Cache& c, int step) {
  const status s = c.check_invariants();
  ASSERT_TRUE(s.ok()) << "step " << step << ": " << s.message();
}

// Prompts made of whole shared blocks (each with a first token no other block has) followed by a
// tail whose first token is new, or an exact repeat of an earlier prompt; lengths are never a
// multiple of the block size. No prompt can then share part of a cached block it does not share
// whole, so partial-block reuse never applies and the three matchers must behave identically,
// evictions included.
TEST(MatcherDifferential, BlockAlignedWorkloadsAgreeExactly) {
  trio t(40);
  std::mt19937 rng(12345);
  const auto shared_block = [](std::uint32_t j) {
    return iota_tokens(static_cast<token_id>(16 * j + 1), bs);
  };
  std::vector<std::pair<std::vector<token_id>, std::uint64_t>> history;
  std::vector<live_seq> live;
  token_id fresh = 1'000'000;
  std::uint64_t hit_tokens = 0;
  for (int step = 0; step < 1500; ++step) {
    const int op = static_cast<int>(rng() % 100);
    if (op < 45 || live.empty()) {
      std::vector<token_id> prompt;
      std::uint64_t ns = rng() % 2;
      if (!history.empty() && rng() % 4 == 0) {
        std::tie(prompt, ns) = history[rng() % history.size()];
      } else {
        const std::uint32_t depth = rng() % 5;
        for (std::uint32_t k = 0; k < depth; ++k) {
          const auto blk = shared_block(3 * k + rng() % 3);  // a tree of branching factor 3
          prompt.insert(prompt.end(), blk.begin(), blk.end());
        }
        std::size_t tail = 1 + rng() % 11;
        if (tail % bs == 0)
          ++tail;
        prompt.push_back(fresh++);
        for (std::size_t k = 1; k < tail; ++k)
          prompt.push_back(static_cast<token_id>(rng() % 5));
        history.emplace_back(prompt, ns);
      }
      request_options o;
      o.tenant_salt = ns;
      auto h = t.hash.admit(prompt, o);
      auto r = t.radix.admit(prompt, o);
      auto s = t.session.admit(prompt, o);
      ASSERT_EQ(h.code(), r.code()) << "step " << step;
      ASSERT_EQ(h.code(), s.code()) << "step " << step;
      if (!h.ok()) {
        ASSERT_EQ(h.code(), errc::out_of_blocks);
        const live_seq victim = live.front();
        live.erase(live.begin());
        ASSERT_TRUE(t.hash.finish(victim.h).ok());
        ASSERT_TRUE(t.radix.finish(victim.r).ok());
        ASSERT_TRUE(t.session.finish(victim.s).ok());
      } else {
        ASSERT_EQ(h->request, r->request) << "step " << step;
        ASSERT_EQ(h->request, s->request) << "step " << step;
        ASSERT_EQ(h->cached_blocks, r->cached_blocks);
        ASSERT_EQ(h->cached_blocks, s->cached_blocks);
        ASSERT_EQ(h->new_blocks, r->new_blocks);
        ASSERT_EQ(h->new_blocks, s->new_blocks);
        hit_tokens += h->request.cached_tokens;
        check_admission(t.hash, *h, prompt, ns, step);
        check_admission(t.radix, *r, prompt, ns, step);
        check_admission(t.session, *s, prompt, ns, step);
        live.push_back({h->id, r->id, s->id, ns, prompt.size()});
      }
    } else if (op < 75) {
      const live_seq& q = live[rng() % live.size()];
      const std::uint32_t from = t.hash.sequence(q.h)->computed_tokens;
      const auto n = static_cast<std::uint32_t>(from + rng() % (q.length - from + 1));
      auto h = t.hash.commit(q.h, n);
      auto r = t.radix.commit(q.r, n);
      auto s = t.session.commit(q.s, n);
      ASSERT_TRUE(h.ok() && r.ok() && s.ok()) << "step " << step << ": " << h.status().message();
      ASSERT_EQ(h->registered_blocks, r->registered_blocks) << "step " << step;
      ASSERT_EQ(h->registered_blocks, s->registered_blocks) << "step " << step;
      ASSERT_EQ(h->deduplicated_blocks, r->deduplicated_blocks) << "step " << step;
      ASSERT_EQ(h->deduplicated_blocks, s->deduplicated_blocks) << "step " << step;
    } else {
      const std::size_t i = rng() % live.size();
      const live_seq q = live[i];
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      ASSERT_EQ(kv_errors(t.hash, q.h, 0, q.length, q.ns), 0u);
      ASSERT_EQ(kv_errors(t.radix, q.r, 0, q.length, q.ns), 0u);
      ASSERT_EQ(kv_errors(t.session, q.s, 0, q.length, q.ns), 0u);
      ASSERT_TRUE(t.hash.finish(q.h).ok());
      ASSERT_TRUE(t.radix.finish(q.r).ok());
      ASSERT_TRUE(t.session.finish(q.s).ok());
    }
    const cache_stats hs = comparable(t.hash.stats());
    ASSERT_TRUE(hs == comparable(t.radix.stats())) << "step " << step;
    ASSERT_TRUE(hs == comparable(t.session.stats())) << "step " << step;
    for (const live_seq& q : live) {
      const auto hv = t.hash.sequence(q.h), rv = t.radix.sequence(q.r),
                 sv = t.session.sequence(q.s);
      ASSERT_TRUE(std::ranges::equal(hv->blocks, rv->blocks)) << "step " << step;
      ASSERT_TRUE(std::ranges::equal(hv->blocks, sv->blocks)) << "step " << step;
    }
    expect_invariants(t.hash, step);
    expect_invariants(t.radix, step);
    expect_invariants(t.session, step);
  }
  const cache_stats s = t.hash.stats();
  EXPECT_GT(s.evictions, 50u);
  EXPECT_GT(s.full_hits, 20u);
  EXPECT_GT(s.partial_hits, 20u);
  EXPECT_GT(s.deduplicated_blocks + s.committed_blocks, 100u);
  EXPECT_GT(hit_tokens, 500u);
  EXPECT_EQ(s.partial_block_hits, 0u);
  EXPECT_EQ(t.radix.stats().partial_block_hits, 0u);
}

// Random prompts over a tiny alphabet (they diverge anywhere, also inside blocks), appends and
// partial commits, with a pool large enough that nothing is evicted. Whole-block hits are the
// same for the three matchers; the tree matchers add at most part of one block.
TEST(MatcherDifferential, UnconstrainedWorkloadsTreeMatchersNeverCacheLess) {
  trio t(1024);
  std::mt19937 rng(777);
  std::vector<std::vector<token_id>> bases;
  for (int i = 0; i < 4; ++i) {
    std::vector<token_id> b;
    for (int k = 0; k < 40; ++k)
      b.push_back(static_cast<token_id>(rng() % 6));
    bases.push_back(b);
  }
  std::vector<live_seq> live;
  std::uint64_t extra_radix = 0, extra_session = 0;
  for (int step = 0; step < 600; ++step) {
    const int op = static_cast<int>(rng() % 100);
    if (op < 40 || live.empty()) {
      // A base prompt, cut at a random length, with a few random mutations.
      std::vector<token_id> prompt = bases[rng() % bases.size()];
      prompt.resize(1 + rng() % prompt.size());
      const std::size_t mutations = rng() % 3;
      for (std::size_t k = 0; k < mutations; ++k) {
        prompt[rng() % prompt.size()] = static_cast<token_id>(rng() % 6);
      }
      request_options o;
      o.tenant_salt = rng() % 2;
      auto h = t.hash.admit(prompt, o);
      auto r = t.radix.admit(prompt, o);
      auto s = t.session.admit(prompt, o);
      ASSERT_TRUE(h.ok() && r.ok() && s.ok()) << "step " << step;
      ASSERT_EQ(h->cached_blocks, r->cached_blocks) << "step " << step;
      ASSERT_EQ(h->cached_blocks, s->cached_blocks) << "step " << step;
      ASSERT_GE(r->request.cached_tokens, h->request.cached_tokens) << "step " << step;
      ASSERT_GE(s->request.cached_tokens, h->request.cached_tokens) << "step " << step;
      ASSERT_LT(r->request.cached_tokens, h->request.cached_tokens + bs) << "step " << step;
      ASSERT_LT(s->request.cached_tokens, h->request.cached_tokens + bs) << "step " << step;
      ASSERT_LT(r->request.cached_tokens, prompt.size());
      ASSERT_LT(s->request.cached_tokens, prompt.size());
      extra_radix += r->request.cached_tokens - h->request.cached_tokens;
      extra_session += s->request.cached_tokens - h->request.cached_tokens;
      check_admission(t.hash, *h, prompt, o.tenant_salt, step);
      check_admission(t.radix, *r, prompt, o.tenant_salt, step);
      check_admission(t.session, *s, prompt, o.tenant_salt, step);
      live.push_back({h->id, r->id, s->id, o.tenant_salt, prompt.size()});
    } else if (op < 65) {
      const live_seq& q = live[rng() % live.size()];
      // The same count for all three: at least what each has computed.
      const std::uint32_t from =
          std::max({t.hash.sequence(q.h)->computed_tokens, t.radix.sequence(q.r)->computed_tokens,
                    t.session.sequence(q.s)->computed_tokens});
      const auto n = static_cast<std::uint32_t>(from + rng() % (q.length - from + 1));
      ASSERT_TRUE(t.hash.commit(q.h, n).ok());
      ASSERT_TRUE(t.radix.commit(q.r, n).ok());
      ASSERT_TRUE(t.session.commit(q.s, n).ok());
    } else if (op < 80) {
      live_seq& q = live[rng() % live.size()];
      std::vector<token_id> more(1 + rng() % 6);
      for (auto& x : more)
        x = static_cast<token_id>(rng() % 6);
      ASSERT_TRUE(t.hash.append(q.h, more).ok());
      ASSERT_TRUE(t.radix.append(q.r, more).ok());
      ASSERT_TRUE(t.session.append(q.s, more).ok());
      write_kv(t.hash, q.h, q.length, q.length + more.size(), q.ns);
      write_kv(t.radix, q.r, q.length, q.length + more.size(), q.ns);
      write_kv(t.session, q.s, q.length, q.length + more.size(), q.ns);
      q.length += more.size();
    } else {
      const std::size_t i = rng() % live.size();
      const live_seq q = live[i];
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      ASSERT_EQ(kv_errors(t.hash, q.h, 0, q.length, q.ns), 0u) << "step " << step;
      ASSERT_EQ(kv_errors(t.radix, q.r, 0, q.length, q.ns), 0u) << "step " << step;
      ASSERT_EQ(kv_errors(t.session, q.s, 0, q.length, q.ns), 0u) << "step " << step;
      ASSERT_TRUE(t.hash.finish(q.h).ok());
      ASSERT_TRUE(t.radix.finish(q.r).ok());
      ASSERT_TRUE(t.session.finish(q.s).ok());
    }
    // The same content is registered whatever the matcher.
    ASSERT_EQ(t.hash.stats().blocks_cached, t.radix.stats().blocks_cached) << "step " << step;
    ASSERT_EQ(t.hash.stats().blocks_cached, t.session.stats().blocks_cached) << "step " << step;
    if (step % 10 == 0) {
      expect_invariants(t.hash, step);
      expect_invariants(t.radix, step);
      expect_invariants(t.session, step);
    }
  }
  EXPECT_EQ(t.hash.stats().evictions, 0u);
  EXPECT_EQ(t.hash.stats().partial_block_hits, 0u);
  EXPECT_GT(t.radix.stats().partial_block_hits, 20u);
  EXPECT_GT(t.session.stats().partial_block_hits, 20u);
  EXPECT_GT(extra_radix, 40u);
  EXPECT_GT(extra_session, 40u);
  EXPECT_GT(t.hash.stats().hit_tokens, 500u);
}

}  // namespace
}  // namespace kvkit::test
