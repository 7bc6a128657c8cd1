// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Tiers under the pool (kvkit::tiered as a prefix_cache's listener), with real caches over
// host_storage: demotion on eviction, promotion at admission (the same K/V bytes), per-tier cached
// tokens, invalidation reaching the tiers, warming, and a differential test against a naive
// two-level model (pool LRU + host tier LRU + an unbounded remote level).
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/catalogue.hpp>
#include <kvkit/event_listener.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/listeners.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/tiered.hpp>
#include <kvkit/tiers/host_tier.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <span>
#include <string_view>
#include <vector>

#include "tiers/tiered_test_support.hpp"

namespace {

using kvkit::token_id;
using kvkit::test::host_t;
using kvkit::test::make_host;
using kvkit::test::pool_layout;
using kvkit::test::prompt_of;
using kvkit::test::run_request;
using tiers1_t = kvkit::tiered<host_t>;
using tiers2_t = kvkit::tiered<host_t, host_t>;  // level 1 stands for an unbounded remote store
template <class Tiers>
auto make_cache(std::uint32_t blocks, std::uint64_t seed = 7) {
  return kvkit::test::make_cache<Tiers>(blocks, seed);
}

TEST(Tiered, DemoteOnEvictThenPromoteGivesTheSameBytes) {
  auto cache = make_cache<tiers1_t>(8);
  cache.listener().attach<0>(make_host(64));
  const auto a = prompt_of(1000, 17);  // 5 blocks, 4 eligible
  EXPECT_EQ(run_request(cache, a).request.cached_tokens, 0u);
  // Two other prompts of 8 blocks each push every block of `a` out of the pool.
  run_request(cache, prompt_of(2000, 32));
  run_request(cache, prompt_of(3000, 32));
  EXPECT_EQ(cache.match(a), 0u) << "a is still in the pool";
  const auto st = cache.listener().stats();
  EXPECT_GE(st.levels[0].demoted_blocks, 4u);
  // Admitted again: its 4 eligible blocks come back from the host tier, with their bytes
  // (run_request compares them).
  const auto adm = run_request(cache, a);
  EXPECT_EQ(adm.request.cached_tokens, 16u);
  EXPECT_EQ(adm.cached_blocks, 4u);
  EXPECT_EQ(adm.tier_cached_tokens[0], 16u);
  const auto st2 = cache.listener().stats();
  EXPECT_EQ(st2.levels[0].promoted_tokens, 16u);
  EXPECT_EQ(st2.levels[0].promotions, 1u);
  EXPECT_EQ(st2.levels[0].tier.loaded_blocks, 4u);
  // Now in the pool: the next admission is a pool hit, nothing promoted.
  const auto adm2 = run_request(cache, a);
  EXPECT_EQ(adm2.request.cached_tokens, 16u);
  EXPECT_EQ(adm2.tier_cached_tokens[0], 0u);
}

// A tier that records every store() call (reason, blocks) and keeps the blocks in a host tier.
struct store_call {
  kvkit::tier_store_reason reason;
  std::size_t blocks;
  bool operator==(const store_call&) const = default;
};
struct counting_tier {
  host_t inner;
  std::shared_ptr<std::vector<store_call>> calls = std::make_shared<std::vector<store_call>>();
  static constexpr std::string_view name = "counting";
  const kvkit::kv_layout& layout() const { return inner.layout(); }
  std::uint32_t lookup(const kvkit::tier_chain& c) { return inner.lookup(c); }
  std::uint32_t load(const kvkit::tier_chain& c, std::span<const kvkit::kv_block_view> dst) {
    return inner.load(c, dst);
  }
  std::uint32_t store(std::span<const kvkit::tier_block> b, kvkit::tier_store_reason r) {
    calls->push_back({r, b.size()});
    return inner.store(b, r);
  }
  bool accepts(kvkit::tier_store_reason r) const noexcept { return inner.accepts(r); }
  kvkit::tier_invalidation invalidate(kvkit::tier_scope s) { return inner.invalidate(s); }
  std::uint64_t expire() { return inner.expire(); }
  kvkit::tier_stats stats() const { return inner.stats(); }
};
static_assert(kvkit::cache_tier<counting_tier>);

counting_tier make_counting(kvkit::tier_write_policy write) {
  host_t::options o;
  o.capacity_blocks = 256;
  o.write = write;
  return counting_tier{host_t::create(pool_layout(1), std::move(o)).value()};
}

using counted_t = kvkit::tiered<counting_tier, counting_tier>;
using counted_with_events_t =
    kvkit::listeners<counted_t, kvkit::event_listener<kvkit::recording_event_sink>>;

// Level 0 takes evicted blocks, level 1 committed ones (write-through): every operation hands
// each tier its blocks in one store() call, whatever their number.
template <class Listener, class Get>
void check_one_store_per_operation(Get tiers_of) {
  auto cache = make_cache<Listener>(10);
  counting_tier evict = make_counting(kvkit::tier_write_policy::on_eviction);
  counting_tier through = make_counting(kvkit::tier_write_policy::through);
  const auto evict_calls = evict.calls;
  const auto through_calls = through.calls;
  tiers_of(cache).template attach<0>(std::move(evict));
  tiers_of(cache).template attach<1>(std::move(through));
  using R = kvkit::tier_store_reason;
  const auto a = prompt_of(1000, 40);  // 10 blocks: the whole pool
  const auto b = prompt_of(5000, 40);
  run_request(cache, a);
  EXPECT_TRUE(evict_calls->empty());
  EXPECT_EQ(*through_calls, (std::vector<store_call>{{R::commit, 10}})) << "one commit, one call";
  run_request(cache, b);  // evicts the 10 blocks of a, commits 10
  EXPECT_EQ(*evict_calls, (std::vector<store_call>{{R::eviction, 10}}))
      << "one admission evicting 10 blocks, one call";
  EXPECT_EQ(*through_calls, (std::vector<store_call>{{R::commit, 10}, {R::commit, 10}}));
  const auto adm = run_request(cache, a);  // promoted from level 0 (bytes compared), b evicted
  EXPECT_EQ(adm.tier_cached_tokens[0], 36u);
  EXPECT_EQ(*evict_calls, (std::vector<store_call>{{R::eviction, 10}, {R::eviction, 10}}))
      << "the 9 blocks evicted for the promotion and the 1 for the last block: one call";
  EXPECT_EQ(*through_calls,
            (std::vector<store_call>{{R::commit, 10}, {R::commit, 10}, {R::commit, 1}}))
      << "promoted blocks are not written back; the commit registers the last block";
  EXPECT_EQ(tiers_of(cache).stats().levels[0].demoted_blocks, 20u);
  EXPECT_EQ(tiers_of(cache).stats().levels[1].written_blocks, 21u);
}

TEST(Tiered, EachOperationStoresItsBlocksInOneCallPerTier) {
  check_one_store_per_operation<counted_t>([](auto& c) -> counted_t& { return c.listener(); });
}

TEST(Tiered, EachOperationStoresItsBlocksInOneCallPerTierBesideOtherListeners) {
  check_one_store_per_operation<counted_with_events_t>(
      [](auto& c) -> counted_t& { return c.listener().template get<0>(); });
}

TEST(Tiered, AnOperationBeyondTheStagingLimitStoresInPieces) {
  auto cache = make_cache<kvkit::tiered<counting_tier>>(10);
  counting_tier evict = make_counting(kvkit::tier_write_policy::on_eviction);
  const auto calls = evict.calls;
  cache.listener().attach<0>(std::move(evict));
  cache.listener().staging_limit(3 * pool_layout(1).block_bytes_all_layers());
  const auto a = prompt_of(1000, 40);
  run_request(cache, a);
  run_request(cache, prompt_of(5000, 40));  // evicts the 10 blocks of a
  using R = kvkit::tier_store_reason;
  EXPECT_EQ(*calls, (std::vector<store_call>{
                        {R::eviction, 3}, {R::eviction, 3}, {R::eviction, 3}, {R::eviction, 1}}));
  EXPECT_EQ(run_request(cache, a).tier_cached_tokens[0], 36u) << "every piece was stored";
}

// Blocks reported by the cache wait in the staging area until the operation ends; a promotion
// that asks for one of them stores them first, so it is found.
TEST(Tiered, AStagedBlockIsStoredBeforeAPromotionAsksForIt) {
  auto storage = kvkit::host_storage<kvkit::fp16>::create(pool_layout(4)).value();
  const kvkit::kv_layout& l = storage.layout();
  tiers1_t t;
  t.attach<0>(make_host(16));
  t.bind(storage, 7);
  const auto tokens = prompt_of(1000, 4);
  const auto ns = t.namespace_of(0, 0, {});
  const std::uint64_t key = kvkit::xxh3_hasher(7).chain(ns.key, tokens);
  const auto want = kvkit::test::bytes_of(tokens, 0, 4, l.block_bytes_all_layers(), 0);
  const std::size_t seg = kvkit::kv_segment_bytes(l);
  const kvkit::kv_block_view src = kvkit::block_view(storage, 2);
  for (std::size_t i = 0; i < kvkit::kv_segments(l); ++i)
    std::memcpy(src.data + i * src.stride, want.data() + i * seg, seg);
  kvkit::block_event e;
  e.block = 2;
  e.key = key;
  e.parent_key = ns.key;
  e.tokens = tokens;
  t.on_removed(e, kvkit::removal_reason::evicted);
  std::memset(src.data, 0, seg);  // the pool reuses the block: the staged copy is what counts
  EXPECT_EQ(t.stats().levels[0].demoted_blocks, 0u) << "staged until the operation ends";
  EXPECT_EQ(t.stats().levels[0].tier.entries, 0u);

  const std::uint64_t keys[] = {key};
  kvkit::tier_chain chain{ns, ns.key, keys, tokens};
  const kvkit::block_id into[] = {3};
  ASSERT_EQ(t.promote(chain, into), 1u) << "the staged block is stored before the load";
  t.registered(1);
  EXPECT_EQ(t.stats().levels[0].demoted_blocks, 1u);
  const kvkit::kv_block_view dst = kvkit::block_view(storage, 3);
  for (std::size_t i = 0; i < kvkit::kv_segments(l); ++i)
    EXPECT_EQ(0, std::memcmp(dst.data + i * dst.stride, want.data() + i * seg, seg))
        << "segment " << i;
  t.on_operation_end();  // nothing left staged: nothing stored twice
  EXPECT_EQ(t.stats().levels[0].tier.stored_blocks, 1u);
  EXPECT_EQ(t.stats().levels[0].demoted_blocks, 1u);
}

TEST(Tiered, PoolHitThenTierContinuation) {
  auto cache = make_cache<tiers2_t>(10);
  cache.listener().attach<0>(make_host(4));
  cache.listener().attach<1>(make_host(1024));
  // A long prompt, evicted; its first block then brought back by a short prompt sharing it.
  const auto a = prompt_of(1000, 33);  // 9 blocks, 8 eligible
  run_request(cache, a);
  run_request(cache, prompt_of(5000, 40));
  EXPECT_EQ(cache.match(a), 0u);
  run_request(cache, prompt_of(1000, 5));  // block 0 of a: host or remote
  const auto adm = run_request(cache, a);
  EXPECT_EQ(adm.request.cached_tokens, 32u);
  // Pool has block 0; host holds the 4 most recently demoted blocks (a's tail: 4..7 were demoted
  // after... whatever the order, the levels add up to the eight eligible blocks).
  EXPECT_EQ(adm.tier_cached_tokens[0] + adm.tier_cached_tokens[1] + 4u, 32u);
  EXPECT_GT(adm.tier_cached_tokens[1], 0u) << "the host tier holds only 4 blocks";
}

TEST(Tiered, NoTierAttachedChangesNothing) {
  auto plain = make_cache<kvkit::no_listener>(8);
  auto tiered = make_cache<tiers1_t>(8);
  std::mt19937 rng(3);
  for (int i = 0; i < 200; ++i) {
    const auto p = prompt_of(static_cast<token_id>(1000 * (rng() % 6)), 1 + rng() % 30);
    const auto x = run_request(plain, p);
    const auto y = run_request(tiered, p);
    EXPECT_EQ(x.request, y.request);
    EXPECT_EQ(y.tier_cached_tokens[0], 0u);
  }
  EXPECT_EQ(plain.stats().hit_tokens, tiered.stats().hit_tokens);
  EXPECT_EQ(plain.stats().evictions, tiered.stats().evictions);
}

TEST(Tiered, InvalidationReachesTheTiers) {
  auto cache = make_cache<tiers1_t>(8);
  cache.listener().attach<0>(make_host(64));
  kvkit::request_options t1;
  t1.tenant_salt = 11;
  kvkit::request_options t2;
  t2.tenant_salt = 22;
  const auto a = prompt_of(1000, 17);
  run_request(cache, a, t1);
  run_request(cache, a, t2);
  run_request(cache, prompt_of(2000, 32));
  run_request(cache, prompt_of(3000, 32));
  ASSERT_EQ(cache.match(a, t1), 0u);
  ASSERT_EQ(cache.listener().tier<0>()->size(), 16u);  // a under both tenants, 8 blocks + 8
  cache.invalidate_tenant(11);
  EXPECT_EQ(cache.listener().stats().levels[0].invalidations, 1u);
  EXPECT_EQ(cache.listener().tier<0>()->size(), 12u);
  EXPECT_EQ(run_request(cache, a, t1).request.cached_tokens, 0u) << "tenant 11 was invalidated";
  const auto other = run_request(cache, a, t2);
  EXPECT_EQ(other.request.cached_tokens, 16u);
  EXPECT_EQ(other.tier_cached_tokens[0], 16u);
}

TEST(Tiered, SessionAndExtraKeyInvalidationReachTheTiers) {
  auto cache = make_cache<tiers1_t>(8);
  cache.listener().attach<0>(make_host(64));
  const std::uint64_t v1[] = {7};
  kvkit::request_options versioned;
  versioned.extra_keys = v1;
  kvkit::request_options session;
  session.session_id = 99;
  const auto a = prompt_of(1000, 17);
  run_request(cache, a, versioned);
  run_request(cache, a, session);
  run_request(cache, a);  // the shared namespace
  run_request(cache, prompt_of(2000, 32));
  run_request(cache, prompt_of(3000, 32));
  const auto* host = cache.listener().tier<0>();
  const auto held = [&](const kvkit::request_options& o) {
    std::uint32_t n = 0;
    for (const auto k : kvkit::tier_keys(cache, std::span(a).first(16), o))
      n += host->contains(k) ? 1u : 0u;
    return n;
  };
  ASSERT_EQ(held(versioned), 4u);
  ASSERT_EQ(held(session), 4u);
  ASSERT_EQ(held({}), 4u);
  ASSERT_EQ(host->size(), 20u);  // a in three namespaces, and the 2000 prompt's 8 blocks
  cache.invalidate_key(7);
  EXPECT_EQ(held(versioned), 0u);
  EXPECT_EQ(host->size(), 16u);
  cache.invalidate_session(99);
  EXPECT_EQ(held(session), 0u);
  EXPECT_EQ(held({}), 4u);
  EXPECT_EQ(host->size(), 12u);
  EXPECT_EQ(run_request(cache, a, versioned).tier_cached_tokens[0], 0u);
  EXPECT_EQ(run_request(cache, a, session).tier_cached_tokens[0], 0u);
  EXPECT_EQ(run_request(cache, a).tier_cached_tokens[0], 16u) << "other namespaces keep theirs";
  EXPECT_EQ(cache.listener().stats().levels[0].invalidations, 2u);
}

TEST(Tiered, WarmingFillsTheTiersForAnotherCache) {
  // Engine A computes a system prompt and warms the shared level; engine B (another pool, same
  // seed) finds it there on its first request.
  auto a = make_cache<tiers1_t>(16, 99);
  auto b = make_cache<tiers1_t>(16, 99);
  a.listener().attach<0>(make_host(64));
  const auto sys = prompt_of(7000, 24);  // 6 blocks
  kvkit::sequence_id seq;
  run_request(a, sys, {}, true, &seq);
  auto warmed = kvkit::warm_tiers(a, seq);
  ASSERT_TRUE(warmed.ok());
  EXPECT_EQ((*warmed)[0], 6u);
  ASSERT_TRUE(a.finish(seq).ok());
  // Move A's host tier under B (a shared store in miniature).
  b.listener().attach<0>(std::move(*a.listener().tier<0>()));
  a.listener().detach<0>();
  auto prompt = sys;
  prompt.insert(prompt.end(), {1, 2, 3, 4, 5});
  const auto adm = run_request(b, prompt);
  EXPECT_EQ(adm.request.cached_tokens, 24u);
  EXPECT_EQ(adm.tier_cached_tokens[0], 24u);
  EXPECT_FALSE(kvkit::warm_tiers(a, seq).ok()) << "a finished sequence is refused";
}

TEST(Tiered, ATierOfAnotherShapeIsNeverUsed) {
  auto cache = make_cache<tiers1_t>(8);
  kvkit::kv_layout other = pool_layout(1);
  other.head_dim = 16;
  host_t::options o;
  o.capacity_blocks = 16;
  cache.listener().attach<0>(host_t::create(other, std::move(o)).value());
  run_request(cache, prompt_of(1, 9));
  EXPECT_FALSE(cache.listener().attached<0>());
}

TEST(Tiered, PrometheusTextPerTier) {
  auto cache = make_cache<tiers2_t>(8);
  cache.listener().attach<0>(make_host(64));
  cache.listener().attach<1>(make_host(64));
  const auto a = prompt_of(1000, 17);
  run_request(cache, a);
  run_request(cache, prompt_of(2000, 32));
  run_request(cache, prompt_of(3000, 32));
  run_request(cache, a);  // 16 tokens promoted from the first level
  std::string text;
  ASSERT_TRUE(kvkit::write_prometheus(text, cache.listener().stats()).ok());
  const auto has = [&](const std::string& line) {
    return text.find(line + "\n") != std::string::npos;
  };
  EXPECT_TRUE(has("kvkit_tier_promoted_tokens_total{tier=\"host_0\"} 16")) << text;
  EXPECT_TRUE(has("kvkit_tier_promoted_tokens_total{tier=\"host_1\"} 0")) << text;
  EXPECT_TRUE(has("kvkit_tier_promotions_total{tier=\"host_0\"} 1")) << text;
  EXPECT_TRUE(has("kvkit_tier_bytes_total{tier=\"host_0\",direction=\"out\"} " +
                  std::to_string(4 * pool_layout(1).block_bytes_all_layers())))
      << text;
  EXPECT_TRUE(has("kvkit_tier_errors_total{tier=\"host_0\",kind=\"timeout\"} 0")) << text;
  EXPECT_TRUE(has("# TYPE kvkit_tier_promotion_latency_seconds gauge")) << text;
  EXPECT_TRUE(has("kvkit_tier_capacity_blocks{tier=\"host_1\"} 64")) << text;
  const auto st = cache.listener().stats();
  EXPECT_TRUE(has("kvkit_tier_demoted_blocks_total{tier=\"host_0\"} " +
                  std::to_string(st.levels[0].demoted_blocks)))
      << text;
  // One family header each, however many tiers.
  std::size_t n = 0;
  for (std::size_t at = 0;
       (at = text.find("# TYPE kvkit_tier_hits_total ", at)) != std::string::npos; ++at)
    ++n;
  EXPECT_EQ(n, 1u);
  kvkit::prometheus_options bad;
  bad.prefix = "9bad";
  std::string ignored;
  EXPECT_FALSE(kvkit::write_prometheus(ignored, st, bad).ok());
}

// ---- differential test against a naive two-level model -----------------------------------------

// Pool LRU (sequential requests: the victim is the least recently released cached block), a host
// level with LRU of bounded capacity, and an unbounded remote level; each written as plainly as
// possible over whole prefixes.
class naive_tiers {
 public:
  using key = std::pair<std::uint64_t, std::vector<token_id>>;  // tenant, prefix tokens
  struct hits {
    std::uint32_t pool = 0, host = 0, remote = 0;
  };

  naive_tiers(std::uint32_t pool_blocks, std::uint32_t host_blocks, std::uint32_t bs)
      : free_(pool_blocks), host_cap_(host_blocks), bs_(bs) {}

  hits request(std::uint64_t tenant, const std::vector<token_id>& p) {
    const std::size_t eligible = (p.size() - 1) / bs_;
    const std::size_t needed = (p.size() + bs_ - 1) / bs_;
    const std::size_t full = p.size() / bs_;
    auto key_of = [&](std::size_t k) {
      return key{tenant, std::vector<token_id>(p.begin(), p.begin() + (k + 1) * bs_)};
    };
    hits h;
    std::size_t k = 0;
    while (k < eligible && pool_.count(key_of(k)))
      ++k;
    h.pool = static_cast<std::uint32_t>(k);
    std::set<key> referenced;
    for (std::size_t j = 0; j < k; ++j) {
      referenced.insert(key_of(j));
      lru_.remove(key_of(j));
    }
    // Room for the whole rest first (every eviction of the admission is demoted before the tiers
    // are asked), blocks for the eligible rest, then the tiers in order.
    while (free_ < needed - k && !lru_.empty())
      evict();
    const std::size_t want = eligible - k;
    for (std::size_t j = 0; j < want; ++j)
      allocate();
    std::size_t n0 = 0;
    while (k + n0 < eligible && host_has(key_of(k + n0)))
      ++n0;
    for (std::size_t j = n0; j-- > 0;)  // a hit refreshes tail first
      host_touch(key_of(k + j));
    std::size_t n1 = 0;
    while (k + n0 + n1 < eligible && remote_.count(key_of(k + n0 + n1)))
      ++n1;
    h.host = static_cast<std::uint32_t>(n0);
    h.remote = static_cast<std::uint32_t>(n1);
    const std::size_t promoted = n0 + n1;
    for (std::size_t j = k; j < k + promoted; ++j) {
      pool_.insert(key_of(j));
      referenced.insert(key_of(j));
    }
    free_ += want - promoted;
    for (std::size_t j = k + promoted; j < needed; ++j)
      allocate();
    // Commit every full block; then release tail first.
    std::vector<bool> cached(needed, false);
    for (std::size_t j = 0; j < full; ++j) {
      if (j >= k + promoted && pool_.count(key_of(j))) {  // deduplicated: ours is freed
        lru_.remove(key_of(j));
        ++free_;
      }
      pool_.insert(key_of(j));
      cached[j] = true;
    }
    for (std::size_t j = needed; j-- > 0;) {
      if (cached[j]) {
        lru_.remove(key_of(j));
        lru_.push_back(key_of(j));
      } else {
        ++free_;
      }
    }
    return h;
  }

  void invalidate_tenant(std::uint64_t t) {
    std::erase_if(pool_, [&](const key& x) {
      if (x.first != t)
        return false;
      lru_.remove(x);
      ++free_;
      return true;
    });
    std::erase_if(host_, [&](const key& x) { return x.first == t; });
    std::erase_if(remote_, [&](const key& x) { return x.first == t; });
  }

 private:
  void allocate() {
    if (free_ == 0)
      evict();
    --free_;
  }
  void evict() {
    // Sequential requests release children before parents, so the LRU victim is a leaf.
    const key victim = lru_.front();
    lru_.pop_front();
    pool_.erase(victim);
    demote(victim);
    ++free_;
  }
  void demote(const key& x) {
    if (host_has(x)) {
      host_touch(x);
    } else {
      if (host_.size() == host_cap_)
        host_.erase(host_.begin());
      host_.push_back(x);
    }
    remote_.insert(x);
  }
  bool host_has(const key& x) const {
    return std::find(host_.begin(), host_.end(), x) != host_.end();
  }
  void host_touch(const key& x) {
    host_.erase(std::find(host_.begin(), host_.end(), x));
    host_.push_back(x);
  }

  std::set<key> pool_;
  std::list<key> lru_;  // evictable pool blocks, least recently released first
  std::size_t free_;
  std::vector<key> host_;  // least recently used first
  std::size_t host_cap_;
  std::set<key> remote_;
  std::size_t bs_;
};

TEST(Tiered, AgreesWithANaiveTwoLevelModel) {
  for (std::uint32_t seed = 1; seed <= 6; ++seed) {
    const std::uint32_t pool_blocks = 12 + 4 * seed;
    const std::uint32_t host_blocks = 6 + 3 * seed;
    auto cache = make_cache<tiers2_t>(pool_blocks, seed);
    cache.listener().attach<0>(make_host(host_blocks));
    cache.listener().attach<1>(make_host(1 << 14));
    naive_tiers model(pool_blocks, host_blocks, 4);
    std::mt19937 rng(seed);
    // Prompts grow from a few shared trunks, so prefixes are shared, evicted and come back.
    std::vector<std::vector<token_id>> trunks;
    for (int t = 0; t < 8; ++t) {
      std::vector<token_id> tr(4 * (1 + rng() % 6));
      for (auto& x : tr)
        x = static_cast<token_id>(rng() % 50);
      trunks.push_back(tr);
    }
    std::uint64_t host_tokens = 0, remote_tokens = 0;
    for (int i = 0; i < 400; ++i) {
      auto p = trunks[rng() % trunks.size()];
      const std::size_t extra = rng() % 9;
      for (std::size_t j = 0; j < extra; ++j)
        p.push_back(static_cast<token_id>(rng() % 3));
      kvkit::request_options o;
      o.tenant_salt = rng() % 4 == 0 ? 5 : 0;
      if (i % 97 == 96) {
        cache.invalidate_tenant(5);
        model.invalidate_tenant(5);
      }
      const auto want = model.request(o.tenant_salt, p);
      const auto got = run_request(cache, p, o);
      ASSERT_EQ(got.request.cached_tokens, 4 * (want.pool + want.host + want.remote))
          << "seed " << seed << " request " << i;
      ASSERT_EQ(got.tier_cached_tokens[0], 4 * want.host) << "seed " << seed << " request " << i;
      ASSERT_EQ(got.tier_cached_tokens[1], 4 * want.remote) << "seed " << seed << " request " << i;
      host_tokens += got.tier_cached_tokens[0];
      remote_tokens += got.tier_cached_tokens[1];
    }
    EXPECT_GT(host_tokens, 0u) << "seed " << seed << ": the workload never promoted from host";
    EXPECT_GT(remote_tokens, 0u) << "seed " << seed << ": nor from the remote level";
    const auto st = cache.listener().stats();
    EXPECT_EQ(st.levels[0].promoted_tokens, host_tokens);
    EXPECT_EQ(st.levels[1].promoted_tokens, remote_tokens);
  }
}

// ---- every matcher and eviction policy under tiers: never wrong K/V ----------------------------

template <class Matcher, class Eviction>
struct combo {
  using matcher = Matcher;
  using eviction = Eviction;
};

template <class C>
class TieredCombinations : public ::testing::Test {};

using combos = ::testing::Types<combo<kvkit::radix_matcher, kvkit::lru_eviction>,
                                combo<kvkit::hash_matcher, kvkit::sieve_eviction>,
                                combo<kvkit::session_matcher, kvkit::lfu_eviction>,
                                combo<kvkit::radix_matcher, kvkit::fifo_eviction>,
                                combo<kvkit::hash_matcher, kvkit::priority_eviction>,
                                combo<kvkit::radix_matcher, kvkit::ttl_eviction>>;
TYPED_TEST_SUITE(TieredCombinations, combos);

// Overlapping requests (up to three live), tenants, sessions, invalidations; every admission's
// cached blocks are compared byte for byte with what their prefix computed (run_request), and the
// cache's invariants are checked after each.
TYPED_TEST(TieredCombinations, RandomWorkloadNeverReturnsWrongBytes) {
  using cache_type =
      kvkit::prefix_cache<kvkit::free_list_allocator, typename TypeParam::matcher,
                          typename TypeParam::eviction, kvkit::host_storage<kvkit::fp16>, tiers2_t>;
  kvkit::cache_config cc;
  cc.seed = 17;
  auto cache =
      cache_type::create(cc, kvkit::host_storage<kvkit::fp16>::create(pool_layout(40)).value())
          .value();
  cache.listener().template attach<0>(make_host(10));
  cache.listener().template attach<1>(make_host(4096));
  std::mt19937 rng(23);
  std::vector<std::vector<token_id>> trunks;
  for (int t = 0; t < 6; ++t) {
    std::vector<token_id> tr(2 + rng() % 22);
    for (auto& x : tr)
      x = static_cast<token_id>(rng() % 20);
    trunks.push_back(tr);
  }
  std::vector<kvkit::sequence_id> live;
  std::uint64_t promoted = 0;
  for (int i = 0; i < 300; ++i) {
    auto p = trunks[rng() % trunks.size()];
    for (std::size_t j = rng() % 10; j > 0; --j)
      p.push_back(static_cast<token_id>(rng() % 4));
    kvkit::request_options o;
    o.tenant_salt = rng() % 5 == 0 ? 3 : 0;
    o.session_id = rng() % 4 == 0 ? 1 + rng() % 2 : 0;
    kvkit::sequence_id id;
    const auto a = run_request(cache, p, o, true, &id);
    promoted += a.tier_cached_tokens[0] + a.tier_cached_tokens[1];
    live.push_back(id);
    if (live.size() > 2 || rng() % 2 == 0) {
      const std::size_t k = rng() % live.size();
      ASSERT_TRUE(cache.finish(live[k]).ok());
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    }
    if (i % 61 == 60)
      cache.invalidate_tenant(3);
    if (i % 89 == 88)
      cache.invalidate_session(1);
    ASSERT_TRUE(cache.check_invariants().ok()) << cache.check_invariants().message();
    if (::testing::Test::HasFailure())
      return;
  }
  EXPECT_GT(promoted, 0u) << "the workload never promoted";
}

}  // namespace
