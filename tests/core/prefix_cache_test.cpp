// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// prefix_cache: request life cycle, reference counts, eviction, deduplication, tenant isolation,
// collision safety, metrics, and every error path (which must leave the cache unchanged).

#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/colliding_hasher.hpp"
#include "support/text.hpp"

namespace kvkit::test {
namespace {

constexpr std::uint32_t bs = 4;  // block size of most tests

template <class Cache>
class PrefixCacheTest : public ::testing::Test {
 public:
  static Cache make(std::uint32_t num_blocks, std::uint32_t block_size = bs) {
    return make_cache<Cache>(num_blocks, block_size);
  }
  // Admits a prompt that must fit; returns a default admission (invalid id) after a failure.
  static admission admit_ok(Cache& c, const std::vector<token_id>& prompt,
                            const request_options& o = {}) {
    auto r = c.admit(prompt, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    KVKIT_EXPECT_INVARIANTS(c);
    return r.ok() ? *r : admission{};
  }
  static commit_info commit_ok(Cache& c, sequence_id id) {
    auto r = c.commit(id);
    EXPECT_TRUE(r.ok()) << r.status().message();
    KVKIT_EXPECT_INVARIANTS(c);
    return r.ok() ? *r : commit_info{};
  }
  static void finish_ok(Cache& c, sequence_id id) {
    const status s = c.finish(id);
    EXPECT_TRUE(s.ok()) << s.message();
    KVKIT_EXPECT_INVARIANTS(c);
  }
  // admit + commit + finish: leaves the prompt's full blocks cached and evictable.
  static void cache_prompt(Cache& c, const std::vector<token_id>& prompt,
                           const request_options& o = {}) {
    const admission a = admit_ok(c, prompt, o);
    commit_ok(c, a.id);
    finish_ok(c, a.id);
  }
  static std::vector<block_id> blocks_of(const Cache& c, sequence_id id) {
    const auto v = c.sequence(id);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() ? std::vector<block_id>(v->blocks.begin(), v->blocks.end())
                  : std::vector<block_id>{};
  }
};

using cache_types = ::testing::Types<
    prefix_cache<free_list_allocator, hash_matcher, lru_eviction, no_storage>,
    prefix_cache<free_list_allocator, hash_matcher, lru_eviction, host_storage<float>>>;
TYPED_TEST_SUITE(PrefixCacheTest, cache_types);

// ---- life cycle
// ----------------------------------------------------------------------------------

TYPED_TEST(PrefixCacheTest, FirstAdmitMissesThenCommitMakesFullBlocksHit) {
  TypeParam c = this->make(16);
  EXPECT_EQ(c.block_size(), bs);
  EXPECT_EQ(c.num_blocks(), 16u);
  EXPECT_EQ(c.seed(), 42u);
  KVKIT_EXPECT_INVARIANTS(c);
  const auto p = iota_tokens(100, 12);  // exactly 3 blocks
  EXPECT_EQ(c.match(p), 0u);

  const admission a = this->admit_ok(c, p);
  EXPECT_EQ(a.request, (request_stats{12, 0}));
  EXPECT_EQ(a.cached_blocks, 0u);
  EXPECT_EQ(a.new_blocks, 3u);
  {
    const auto v = c.sequence(a.id);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(std::vector<token_id>(v->tokens.begin(), v->tokens.end()), p);
    EXPECT_EQ(v->blocks.size(), 3u);
    EXPECT_EQ(v->computed_tokens, 0u);
    EXPECT_EQ(v->request, (request_stats{12, 0}));
  }
  cache_stats s = c.stats();
  EXPECT_EQ(s.queries, 1u);
  EXPECT_EQ(s.query_tokens, 12u);
  EXPECT_EQ(s.hit_tokens, 0u);
  EXPECT_EQ(s.query_blocks, 2u);  // the last block holds the last token: not eligible
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.short_queries, 0u);
  EXPECT_EQ(s.blocks_free, 13u);
  EXPECT_EQ(s.blocks_referenced, 3u);
  EXPECT_EQ(s.blocks_cached, 0u);
  EXPECT_EQ(s.active_sequences, 1u);
  EXPECT_EQ(c.match(p), 0u);  // nothing is reusable before commit

  const commit_info ci = this->commit_ok(c, a.id);
  EXPECT_EQ(ci.registered_blocks, 3u);
  EXPECT_EQ(ci.deduplicated_blocks, 0u);
  EXPECT_EQ(c.sequence(a.id)->computed_tokens, 12u);
  s = c.stats();
  EXPECT_EQ(s.committed_blocks, 3u);
  EXPECT_EQ(s.blocks_cached, 3u);
  EXPECT_EQ(s.blocks_evictable, 0u);  // still referenced

  // A prompt of exactly 3 blocks gets 2 blocks: one token must be left to compute.
  EXPECT_EQ(c.match(p), 8u);
  EXPECT_EQ(c.match(concat(p, {7})), 12u);
  const admission b = this->admit_ok(c, p);
  EXPECT_EQ(b.request, (request_stats{12, 8}));
  EXPECT_EQ(b.cached_blocks, 2u);
  EXPECT_EQ(b.new_blocks, 1u);
  const auto ab = this->blocks_of(c, a.id), bb = this->blocks_of(c, b.id);
  ASSERT_EQ(bb.size(), 3u);
  EXPECT_EQ(bb[0], ab[0]);
  EXPECT_EQ(bb[1], ab[1]);
  EXPECT_NE(bb[2], ab[2]);
  EXPECT_EQ(c.sequence(b.id)->computed_tokens, 8u);
  EXPECT_EQ(c.sequence(b.id)->request, (request_stats{12, 8}));
  s = c.stats();
  EXPECT_EQ(s.queries, 2u);
  EXPECT_EQ(s.hit_tokens, 8u);
  EXPECT_EQ(s.query_blocks, 4u);
  EXPECT_EQ(s.hit_blocks, 2u);
  EXPECT_EQ(s.full_hits, 1u);
  EXPECT_EQ(s.blocks_free, 12u);
  EXPECT_EQ(s.blocks_referenced, 4u);

  // One more token makes the third block eligible.
  const admission d = this->admit_ok(c, concat(p, {7}));
  EXPECT_EQ(d.request, (request_stats{13, 12}));
  EXPECT_EQ(d.cached_blocks, 3u);
  EXPECT_EQ(d.new_blocks, 1u);
  EXPECT_EQ(c.stats().full_hits, 2u);
}

TYPED_TEST(PrefixCacheTest, PromptsOfAtMostOneBlockNeverHit) {
  TypeParam c = this->make(16);
  const auto p4 = iota_tokens(1, bs);
  this->cache_prompt(c, p4);  // registers its one full block
  EXPECT_EQ(c.stats().committed_blocks, 1u);
  EXPECT_EQ(c.match(p4), 0u);
  const admission again = this->admit_ok(c, p4);
  EXPECT_EQ(again.request, (request_stats{4, 0}));
  EXPECT_EQ(again.cached_blocks, 0u);
  this->finish_ok(c, again.id);
  // The block is there: a longer prompt hits it.
  const admission longer = this->admit_ok(c, concat(p4, {9}));
  EXPECT_EQ(longer.request, (request_stats{5, 4}));
  // One-token prompts.
  const admission one = this->admit_ok(c, {77});
  EXPECT_EQ(this->commit_ok(c, one.id).registered_blocks, 0u);
  EXPECT_EQ(this->admit_ok(c, {77}).request, (request_stats{1, 0}));

  const cache_stats s = c.stats();
  EXPECT_EQ(s.queries, 5u);
  EXPECT_EQ(s.short_queries, 4u);
  EXPECT_EQ(s.misses, 4u);
  EXPECT_EQ(s.full_hits, 1u);
  EXPECT_EQ(s.query_tokens, 4u + 4 + 5 + 1 + 1);
  EXPECT_EQ(s.hit_tokens, 4u);
  EXPECT_EQ(s.query_blocks, 1u);
  EXPECT_EQ(s.hit_blocks, 1u);
}

TYPED_TEST(PrefixCacheTest, GeneratedTokensBecomeCacheable) {
  TypeParam c = this->make(16);
  const auto prompt = iota_tokens(1, 6);
  const auto generated = iota_tokens(50, 7);
  const admission a = this->admit_ok(c, prompt);
  EXPECT_EQ(this->commit_ok(c, a.id).registered_blocks, 1u);  // 6 tokens: one full block
  ASSERT_TRUE(c.append(a.id, generated).ok());
  KVKIT_EXPECT_INVARIANTS(c);
  {
    const auto v = c.sequence(a.id);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(std::vector<token_id>(v->tokens.begin(), v->tokens.end()), concat(prompt, generated));
    EXPECT_EQ(v->blocks.size(), 4u);  // 13 tokens
    EXPECT_EQ(v->computed_tokens, 6u);
    EXPECT_EQ(v->request, (request_stats{6, 0}));  // admission figures do not change
  }
  EXPECT_EQ(c.stats().appended_tokens, 7u);
  auto part = c.commit(a.id, 9);  // K/V of 3 more tokens written: block 1 becomes full
  ASSERT_TRUE(part.ok()) << part.status().message();
  EXPECT_EQ(part->registered_blocks, 1u);
  EXPECT_EQ(c.sequence(a.id)->computed_tokens, 9u);
  EXPECT_EQ(this->commit_ok(c, a.id).registered_blocks, 1u);  // block 2; block 3 is partial
  EXPECT_EQ(c.stats().committed_blocks, 3u);
  this->finish_ok(c, a.id);

  const auto next_turn = concat(concat(prompt, generated), {77});  // 14 tokens
  EXPECT_EQ(c.match(next_turn), 12u);
  const admission b = this->admit_ok(c, next_turn);
  EXPECT_EQ(b.request, (request_stats{14, 12}));
  EXPECT_EQ(b.cached_blocks, 3u);
  EXPECT_EQ(b.new_blocks, 1u);
}

TYPED_TEST(PrefixCacheTest, SharedBlocksAreReferenceCounted) {
  TypeParam c = this->make(16);
  const auto p = iota_tokens(1, 9);
  const admission a = this->admit_ok(c, p);
  this->commit_ok(c, a.id);
  const admission b = this->admit_ok(c, p);
  EXPECT_EQ(b.cached_blocks, 2u);
  const auto ab = this->blocks_of(c, a.id), bb = this->blocks_of(c, b.id);
  EXPECT_EQ(ab[0], bb[0]);
  EXPECT_EQ(ab[1], bb[1]);
  cache_stats s = c.stats();
  EXPECT_EQ(s.blocks_referenced, 4u);
  EXPECT_EQ(s.blocks_cached, 2u);
  EXPECT_EQ(s.blocks_evictable, 0u);
  EXPECT_EQ(s.blocks_free, 12u);

  this->finish_ok(c, a.id);  // b still holds the shared blocks; a's own third block is freed
  s = c.stats();
  EXPECT_EQ(s.blocks_referenced, 3u);
  EXPECT_EQ(s.blocks_evictable, 0u);
  EXPECT_EQ(s.blocks_cached, 2u);
  EXPECT_EQ(s.blocks_free, 13u);
  EXPECT_EQ(s.active_sequences, 1u);
  EXPECT_EQ(c.available_blocks(), 13u);
  EXPECT_EQ(c.match(p), 8u);

  this->finish_ok(c, b.id);
  s = c.stats();
  EXPECT_EQ(s.blocks_referenced, 0u);
  EXPECT_EQ(s.blocks_evictable, 2u);
  EXPECT_EQ(s.blocks_cached, 2u);
  EXPECT_EQ(s.blocks_free, 14u);
  EXPECT_EQ(s.active_sequences, 0u);
  EXPECT_EQ(s.finished_sequences, 2u);
  EXPECT_EQ(c.available_blocks(), 16u);

  // A hit takes evictable blocks back.
  const admission d = this->admit_ok(c, p);
  EXPECT_EQ(d.cached_blocks, 2u);
  s = c.stats();
  EXPECT_EQ(s.blocks_evictable, 0u);
  EXPECT_EQ(s.blocks_referenced, 3u);
}

// ---- eviction
// ------------------------------------------------------------------------------------

// Pool of 8: a and b (9 tokens each: 2 full blocks + 1) cached and finished, a first.
// LRU order afterwards: a1, a0, b1, b0 (tails first); 4 blocks free.
template <class Cache>
void cache_a_then_b(Cache& c, const std::vector<token_id>& a, const std::vector<token_id>& b) {
  PrefixCacheTest<Cache>::cache_prompt(c, a);
  PrefixCacheTest<Cache>::cache_prompt(c, b);
  const cache_stats s = c.stats();
  EXPECT_EQ(s.blocks_free, 4u);
  EXPECT_EQ(s.blocks_cached, 4u);
  EXPECT_EQ(s.blocks_evictable, 4u);
  EXPECT_EQ(s.blocks_referenced, 0u);
}

TYPED_TEST(PrefixCacheTest, EvictsLeastRecentlyReleasedLeafFirst) {
  TypeParam c = this->make(8);
  const auto a = iota_tokens(100, 9), b = iota_tokens(200, 9);
  cache_a_then_b(c, a, b);
  struct expected {
    std::uint32_t tokens, match_a, match_b, cached, referenced;
  };
  // Each admission takes every free block and then evicts one more.
  const std::vector<expected> steps{
      {17, 4, 8, 3, 5},  // 5 blocks: 4 free + a1
      {1, 0, 8, 2, 6},   // a0
      {1, 0, 4, 1, 7},   // b1
      {1, 0, 0, 0, 8},   // b0
  };
  token_id next = 1000;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const expected& e = steps[i];
    this->admit_ok(c, iota_tokens(next, e.tokens));
    next += 100;
    EXPECT_EQ(c.match(a), e.match_a) << "step " << i;
    EXPECT_EQ(c.match(b), e.match_b) << "step " << i;
    const cache_stats s = c.stats();
    EXPECT_EQ(s.evictions, i + 1) << "step " << i;
    EXPECT_EQ(s.cascade_evictions, 0u);
    EXPECT_EQ(s.blocks_free, 0u) << "step " << i;
    EXPECT_EQ(s.blocks_cached, e.cached) << "step " << i;
    EXPECT_EQ(s.blocks_evictable, e.cached) << "step " << i;
    EXPECT_EQ(s.blocks_referenced, e.referenced) << "step " << i;
  }
}

TYPED_TEST(PrefixCacheTest, ReferencedBlocksAreNeverEvicted) {
  TypeParam c = this->make(8);
  const auto a = iota_tokens(100, 9), b = iota_tokens(200, 9);
  cache_a_then_b(c, a, b);
  // a's blocks are the least recent, but a live sequence takes them back.
  const admission d = this->admit_ok(c, a);
  EXPECT_EQ(d.cached_blocks, 2u);
  EXPECT_EQ(c.stats().blocks_free, 3u);
  // 5 blocks: 3 free + 2 evicted, which must be b's.
  this->admit_ok(c, iota_tokens(300, 17));
  EXPECT_EQ(c.match(a), 8u);
  EXPECT_EQ(c.match(b), 0u);
  const cache_stats s = c.stats();
  EXPECT_EQ(s.evictions, 2u);
  EXPECT_EQ(s.blocks_free, 0u);
  EXPECT_EQ(s.blocks_evictable, 0u);
  EXPECT_EQ(s.blocks_cached, 2u);
  EXPECT_EQ(s.blocks_referenced, 8u);
  // Cached blocks remain, all referenced: nothing can be admitted.
  EXPECT_EQ(c.admit(std::vector<token_id>{1}).code(), errc::out_of_blocks);
  KVKIT_EXPECT_INVARIANTS(c);
  // Once released they can go.
  this->finish_ok(c, d.id);
  EXPECT_EQ(c.stats().blocks_evictable, 2u);
  EXPECT_EQ(c.stats().blocks_free, 1u);    // d's own third block
  this->admit_ok(c, iota_tokens(700, 5));  // 2 blocks: the free one and a1
  EXPECT_EQ(c.match(a), 4u);               // the tail went first
  EXPECT_EQ(c.stats().evictions, 3u);
}

// ---- deduplication
// -------------------------------------------------------------------------------

TYPED_TEST(PrefixCacheTest, ConcurrentIdenticalPromptsAreDeduplicatedAtCommit) {
  TypeParam c = this->make(16);
  const auto p = iota_tokens(1, 9);
  const admission a = this->admit_ok(c, p);
  const admission b = this->admit_ok(c, p);  // a has not committed: b misses too
  EXPECT_EQ(a.cached_blocks, 0u);
  EXPECT_EQ(b.cached_blocks, 0u);
  EXPECT_EQ(c.stats().misses, 2u);
  EXPECT_EQ(c.stats().blocks_free, 10u);
  const auto b_before = this->blocks_of(c, b.id);

  const commit_info ca = this->commit_ok(c, a.id);
  EXPECT_EQ(ca.registered_blocks, 2u);
  EXPECT_EQ(ca.deduplicated_blocks, 0u);
  const commit_info cb = this->commit_ok(c, b.id);
  EXPECT_EQ(cb.registered_blocks, 0u);
  EXPECT_EQ(cb.deduplicated_blocks, 2u);

  const auto ab = this->blocks_of(c, a.id), bb = this->blocks_of(c, b.id);
  ASSERT_EQ(bb.size(), 3u);
  EXPECT_EQ(bb[0], ab[0]);
  EXPECT_EQ(bb[1], ab[1]);
  EXPECT_EQ(bb[2], b_before[2]);  // the partial block stays b's own
  EXPECT_EQ(c.sequence(b.id)->computed_tokens, 9u);
  cache_stats s = c.stats();
  EXPECT_EQ(s.committed_blocks, 2u);
  EXPECT_EQ(s.deduplicated_blocks, 2u);
  EXPECT_EQ(s.blocks_free, 12u);  // b's two duplicate blocks went back
  EXPECT_EQ(s.blocks_cached, 2u);
  EXPECT_EQ(s.blocks_referenced, 4u);

  this->finish_ok(c, a.id);
  this->finish_ok(c, b.id);
  s = c.stats();
  EXPECT_EQ(s.blocks_evictable, 2u);
  EXPECT_EQ(s.blocks_free, 14u);
}

// ---- tenant isolation
// ----------------------------------------------------------------------------

TYPED_TEST(PrefixCacheTest, SaltAndExtraKeysSeparateTenants) {
  TypeParam c = this->make(32);
  const auto p = iota_tokens(1, 9);
  const std::vector<std::uint64_t> k7{7}, k78{7, 8}, k87{8, 7}, k78_copy{7, 8};
  const auto opts = [](std::uint64_t salt, const std::vector<std::uint64_t>& keys) {
    request_options o;
    o.tenant_salt = salt;
    o.extra_keys = keys;
    return o;
  };
  const std::vector<std::uint64_t> none;
  this->cache_prompt(c, p, opts(1, none));
  EXPECT_EQ(c.match(p, opts(1, none)), 8u);
  EXPECT_EQ(c.match(p, opts(0, none)), 0u);
  EXPECT_EQ(c.match(p), 0u);
  EXPECT_EQ(c.match(p, opts(2, none)), 0u);
  EXPECT_EQ(c.match(p, opts(1, k7)), 0u);
  const admission other = this->admit_ok(c, p, opts(2, none));
  EXPECT_EQ(other.cached_blocks, 0u);
  this->finish_ok(c, other.id);

  this->cache_prompt(c, p, opts(1, k78));
  EXPECT_EQ(c.match(p, opts(1, k78_copy)), 8u);  // keys compare by value
  EXPECT_EQ(c.match(p, opts(1, k87)), 0u);
  EXPECT_EQ(c.match(p, opts(1, k7)), 0u);
  EXPECT_EQ(c.match(p, opts(3, k78)), 0u);
  EXPECT_EQ(c.match(p, opts(1, none)), 8u);
  const admission same = this->admit_ok(c, p, opts(1, k78_copy));
  EXPECT_EQ(same.cached_blocks, 2u);
  const admission no_keys = this->admit_ok(c, p, opts(1, none));
  EXPECT_EQ(no_keys.cached_blocks, 2u);
  const auto sb = this->blocks_of(c, same.id), nb = this->blocks_of(c, no_keys.id);
  EXPECT_NE(sb[0], nb[0]);  // each namespace has its own copy
  EXPECT_NE(sb[1], nb[1]);
}

// ---- metrics
// -------------------------------------------------------------------------------------

TYPED_TEST(PrefixCacheTest, MetricsCountTokensAndBlocks) {
  TypeParam c = this->make(16);
  const auto p = iota_tokens(1, 13);  // 3 eligible blocks
  this->cache_prompt(c, p);           // miss
  const admission partial = this->admit_ok(c, concat(iota_tokens(1, 4), iota_tokens(500, 9)));
  const admission full = this->admit_ok(c, p);                    // 3 of 3
  const admission tiny = this->admit_ok(c, iota_tokens(900, 3));  // short miss
  EXPECT_EQ(partial.request, (request_stats{13, 4}));
  EXPECT_DOUBLE_EQ(partial.request.hit_rate(), 4.0 / 13);
  EXPECT_EQ(full.request, (request_stats{13, 12}));
  EXPECT_EQ(tiny.request, (request_stats{3, 0}));
  EXPECT_DOUBLE_EQ(tiny.request.hit_rate(), 0.0);
  EXPECT_DOUBLE_EQ(request_stats{}.hit_rate(), 0.0);

  const cache_stats s = c.stats();
  EXPECT_EQ(s.queries, 4u);
  EXPECT_EQ(s.query_tokens, 42u);
  EXPECT_EQ(s.hit_tokens, 16u);
  EXPECT_EQ(s.query_blocks, 9u);
  EXPECT_EQ(s.hit_blocks, 4u);
  EXPECT_EQ(s.full_hits, 1u);
  EXPECT_EQ(s.partial_hits, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.short_queries, 1u);
  EXPECT_EQ(s.evictions, 0u);
  EXPECT_DOUBLE_EQ(s.token_hit_rate(), 16.0 / 42);
  EXPECT_DOUBLE_EQ(s.prefill_reduction_ratio(), 16.0 / 42);
  EXPECT_DOUBLE_EQ(s.block_hit_rate(), 4.0 / 9);
  EXPECT_EQ(s.tokens_saved(), 16u);
  EXPECT_EQ(s.blocks_total, 16u);
  EXPECT_EQ(s.blocks_in_use(), 16u - s.blocks_free);

  const std::size_t policies = policy_traits<free_list_allocator>::metadata_bytes(c.allocator()) +
                               policy_traits<hash_matcher>::metadata_bytes(c.matcher()) +
                               policy_traits<lru_eviction>::metadata_bytes(c.eviction());
  EXPECT_GT(policies, 0u);
  EXPECT_GT(s.metadata_bytes, policies);  // the cache's own arrays come on top
  EXPECT_LE(s.metadata_bytes_per_block(), 64.0);
  EXPECT_EQ(s.token_bytes, 16u * bs * sizeof(token_id));
  EXPECT_EQ(s.kv_bytes, c.storage().bytes());
  if constexpr (std::is_same_v<typename TypeParam::storage_type, no_storage>) {
    EXPECT_EQ(s.kv_bytes, 0u);
  } else {
    EXPECT_EQ(s.kv_bytes, 2u * 2 * 16 * (bs * 2 * 4) * sizeof(float));
  }
  EXPECT_DOUBLE_EQ(cache_stats{}.token_hit_rate(), 0.0);
  EXPECT_DOUBLE_EQ(cache_stats{}.block_hit_rate(), 0.0);
  EXPECT_DOUBLE_EQ(cache_stats{}.metadata_bytes_per_block(), 0.0);
}

TYPED_TEST(PrefixCacheTest, MetadataPerBlockStaysSmallAtScale) {
  for (std::uint32_t n : {1u, 5u, 1000u, 4096u}) {
    TypeParam c = this->make(n, 16);
    const cache_stats s = c.stats();
    EXPECT_GT(s.metadata_bytes, 0u) << n;
    EXPECT_LE(s.metadata_bytes_per_block(), 64.0) << n;
    EXPECT_EQ(s.token_bytes, std::size_t{n} * 16 * 4) << n;
    EXPECT_EQ(s.blocks_free, n);
  }
}

// ---- error paths
// ---------------------------------------------------------------------------------

inline status as_status(const status& s) {
  return s;
}
template <class T>
status as_status(const result<T>& r) {
  return r.status();
}

// Runs `call`: it must fail with `code`, a message holding every needle, and leave everything
// observable about the cache (stats, the sequences `ids`, matches of `probes`) as it was.
template <class Cache, class Call>
void expect_rejected(Cache& c, std::vector<sequence_id> ids, std::vector<probe> probes, errc code,
                     std::initializer_list<std::string> needles, Call&& call) {
  KVKIT_EXPECT_INVARIANTS(c);
  const cache_snapshot before = snapshot(c, ids, probes);
  const status s = as_status(call());
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), code) << s.message();
  for (const std::string& n : needles)
    KVKIT_EXPECT_SUBSTR(s.message(), n);
  const cache_snapshot after = snapshot(c, ids, probes);
  EXPECT_TRUE(after == before) << "a failed call changed the cache: " << s.message();
  EXPECT_TRUE(after.stats == before.stats) << "stats changed";
  EXPECT_TRUE(after.sequences == before.sequences) << "a sequence changed";
  EXPECT_TRUE(after.matches == before.matches) << "a match changed";
  KVKIT_EXPECT_INVARIANTS(c);
}

TYPED_TEST(PrefixCacheTest, CreateRejectsBadStorageLayouts) {
  // The storage's layout is the cache's one source of truth for its shape: a storage that reports
  // a bad one is refused, naming the field, the value and what is accepted.
  using C = TypeParam;
  using raw_cache = prefix_cache<typename C::allocator_type, typename C::matcher_type,
                                 typename C::eviction_type, raw_layout_storage>;
  const auto expect_create_fails = [](std::uint32_t block_size, std::uint32_t num_blocks,
                                      std::initializer_list<std::string> needles) {
    const auto r = raw_cache::create(cache_config{.seed = 1},
                                     raw_layout_storage(raw_layout(block_size, num_blocks)));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), errc::invalid_config) << r.error().message();
    for (const std::string& n : needles)
      KVKIT_EXPECT_SUBSTR(r.error().message(), n);
  };
  expect_create_fails(4, 0, {"kv_layout.num_blocks", ">= 1", "got 0"});
  expect_create_fails(0, 4, {"kv_layout.block_size", "power of two", "got 0"});
  expect_create_fails(12, 4, {"kv_layout.block_size", "power of two", "got 12"});
  expect_create_fails(4, (1u << 31) + 1, {"kv_layout.num_blocks", "<= 2^31", "got 2147483649"});
  // A good layout works, with this storage and with the shipped one.
  EXPECT_TRUE(
      raw_cache::create(cache_config{.seed = 1}, raw_layout_storage(raw_layout(4, 4))).ok());
  auto st = make_storage<typename C::storage_type>(4, 4);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(C::create(cache_config{.seed = 1}, std::move(st).value()).ok());
}

TYPED_TEST(PrefixCacheTest, ShapeComesFromTheStorageLayout) {
  // block_size and num_blocks are given once, in the storage's layout.
  for (const auto& [bs, nb] : {std::pair{1u, 3u}, std::pair{8u, 5u}, std::pair{16u, 64u}}) {
    auto st = make_storage<typename TypeParam::storage_type>(bs, nb);
    ASSERT_TRUE(st.ok()) << st.status().message();
    auto c = TypeParam::create(cache_config{.seed = 1}, std::move(st).value());
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c->block_size(), bs);
    EXPECT_EQ(c->num_blocks(), nb);
    EXPECT_EQ(c->stats().blocks_total, nb);
    EXPECT_EQ(c->storage().layout().block_size, bs);
    EXPECT_EQ(c->storage().layout().num_blocks, nb);
  }
}

TYPED_TEST(PrefixCacheTest, CreateRejectsTooManyBlocksNamingTheBound) {
  using raw_cache =
      prefix_cache<typename TypeParam::allocator_type, typename TypeParam::matcher_type,
                   typename TypeParam::eviction_type, raw_layout_storage>;
  const auto r =
      raw_cache::create(cache_config{.seed = 1}, raw_layout_storage(raw_layout(4, (1u << 31) + 1)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::invalid_config);
  KVKIT_EXPECT_SUBSTR(r.error().message(), "num_blocks");
  KVKIT_EXPECT_SUBSTR(r.error().message(), "<= 2^31");
  KVKIT_EXPECT_SUBSTR(r.error().message(), "2147483649");
}

TYPED_TEST(PrefixCacheTest, AdmitEmptyPromptIsRejected) {
  TypeParam c = this->make(8);
  const auto p = iota_tokens(1, 9);
  const admission a = this->admit_ok(c, p);
  this->commit_ok(c, a.id);
  expect_rejected(c, {a.id}, {{p}, {concat(p, {1})}}, errc::empty_input, {"admit", "empty"},
                  [&] { return c.admit(std::span<const token_id>{}); });
}

TYPED_TEST(PrefixCacheTest, AdmitOutOfBlocksWhenEveryBlockIsReferenced) {
  TypeParam c = this->make(4);
  const auto p = iota_tokens(1, 16);
  const admission a = this->admit_ok(c, p);
  const std::vector<probe> probes{{p}, {concat(p, {5})}};
  expect_rejected(c, {a.id}, probes, errc::out_of_blocks, {"needs 1 new blocks", "only 0"},
                  [&] { return c.admit(std::vector<token_id>{1}); });
  // Committed: the blocks are cached, but still referenced. A hit needs 1 more block.
  this->commit_ok(c, a.id);
  EXPECT_EQ(c.match(p), 12u);
  expect_rejected(c, {a.id}, probes, errc::out_of_blocks,
                  {"needs 1 new blocks", "only 0", "3 prompt blocks hit", "pool of 4"},
                  [&] { return c.admit(p); });
}

TYPED_TEST(PrefixCacheTest, AdmitOutOfBlocksForAPromptLargerThanThePool) {
  TypeParam c = this->make(4);
  const auto p = iota_tokens(1, 9);
  this->cache_prompt(c, p);
  const admission live = this->admit_ok(c, {3});
  ASSERT_EQ(c.available_blocks(), 3u);
  expect_rejected(c, {live.id}, {{p}}, errc::out_of_blocks,
                  {"a prompt of 17 tokens needs 5 blocks", "the cache has 4 in all"},
                  [&] { return c.admit(iota_tokens(100, 17)); });
  // Even a prompt whose prefix is cached.
  expect_rejected(c, {live.id}, {{p}}, errc::out_of_blocks, {"17 tokens needs 5 blocks"},
                  [&] { return c.admit(concat(p, iota_tokens(100, 8))); });
}

TYPED_TEST(PrefixCacheTest, AdmitOutOfBlocksWhenTheOnlyEvictableBlocksAreItsOwnHits) {
  TypeParam c = this->make(4);
  const auto a = iota_tokens(1, 8);
  this->cache_prompt(c, a);                                        // a0, a1 evictable; 2 free
  const admission other = this->admit_ok(c, iota_tokens(100, 8));  // takes the 2 free blocks
  ASSERT_EQ(c.stats().blocks_free, 0u);
  ASSERT_EQ(c.stats().blocks_evictable, 2u);
  ASSERT_EQ(c.available_blocks(), 2u);
  // 16 tokens: hits a0, a1 and needs 2 new blocks. Two blocks are evictable, but they are the
  // hits themselves: taking them leaves nothing to evict.
  const auto b = concat(a, iota_tokens(50, 8));
  EXPECT_EQ(c.match(b), 8u);
  expect_rejected(c, {other.id}, {{b}, {concat(a, {9})}}, errc::out_of_blocks,
                  {"needs 2 new blocks but only 0", "2 prompt blocks hit"},
                  [&] { return c.admit(b); });
  // With one more block it would fit: after `other` finishes, 2 free + 0 other evictable.
  this->finish_ok(c, other.id);
  const admission ok = this->admit_ok(c, b);
  EXPECT_EQ(ok.cached_blocks, 2u);
  EXPECT_EQ(ok.new_blocks, 2u);
}

TYPED_TEST(PrefixCacheTest, UnknownSequenceIdsAreRejected) {
  TypeParam c = this->make(8);
  const auto p = iota_tokens(1, 6);
  const admission a = this->admit_ok(c, p);
  const std::vector<sequence_id> bad{
      sequence_id{},                                 // default
      sequence_id{0, 0},                             // generation 0 is never issued
      sequence_id{a.id.index + 5, 1},                // index past the end
      sequence_id{a.id.index, a.id.generation + 1},  // a future generation
      sequence_id{a.id.index, a.id.generation + 1000},
  };
  const std::vector<probe> probes{{p}};
  const std::vector<token_id> one{1};
  for (const sequence_id id : bad) {
    SCOPED_TRACE(testing::Message() << "id {" << id.index << ", " << id.generation << "}");
    expect_rejected(c, {a.id}, probes, errc::unknown_sequence, {"commit", "never issued"},
                    [&] { return c.commit(id); });
    expect_rejected(c, {a.id}, probes, errc::unknown_sequence, {"commit", "never issued"},
                    [&] { return c.commit(id, 0); });
    expect_rejected(c, {a.id}, probes, errc::unknown_sequence, {"append", "never issued"},
                    [&] { return c.append(id, one); });
    expect_rejected(c, {a.id}, probes, errc::unknown_sequence, {"append", "never issued"},
                    [&] { return c.append(id, std::span<const token_id>{}); });
    expect_rejected(c, {a.id}, probes, errc::unknown_sequence, {"finish", "never issued"},
                    [&] { return c.finish(id); });
    expect_rejected(c, {a.id}, probes, errc::unknown_sequence, {"sequence", "never issued"},
                    [&] { return c.sequence(id); });
  }
}

TYPED_TEST(PrefixCacheTest, FinishedSequenceIdsAreRejectedEvenAfterSlotReuse) {
  TypeParam c = this->make(8);
  const auto p = iota_tokens(1, 6);
  const admission a = this->admit_ok(c, p);
  this->commit_ok(c, a.id);
  const admission b = this->admit_ok(c, iota_tokens(50, 3));
  this->finish_ok(c, a.id);
  const std::vector<token_id> one{1};
  const auto all_rejected = [&](std::vector<sequence_id> live) {
    const std::vector<probe> probes{{p}, {concat(p, {1})}};
    expect_rejected(c, live, probes, errc::finished_sequence, {"commit", "already finished"},
                    [&] { return c.commit(a.id); });
    expect_rejected(c, live, probes, errc::finished_sequence, {"commit", "already finished"},
                    [&] { return c.commit(a.id, 6); });
    expect_rejected(c, live, probes, errc::finished_sequence, {"append", "already finished"},
                    [&] { return c.append(a.id, one); });
    expect_rejected(c, live, probes, errc::finished_sequence, {"finish", "already finished"},
                    [&] { return c.finish(a.id); });
    expect_rejected(c, live, probes, errc::finished_sequence, {"sequence", "already finished"},
                    [&] { return c.sequence(a.id); });
  };
  all_rejected({b.id});
  // A new sequence takes a's slot: the old handle must still not reach it.
  const admission d = this->admit_ok(c, p);
  ASSERT_EQ(d.id.index, a.id.index) << "precondition: the slot is reused";
  EXPECT_NE(d.id.generation, a.id.generation);
  EXPECT_NE(d.id, a.id);
  all_rejected({b.id, d.id});
  EXPECT_TRUE(c.sequence(d.id).ok());
  EXPECT_EQ(c.sequence(d.id)->request, (request_stats{6, 4}));
}

TYPED_TEST(PrefixCacheTest, CommitOutsideTheAcceptedRangeIsInvalidArgument) {
  TypeParam c = this->make(8);
  const auto p = iota_tokens(1, 6);
  const admission a = this->admit_ok(c, p);
  const std::vector<probe> probes{{p}, {concat(p, {7})}};
  expect_rejected(c, {a.id}, probes, errc::invalid_argument,
                  {"num_computed_tokens = 7", "exceeds", "6 tokens", "accepted: 0 to 6"},
                  [&] { return c.commit(a.id, 7); });
  auto r = c.commit(a.id, 5);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->registered_blocks, 1u);
  expect_rejected(c, {a.id}, probes, errc::invalid_argument,
                  {"num_computed_tokens = 4", "below", "accepted: 5 to 6"},
                  [&] { return c.commit(a.id, 4); });
  expect_rejected(c, {a.id}, probes, errc::invalid_argument, {"num_computed_tokens = 0"},
                  [&] { return c.commit(a.id, 0); });
  // A sequence admitted with a hit starts with its cached tokens computed.
  const admission b = this->admit_ok(c, p);
  ASSERT_EQ(b.request.cached_tokens, 4u);
  expect_rejected(c, {a.id, b.id}, probes, errc::invalid_argument, {"below", "accepted: 4 to 6"},
                  [&] { return c.commit(b.id, 3); });
  // The same count again is a no-op success.
  auto same = c.commit(a.id, 5);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->registered_blocks, 0u);
  EXPECT_EQ(same->deduplicated_blocks, 0u);
}

TYPED_TEST(PrefixCacheTest, AppendEmptyIsRejected) {
  TypeParam c = this->make(8);
  const auto p = iota_tokens(1, 6);
  const admission a = this->admit_ok(c, p);
  this->commit_ok(c, a.id);
  expect_rejected(c, {a.id}, {{p}}, errc::empty_input, {"append", "no tokens"},
                  [&] { return c.append(a.id, std::span<const token_id>{}); });
}

TYPED_TEST(PrefixCacheTest, AppendOutOfBlocksIsRejected) {
  TypeParam c = this->make(4);
  const admission a = this->admit_ok(c, iota_tokens(1, 15));    // 4 blocks, one slot left
  ASSERT_TRUE(c.append(a.id, std::vector<token_id>{99}).ok());  // fits in the last block
  KVKIT_EXPECT_INVARIANTS(c);
  expect_rejected(c, {a.id}, {{iota_tokens(1, 15)}}, errc::out_of_blocks,
                  {"append", "need 1 new blocks but only 0", "pool of 4"},
                  [&] { return c.append(a.id, std::vector<token_id>{100}); });

  // Needing several blocks when only some are available: nothing may be allocated.
  TypeParam d = this->make(4);
  const admission s = this->admit_ok(d, iota_tokens(1, 4));  // 1 block
  const admission t = this->admit_ok(d, iota_tokens(1, 4));  // 1 block
  EXPECT_EQ(d.available_blocks(), 2u);
  expect_rejected(d, {s.id, t.id}, {{iota_tokens(1, 5)}}, errc::out_of_blocks,
                  {"9 tokens need 3 new blocks but only 2"},
                  [&] { return d.append(s.id, iota_tokens(10, 9)); });
  ASSERT_TRUE(d.append(s.id, iota_tokens(10, 8)).ok());  // 12 tokens: exactly 2 more blocks
  KVKIT_EXPECT_INVARIANTS(d);
}

// ---- collision safety
// ----------------------------------------------------------------------------

// Every chain hash is one of two values, so every lookup collides; the cache's verification of
// parent link and stored tokens is all that stands between a prompt and another prompt's K/V.
using colliding_cache = prefix_cache<free_list_allocator, basic_hash_matcher<colliding_hasher>,
                                     lru_eviction, host_storage<float>>;

// K/V content that depends on a token's whole prefix, as real K/V does: each distinct prefix gets
// an id; K holds the id, V the id + 0.5 in every element of the token.
class prefix_ids {
 public:
  float id(std::span<const token_id> prefix) {
    const std::vector<token_id> key(prefix.begin(), prefix.end());
    auto [it, inserted] = ids_.try_emplace(key, static_cast<int>(ids_.size()) + 1);
    return static_cast<float>(it->second);
  }

 private:
  std::map<std::vector<token_id>, int> ids_;
};

// Writes K/V of tokens [from, to) of a sequence into its blocks.
void write_kv(colliding_cache& c, prefix_ids& ids, sequence_id id, std::uint32_t from,
              std::uint32_t to) {
  const auto v = c.sequence(id);
  ASSERT_TRUE(v.ok());
  const std::uint32_t b = c.block_size();
  const kv_layout& l = c.storage().layout();
  for (std::uint32_t i = from; i < to; ++i) {
    const float val = ids.id(v->tokens.first(i + 1));
    for (std::uint32_t layer = 0; layer < l.num_layers; ++layer)
      for (std::uint32_t h = 0; h < l.num_kv_heads; ++h)
        for (std::uint32_t d = 0; d < l.head_dim; ++d) {
          c.storage().at(layer, 0, v->blocks[i / b], i % b, h, d) = val;
          c.storage().at(layer, 1, v->blocks[i / b], i % b, h, d) = val + 0.5f;
        }
  }
}

// Every computed token of every live sequence finds its own prefix's K/V in its blocks.
void expect_own_kv(colliding_cache& c, prefix_ids& ids, const std::vector<sequence_id>& live,
                   int step) {
  const std::uint32_t b = c.block_size();
  const kv_layout& l = c.storage().layout();
  for (sequence_id id : live) {
    const auto v = c.sequence(id);
    ASSERT_TRUE(v.ok());
    for (std::uint32_t i = 0; i < v->computed_tokens; ++i) {
      const float want = ids.id(v->tokens.first(i + 1));
      for (std::uint32_t layer = 0; layer < l.num_layers; ++layer)
        for (std::uint32_t h = 0; h < l.num_kv_heads; ++h)
          for (std::uint32_t d = 0; d < l.head_dim; ++d) {
            ASSERT_EQ(c.storage().at(layer, 0, v->blocks[i / b], i % b, h, d), want)
                << "step " << step << ": token " << i << " of sequence " << id.index
                << " holds another prefix's K";
            ASSERT_EQ(c.storage().at(layer, 1, v->blocks[i / b], i % b, h, d), want + 0.5f)
                << "step " << step << ": token " << i << " holds another prefix's V";
          }
    }
  }
}

TEST(PrefixCacheCollisions, SameBlockTokensUnderAnotherParentNeverHit) {
  colliding_cache c = make_cache<colliding_cache>(16, 2);
  prefix_ids ids;
  // Blocks {0,2} and {4,6} in both orders; every block hashes alike (first token even).
  const std::vector<token_id> p1{0, 2, 4, 6, 1}, p2{4, 6, 0, 2, 1}, p3{0, 2, 0, 2, 1};
  const auto run = [&](const std::vector<token_id>& p, std::uint32_t want_cached,
                       const request_options& o = {}) {
    auto a = c.admit(p, o);
    ASSERT_TRUE(a.ok()) << a.status().message();
    EXPECT_EQ(a->request.cached_tokens, want_cached);
    expect_own_kv(c, ids, {a->id}, 0);
    write_kv(c, ids, a->id, a->request.cached_tokens, static_cast<std::uint32_t>(p.size()));
    ASSERT_TRUE(c.commit(a->id).ok());
    expect_own_kv(c, ids, {a->id}, 0);
    ASSERT_TRUE(c.finish(a->id).ok());
    KVKIT_EXPECT_INVARIANTS(c);
  };
  run(p1, 0);
  run(p2, 0);  // {4,6} exists, but under {0,2}, not under the root
  run(p3, 2);  // {0,2} then {0,2}: only the first block is p1's
  run(p1, 4);
  run(p2, 4);
  request_options other;
  other.tenant_salt = 9;
  run(p1, 0, other);
  EXPECT_EQ(c.match(p1), 4u);
  EXPECT_EQ(c.match(p1, other), 4u);
}

TEST(PrefixCacheCollisions, EveryHitHoldsItsOwnPromptsKv) {
  constexpr std::uint32_t block = 2, pool = 40;
  colliding_cache c = make_cache<colliding_cache>(pool, block, 7);
  prefix_ids ids;
  std::mt19937 rng(2024);
  std::vector<std::vector<token_id>> history;
  std::vector<sequence_id> live;
  std::uint64_t hit_admissions = 0, rejected = 0;
  for (int step = 0; step < 1500; ++step) {
    const unsigned op = rng() % 100;
    if (op < 55 || live.empty()) {
      // A prompt over a 3-token alphabet, often extending an earlier one.
      std::vector<token_id> p;
      if (!history.empty() && rng() % 3 != 0) {
        const auto& base = history[rng() % history.size()];
        p.assign(base.begin(),
                 base.begin() + static_cast<std::ptrdiff_t>(rng() % (base.size() + 1)));
      }
      const std::size_t extra = 1 + rng() % 6;
      for (std::size_t i = 0; i < extra; ++i)
        p.push_back(static_cast<token_id>(rng() % 3));
      request_options o;
      o.tenant_salt = rng() % 8 == 0 ? 1 : 0;
      auto a = c.admit(p, o);
      if (!a.ok()) {
        ASSERT_EQ(a.code(), errc::out_of_blocks) << a.status().message();
        ++rejected;
        continue;
      }
      history.push_back(p);
      hit_admissions += a->cached_blocks > 0 ? 1 : 0;
      live.push_back(a->id);
      expect_own_kv(c, ids, live, step);  // the hit blocks hold this prompt's K/V
      write_kv(c, ids, a->id, a->request.cached_tokens, static_cast<std::uint32_t>(p.size()));
      const std::uint32_t upto = rng() % 4 == 0 ? static_cast<std::uint32_t>(p.size() / 2)
                                                : static_cast<std::uint32_t>(p.size());
      auto ci = c.commit(a->id, std::max(upto, a->request.cached_tokens));
      ASSERT_TRUE(ci.ok()) << ci.status().message();
      if (upto < p.size()) {
        ASSERT_TRUE(c.commit(a->id).ok());
      }
    } else if (op < 85) {
      const std::size_t i = rng() % live.size();
      ASSERT_TRUE(c.finish(live[i]).ok());
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      const sequence_id id = live[rng() % live.size()];
      std::vector<token_id> gen;
      for (std::size_t i = 0, n = 1 + rng() % 4; i < n; ++i) {
        gen.push_back(static_cast<token_id>(rng() % 3));
      }
      const std::uint32_t before = c.sequence(id)->computed_tokens;
      const status s = c.append(id, gen);
      if (!s.ok()) {
        ASSERT_EQ(s.code(), errc::out_of_blocks) << s.message();
        continue;
      }
      const auto len = static_cast<std::uint32_t>(c.sequence(id)->tokens.size());
      write_kv(c, ids, id, before, len);
      ASSERT_TRUE(c.commit(id).ok());
      const auto v = c.sequence(id);
      history.emplace_back(v->tokens.begin(), v->tokens.end());
    }
    expect_own_kv(c, ids, live, step);
    const status inv = c.check_invariants();
    ASSERT_TRUE(inv.ok()) << "step " << step << ": " << inv.message();
    if (::testing::Test::HasFatalFailure())
      return;
  }
  const cache_stats s = c.stats();
  // The run must have exercised what it claims to.
  EXPECT_GT(hit_admissions, 200u);
  EXPECT_GT(s.evictions, 50u);
  EXPECT_GT(s.deduplicated_blocks, 0u);
  EXPECT_GT(s.committed_blocks, 200u);
  EXPECT_GT(rejected + s.partial_hits, 0u);
}

}  // namespace
}  // namespace kvkit::test
