// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// prefix_cache features beyond the basic life cycle, over the hash, radix and session matchers:
// partial-block reuse (copy on write), fork, pinning, invalidation, time-based expiry, leaf-only
// eviction candidates, per-class and conversational metrics, and their error paths (a failed call
// changes nothing). K/V lives in host storage and is checked value by value.

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
#include <span>
#include <string>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/kv_model.hpp"

namespace kvkit::test {
namespace {

constexpr std::uint32_t bs = 4;  // block size of every test here

// ---- test-local eviction policies ---------------------------------------------------------------

// All cached, unreferenced blocks are candidates, least recently released first; a block expires
// `ttl` ticks of a manual clock after its release.
class manual_ttl_eviction {
 public:
  struct options {
    const std::uint64_t* clock = nullptr;  // the test's clock
    std::uint64_t ttl = 10;
  };
  explicit manual_ttl_eviction(std::uint32_t capacity) : manual_ttl_eviction(capacity, options{}) {}
  manual_ttl_eviction(std::uint32_t capacity, const options& o)
      : opt_(o), prev_(capacity, unlinked), next_(capacity, unlinked), released_(capacity, 0) {}

  void insert(block_id b) {
    EXPECT_FALSE(contains(b)) << "insert of a candidate " << b;
    released_[b] = now();
    prev_[b] = tail_;
    next_[b] = invalid_block;
    (tail_ != invalid_block ? next_[tail_] : head_) = b;
    tail_ = b;
    ++size_;
  }
  void erase(block_id b) {
    if (!contains(b)) {
      ADD_FAILURE() << "erase of a non-candidate " << b;
      return;
    }
    (prev_[b] != invalid_block ? next_[prev_[b]] : head_) = next_[b];
    (next_[b] != invalid_block ? prev_[next_[b]] : tail_) = prev_[b];
    prev_[b] = next_[b] = unlinked;
    --size_;
  }
  block_id victim() {
    const block_id b = head_;
    if (b != invalid_block)
      erase(b);
    return b;
  }
  [[nodiscard]] std::uint32_t size() const { return size_; }
  [[nodiscard]] bool expired(block_id b) const {
    return contains(b) && now() - released_[b] >= opt_.ttl;
  }
  block_id pop_expired() {
    return head_ != invalid_block && expired(head_) ? victim() : invalid_block;
  }
  void forget(block_id) { ++forgotten_; }

  [[nodiscard]] bool contains(block_id b) const { return prev_[b] != unlinked; }
  [[nodiscard]] std::uint32_t forgotten() const { return forgotten_; }

 private:
  static constexpr block_id unlinked = invalid_block - 1;
  [[nodiscard]] std::uint64_t now() const { return opt_.clock != nullptr ? *opt_.clock : 0; }
  options opt_;
  std::vector<block_id> prev_, next_;
  std::vector<std::uint64_t> released_;
  block_id head_ = invalid_block, tail_ = invalid_block;
  std::uint32_t size_ = 0, forgotten_ = 0;
};
static_assert(eviction_policy<manual_ttl_eviction>);

// Only leaves are candidates; the victim is the candidate with the highest block id (an order
// unrelated to release order, so parents are offered only because the cache inserts them when
// they become leaves). Misuse (inserting a candidate, erasing a non-candidate) is counted.
class highest_leaf_eviction {
 public:
  static constexpr bool leaves_only = true;
  explicit highest_leaf_eviction(std::uint32_t capacity) : member_(capacity, 0) {}
  void insert(block_id b) {
    if (member_[b] != 0) {
      ++violations_;
      return;
    }
    member_[b] = 1;
    ++size_;
  }
  void erase(block_id b) {
    if (member_[b] == 0) {
      ++violations_;
      return;
    }
    member_[b] = 0;
    --size_;
  }
  block_id victim() {
    for (block_id b = static_cast<block_id>(member_.size()); b-- > 0;) {
      if (member_[b] != 0) {
        erase(b);
        return b;
      }
    }
    return invalid_block;
  }
  [[nodiscard]] std::uint32_t size() const { return size_; }
  [[nodiscard]] bool contains(block_id b) const { return member_[b] != 0; }
  [[nodiscard]] std::uint32_t violations() const { return violations_; }

 private:
  std::vector<std::uint8_t> member_;
  std::uint32_t size_ = 0, violations_ = 0;
};
static_assert(eviction_policy<highest_leaf_eviction>);
static_assert(policy_traits<highest_leaf_eviction>::leaves_only());

// Every element of one block.
template <class Cache>
std::vector<float> block_contents(const Cache& c, block_id b) {
  std::vector<float> out;
  for (std::uint32_t layer = 0; layer < c.storage().layout().num_layers; ++layer) {
    for (std::uint32_t kv = 0; kv < 2; ++kv) {
      const auto blk = c.storage().block(layer, kv, b);
      out.insert(out.end(), blk.begin(), blk.end());
    }
  }
  return out;
}

template <class M>
inline constexpr bool has_partial = matcher_has_find_partial<M>;

// ---- fixture
// ---------------------------------------------------------------------------------------

template <class Matcher>
class Features : public ::testing::Test {
 public:
  using lru_cache = prefix_cache<free_list_allocator, Matcher, lru_eviction, host_storage<float>>;
  using ttl_cache =
      prefix_cache<free_list_allocator, Matcher, manual_ttl_eviction, host_storage<float>>;
  using leaf_cache =
      prefix_cache<free_list_allocator, Matcher, highest_leaf_eviction, host_storage<float>>;
  static constexpr bool partial = has_partial<Matcher>;

  template <class Cache>
  static admission admit_ok(Cache& c, const std::vector<token_id>& prompt,
                            const request_options& o = {}) {
    auto r = c.admit(prompt, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    KVKIT_EXPECT_INVARIANTS(c);
    return r.ok() ? *r : admission{};
  }
  // Admits, writes the uncached K/V, checks the cached K/V; the sequence stays live.
  template <class Cache>
  static admission prefill(Cache& c, const std::vector<token_id>& prompt,
                           const request_options& o = {}) {
    const admission a = admit_ok(c, prompt, o);
    const std::uint64_t ns = o.tenant_salt;
    EXPECT_EQ(kv_errors(c, a.id, 0, a.request.cached_tokens, ns), 0u) << "hit K/V is wrong";
    write_kv(c, a.id, a.request.cached_tokens, prompt.size(), ns);
    return a;
  }
  template <class Cache>
  static commit_info commit_ok(Cache& c, sequence_id id) {
    auto r = c.commit(id);
    EXPECT_TRUE(r.ok()) << r.status().message();
    KVKIT_EXPECT_INVARIANTS(c);
    return r.ok() ? *r : commit_info{};
  }
  template <class Cache>
  static void finish_ok(Cache& c, sequence_id id) {
    const status s = c.finish(id);
    EXPECT_TRUE(s.ok()) << s.message();
    KVKIT_EXPECT_INVARIANTS(c);
  }
  template <class Cache>
  static void append_ok(Cache& c, sequence_id id, const std::vector<token_id>& tokens,
                        std::uint64_t ns = 0) {
    const std::size_t before = c.sequence(id)->tokens.size();
    const status s = c.append(id, tokens);
    ASSERT_TRUE(s.ok()) << s.message();
    KVKIT_EXPECT_INVARIANTS(c);
    write_kv(c, id, before, before + tokens.size(), ns);
  }
  // prefill + commit + finish.
  template <class Cache>
  static void cache_prompt(Cache& c, const std::vector<token_id>& prompt,
                           const request_options& o = {}) {
    const admission a = prefill(c, prompt, o);
    commit_ok(c, a.id);
    finish_ok(c, a.id);
  }
  template <class Cache>
  static std::vector<block_id> blocks_of(const Cache& c, sequence_id id) {
    const auto v = c.sequence(id);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() ? std::vector<block_id>(v->blocks.begin(), v->blocks.end())
                  : std::vector<block_id>{};
  }
};

using matchers = ::testing::Types<hash_matcher, radix_matcher, session_matcher>;
TYPED_TEST_SUITE(Features, matchers);

request_options tenant(std::uint64_t salt) {
  request_options o;
  o.tenant_salt = salt;
  return o;
}

// ---- partial-block reuse
// ---------------------------------------------------------------------------

TYPED_TEST(Features, PartialBlockReuseCopiesTheSharedLeadingTokens) {
  auto c = make_cache<typename TestFixture::lru_cache>(16, bs);
  const auto p = iota_tokens(100, 10);  // [100..103] [104..107] [108 109]
  const admission a = this->prefill(c, p);
  this->commit_ok(c, a.id);  // a stays live: the copy source is referenced
  const block_id source = this->blocks_of(c, a.id)[1];
  const std::vector<float> source_kv = block_contents(c, source);

  // Diverges at slot 2 of the second block.
  const std::vector<token_id> q{100, 101, 102, 103, 104, 105, 900, 901, 902};
  const std::uint32_t want = TestFixture::partial ? 6 : 4;
  EXPECT_EQ(c.match(q), want);
  const admission b = this->admit_ok(c, q);
  EXPECT_EQ(b.request, (request_stats{9, want}));
  EXPECT_EQ(b.cached_blocks, 1u);
  EXPECT_EQ(b.new_blocks, 2u);
  EXPECT_EQ(c.sequence(b.id)->computed_tokens, want);
  const auto bb = this->blocks_of(c, b.id);
  ASSERT_EQ(bb.size(), 3u);
  EXPECT_EQ(bb[0], this->blocks_of(c, a.id)[0]);
  EXPECT_NE(bb[1], source) << "the partially reused block is a copy, never the source";
  cache_stats s = c.stats();
  EXPECT_EQ(s.partial_block_hits, TestFixture::partial ? 1u : 0u);
  EXPECT_EQ(s.copied_blocks, TestFixture::partial ? 1u : 0u);
  EXPECT_EQ(s.hit_tokens, want);
  EXPECT_EQ(s.hit_blocks, 1u);
  EXPECT_EQ(s.partial_hits, 1u);
  EXPECT_EQ(s.full_hits, 0u);
  EXPECT_EQ(s.blocks_referenced, 5u);
  // The reused slots hold the source's K/V, which is right for b (same prefix).
  EXPECT_EQ(kv_errors(c, b.id, 0, want), 0u);
  // b computes its own tokens; the source block does not change.
  write_kv(c, b.id, want, q.size());
  EXPECT_EQ(block_contents(c, source), source_kv);
  EXPECT_EQ(kv_errors(c, a.id, 0, p.size()), 0u);
  EXPECT_EQ(kv_errors(c, b.id, 0, q.size()), 0u);

  // b's diverging block is registered beside the source; the longer shared run then wins.
  const commit_info ci = this->commit_ok(c, b.id);
  EXPECT_EQ(ci.registered_blocks, 1u);
  EXPECT_EQ(ci.deduplicated_blocks, 0u);
  EXPECT_EQ(c.match(q), 8u);
  const std::vector<token_id> r{100, 101, 102, 103, 104, 105, 900, 777, 1, 2};
  EXPECT_EQ(c.match(r), TestFixture::partial ? 7u : 4u);
  const std::vector<token_id> r2{100, 101, 102, 103, 104, 105, 106, 777, 1, 2};
  EXPECT_EQ(c.match(r2), TestFixture::partial ? 7u : 4u);

  // With the source released (unreferenced), reuse works the same and copies again.
  this->finish_ok(c, a.id);
  this->finish_ok(c, b.id);
  const admission d = this->prefill(c, r);
  EXPECT_EQ(d.request.cached_tokens, TestFixture::partial ? 7u : 4u);
  EXPECT_EQ(c.stats().copied_blocks, TestFixture::partial ? 2u : 0u);
  EXPECT_EQ(c.stats().partial_block_hits, TestFixture::partial ? 2u : 0u);
  EXPECT_EQ(kv_errors(c, d.id, 0, r.size()), 0u);
  EXPECT_EQ(block_contents(c, source), source_kv);
  KVKIT_EXPECT_INVARIANTS(c);
}

TYPED_TEST(Features, FullyCachedWholeBlockPromptLeavesOneTokenToCompute) {
  for (std::uint32_t k = 1; k <= 3; ++k) {
    SCOPED_TRACE(testing::Message() << "blocks " << k);
    auto c = make_cache<typename TestFixture::lru_cache>(16, bs);
    const auto p = iota_tokens(1, k * bs);
    this->cache_prompt(c, p);
    const std::uint32_t want = TestFixture::partial ? k * bs - 1 : (k - 1) * bs;
    EXPECT_EQ(c.match(p), want);
    const admission a = this->prefill(c, p);
    EXPECT_EQ(a.request, (request_stats{k * bs, want}));
    EXPECT_EQ(a.cached_blocks, k - 1);
    EXPECT_EQ(a.new_blocks, 1u);
    const cache_stats s = c.stats();
    EXPECT_EQ(s.copied_blocks, TestFixture::partial ? 1u : 0u);
    EXPECT_EQ(s.partial_block_hits, TestFixture::partial ? 1u : 0u);
    EXPECT_EQ(s.short_queries, k == 1 ? 2u : 0u);
    EXPECT_EQ(kv_errors(c, a.id, 0, p.size()), 0u);
    // Committing the recomputed last block finds the cached one: the sequence switches to it.
    const commit_info ci = this->commit_ok(c, a.id);
    EXPECT_EQ(ci.registered_blocks, 0u);
    EXPECT_EQ(ci.deduplicated_blocks, 1u);
  }
}

TYPED_TEST(Features, PartialCopyIsSkippedWhenThePoolCannotHoldTheSource) {
  // q hits block 0 and shares 2 tokens of p's block 1; it needs 3 new blocks. With 4 blocks, the
  // only way to get them evicts the copy source: the copy is skipped, the admission succeeds.
  // With 5 blocks the source can be held while allocating.
  const auto p = iota_tokens(1, 8);
  const std::vector<token_id> q{1, 2, 3, 4, 5, 6, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108};
  for (std::uint32_t pool : {4u, 5u}) {
    SCOPED_TRACE(testing::Message() << "pool " << pool);
    auto c = make_cache<typename TestFixture::lru_cache>(pool, bs);
    this->cache_prompt(c, p);
    const bool copies = TestFixture::partial && pool == 5;
    const admission a = this->prefill(c, q);
    EXPECT_EQ(a.request.cached_tokens, copies ? 6u : 4u);
    EXPECT_EQ(a.cached_blocks, 1u);
    EXPECT_EQ(a.new_blocks, 3u);
    const cache_stats s = c.stats();
    EXPECT_EQ(s.copied_blocks, copies ? 1u : 0u);
    EXPECT_EQ(s.partial_block_hits, copies ? 1u : 0u);
    EXPECT_EQ(s.evictions, pool == 4 ? 1u : 0u);
    EXPECT_EQ(s.blocks_free, 0u);
    EXPECT_EQ(kv_errors(c, a.id, 0, q.size()), 0u);
  }
}

// ---- fork
// ----------------------------------------------------------------------------------------

TYPED_TEST(Features, ForkSharesBlocksAndCopiesTheSharedPartialTailOnAppend) {
  auto c = make_cache<typename TestFixture::lru_cache>(16, bs);
  const auto p = iota_tokens(1, 6);  // a full block and a shared partial one
  const admission a = this->prefill(c, p);
  this->commit_ok(c, a.id);
  const cache_stats before = c.stats();
  auto f = c.fork(a.id);
  ASSERT_TRUE(f.ok()) << f.status().message();
  KVKIT_EXPECT_INVARIANTS(c);
  const auto ab = this->blocks_of(c, a.id);
  EXPECT_EQ(this->blocks_of(c, *f), ab);
  {
    const auto v = c.sequence(*f);
    EXPECT_EQ(std::vector<token_id>(v->tokens.begin(), v->tokens.end()), p);
    EXPECT_EQ(v->computed_tokens, 6u);
    EXPECT_EQ(v->request, a.request);
  }
  cache_stats s = c.stats();
  EXPECT_EQ(s.forks, 1u);
  EXPECT_EQ(s.active_sequences, 2u);
  EXPECT_EQ(s.blocks_referenced, before.blocks_referenced);
  EXPECT_EQ(s.blocks_free, before.blocks_free);
  EXPECT_EQ(s.copied_blocks, 0u);
  // A fork of a fully computed sequence with nothing new registers nothing.
  EXPECT_EQ(this->commit_ok(c, *f).registered_blocks, 0u);

  // The first append to the shared partial block copies it; the second writes in place.
  this->append_ok(c, a.id, {50});
  EXPECT_EQ(c.stats().copied_blocks, 1u);
  const auto ab2 = this->blocks_of(c, a.id);
  EXPECT_EQ(ab2[0], ab[0]);
  EXPECT_NE(ab2[1], ab[1]);
  EXPECT_EQ(this->blocks_of(c, *f), ab);
  this->append_ok(c, *f, {60});
  EXPECT_EQ(c.stats().copied_blocks, 1u);
  EXPECT_EQ(this->blocks_of(c, *f), ab);
  EXPECT_EQ(c.stats().blocks_free, before.blocks_free - 1);
  // Both sequences' K/V is intact: shared prefix, then each its own token.
  EXPECT_EQ(kv_errors(c, a.id, 0, 7), 0u);
  EXPECT_EQ(kv_errors(c, *f, 0, 7), 0u);

  // Fill both blocks with different tokens and commit both: one block each, no double count.
  this->append_ok(c, a.id, {51});
  this->append_ok(c, *f, {61, 62});
  EXPECT_EQ(kv_errors(c, a.id, 0, 8), 0u);
  EXPECT_EQ(kv_errors(c, *f, 0, 9), 0u);
  const commit_info ca = this->commit_ok(c, a.id);
  const commit_info cf = this->commit_ok(c, *f);
  EXPECT_EQ(ca.registered_blocks, 1u);
  EXPECT_EQ(cf.registered_blocks, 1u);
  EXPECT_EQ(ca.deduplicated_blocks + cf.deduplicated_blocks, 0u);
  s = c.stats();
  EXPECT_EQ(s.committed_blocks, 3u);
  EXPECT_EQ(s.blocks_cached, 3u);
  EXPECT_EQ(s.blocks_referenced, 4u);  // shared block 0, a's block 1, f's blocks 1 and 2
  EXPECT_EQ(c.match(concat(iota_tokens(1, 6), {50, 51, 7})), 8u);
  EXPECT_EQ(c.match(concat(iota_tokens(1, 6), {60, 61, 7})), 8u);

  this->finish_ok(c, a.id);
  s = c.stats();
  EXPECT_EQ(s.blocks_referenced, 3u);
  EXPECT_EQ(s.blocks_evictable, 1u);
  this->finish_ok(c, *f);
  s = c.stats();
  EXPECT_EQ(s.blocks_referenced, 0u);
  EXPECT_EQ(s.blocks_evictable, 3u);
  EXPECT_EQ(s.blocks_free, 13u);
  EXPECT_EQ(s.finished_sequences, 2u);
  EXPECT_EQ(c.available_blocks(), 16u);
}

TYPED_TEST(Features, ForkedSiblingsWithIdenticalContinuationsDeduplicate) {
  auto c = make_cache<typename TestFixture::lru_cache>(16, bs);
  const admission a = this->prefill(c, iota_tokens(1, 6));
  this->commit_ok(c, a.id);
  auto f = c.fork(a.id);
  ASSERT_TRUE(f.ok());
  auto g = c.fork(*f);  // a fork of a fork: three holders of the partial block
  ASSERT_TRUE(g.ok());
  const block_id tail = this->blocks_of(c, a.id)[1];
  this->append_ok(c, a.id, {7, 8});
  this->append_ok(c, *f, {7, 8});
  this->append_ok(c, *g, {7, 8});
  EXPECT_EQ(c.stats().copied_blocks, 2u);
  EXPECT_EQ(this->blocks_of(c, *g)[1], tail) << "the last holder writes in place";
  for (sequence_id id : {a.id, *f, *g})
    EXPECT_EQ(kv_errors(c, id, 0, 8), 0u);
  EXPECT_EQ(this->commit_ok(c, a.id).registered_blocks, 1u);
  const commit_info cf = this->commit_ok(c, *f);
  EXPECT_EQ(cf.registered_blocks, 0u);
  EXPECT_EQ(cf.deduplicated_blocks, 1u);
  const commit_info cg = this->commit_ok(c, *g);
  EXPECT_EQ(cg.deduplicated_blocks, 1u);
  const auto ab = this->blocks_of(c, a.id);
  EXPECT_EQ(this->blocks_of(c, *f), ab);
  EXPECT_EQ(this->blocks_of(c, *g), ab);
  const cache_stats s = c.stats();
  EXPECT_EQ(s.committed_blocks, 2u);
  EXPECT_EQ(s.deduplicated_blocks, 2u);
  EXPECT_EQ(s.blocks_cached, 2u);
  EXPECT_EQ(s.blocks_referenced, 2u);
  EXPECT_EQ(s.blocks_free, 14u);
  for (sequence_id id : {a.id, *f, *g})
    EXPECT_EQ(kv_errors(c, id, 0, 8), 0u);
  for (sequence_id id : {*g, a.id, *f})
    this->finish_ok(c, id);
  EXPECT_EQ(c.stats().blocks_evictable, 2u);
  EXPECT_EQ(c.stats().blocks_free, 14u);
}

TYPED_TEST(Features, ForkOfWholeBlocksNeedsNoCopy) {
  auto c = make_cache<typename TestFixture::lru_cache>(16, bs);
  const admission a = this->prefill(c, iota_tokens(1, 8));
  this->commit_ok(c, a.id);
  auto f = c.fork(a.id);
  ASSERT_TRUE(f.ok());
  this->append_ok(c, a.id, {9});
  this->append_ok(c, *f, {10});
  EXPECT_EQ(c.stats().copied_blocks, 0u);
  EXPECT_EQ(c.stats().blocks_referenced, 4u);
  EXPECT_EQ(kv_errors(c, a.id, 0, 9), 0u);
  EXPECT_EQ(kv_errors(c, *f, 0, 9), 0u);
  this->finish_ok(c, a.id);
  this->finish_ok(c, *f);
  EXPECT_EQ(c.stats().blocks_free, 14u);
}

TYPED_TEST(Features, ForkErrorsLeaveTheCacheUnchanged) {
  auto c = make_cache<typename TestFixture::lru_cache>(2, bs);
  const auto p = iota_tokens(1, 6);
  const admission a = this->prefill(c, p);
  const std::vector<probe> probes{{p}, {concat(p, {1})}};
  ASSERT_TRUE(c.commit(a.id, 4).ok());
  expect_rejected_unchanged(c, {a.id}, probes, errc::invalid_argument,
                            {"fork", "2 tokens", "not computed"}, [&] { return c.fork(a.id); });
  this->commit_ok(c, a.id);
  expect_rejected_unchanged(c, {a.id}, probes, errc::unknown_sequence, {"fork", "never issued"},
                            [&] { return c.fork(sequence_id{}); });
  auto f = c.fork(a.id);
  ASSERT_TRUE(f.ok());
  // The pool is full: appending to either holder of the shared partial block needs a copy.
  const std::vector<token_id> one{7};
  expect_rejected_unchanged(c, {a.id, *f}, probes, errc::out_of_blocks, {"append"},
                            [&] { return c.append(a.id, one); });
  expect_rejected_unchanged(c, {a.id, *f}, probes, errc::out_of_blocks, {"append"},
                            [&] { return c.append(*f, one); });
  this->finish_ok(c, *f);
  expect_rejected_unchanged(c, {a.id}, probes, errc::finished_sequence,
                            {"fork", "already finished"}, [&] { return c.fork(*f); });
  // Alone again, a writes its partial block in place.
  this->append_ok(c, a.id, one);
  EXPECT_EQ(c.stats().copied_blocks, 0u);
  EXPECT_EQ(kv_errors(c, a.id, 0, 7), 0u);
}

// ---- pinning
// --------------------------------------------------------------------------------------

TYPED_TEST(Features, PinnedBlocksSurviveEvictionOfEverythingElse) {
  auto c = make_cache<typename TestFixture::lru_cache>(8, bs);
  const auto sys = iota_tokens(1, 9);
  this->cache_prompt(c, sys);
  auto pin = c.pin(sys);
  ASSERT_TRUE(pin.ok()) << pin.status().message();
  KVKIT_EXPECT_INVARIANTS(c);
  EXPECT_EQ(pin->pinned_tokens, 8u);
  cache_stats s = c.stats();
  EXPECT_EQ(s.pins, 1u);
  EXPECT_EQ(s.blocks_referenced, 2u);
  EXPECT_EQ(s.blocks_evictable, 0u);
  EXPECT_EQ(c.available_blocks(), 6u);
  // Heavy pressure: every admission needs all 6 other blocks and evicts the previous one's.
  for (token_id i = 0; i < 10; ++i) {
    const auto q = iota_tokens(1000 + 100 * i, 24);
    const admission a = this->prefill(c, q);
    EXPECT_EQ(a.new_blocks, 6u);
    this->commit_ok(c, a.id);
    this->finish_ok(c, a.id);
    EXPECT_EQ(c.match(sys), 8u) << "round " << i;
  }
  s = c.stats();
  EXPECT_EQ(s.evictions, 54u);
  EXPECT_EQ(s.blocks_cached, 8u);
  const admission hit = this->prefill(c, sys);
  EXPECT_EQ(hit.cached_blocks, 2u);
  EXPECT_EQ(kv_errors(c, hit.id, 0, sys.size()), 0u) << "pinned K/V was overwritten";
  this->finish_ok(c, hit.id);
  // finish() unpins: then they go like any other block.
  this->finish_ok(c, pin->id);
  EXPECT_EQ(c.stats().finished_sequences, 13u);
  EXPECT_EQ(c.stats().blocks_referenced, 0u);
  this->admit_ok(c, iota_tokens(5000, 32));
  EXPECT_EQ(c.match(sys), 0u);
}

TYPED_TEST(Features, PinHoldsWholeCachedBlocksOnly) {
  auto c = make_cache<typename TestFixture::lru_cache>(16, bs);
  this->cache_prompt(c, iota_tokens(1, 10));  // 2 whole blocks cached
  const std::vector<token_id> diverging{1, 2, 3, 4, 5, 6, 99, 98, 97};
  const std::vector<std::pair<std::vector<token_id>, std::uint32_t>> cases{
      {iota_tokens(1, 10), 8}, {iota_tokens(1, 8), 8},  // no token is left over
      {iota_tokens(1, 7), 4},  {iota_tokens(1, 4), 4},
      {diverging, 4},  // a partial block is never pinned, even with find_partial
  };
  for (const auto& [prompt, tokens] : cases) {
    SCOPED_TRACE(testing::Message() << prompt.size() << " tokens");
    auto pin = c.pin(prompt);
    ASSERT_TRUE(pin.ok()) << pin.status().message();
    EXPECT_EQ(pin->pinned_tokens, tokens);
    EXPECT_EQ(c.stats().blocks_referenced, tokens / bs);
    EXPECT_EQ(c.stats().blocks_evictable, 2 - tokens / bs);
    const auto v = c.sequence(pin->id);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->blocks.size(), tokens / bs);
    EXPECT_EQ(v->computed_tokens, tokens);
    KVKIT_EXPECT_INVARIANTS(c);
    this->finish_ok(c, pin->id);
    EXPECT_EQ(c.stats().blocks_evictable, 2u);
    EXPECT_EQ(c.finish(pin->id).code(), errc::finished_sequence);
  }
  EXPECT_EQ(c.stats().pins, cases.size());
  EXPECT_EQ(c.stats().copied_blocks, 0u);
}

TYPED_TEST(Features, PinErrorsLeaveTheCacheUnchanged) {
  auto c = make_cache<typename TestFixture::lru_cache>(16, bs);
  const auto p = iota_tokens(1, 9);
  this->cache_prompt(c, p);
  const admission live = this->prefill(c, iota_tokens(50, 5));
  const std::vector<probe> probes{{p}, {p, tenant(2)}};
  expect_rejected_unchanged(c, {live.id}, probes, errc::empty_input, {"pin", "empty"},
                            [&] { return c.pin(std::span<const token_id>{}); });
  expect_rejected_unchanged(c, {live.id}, probes, errc::invalid_argument, {"pin", "no whole block"},
                            [&] { return c.pin(iota_tokens(500, 9)); });
  expect_rejected_unchanged(c, {live.id}, probes, errc::invalid_argument, {"pin"},
                            [&] { return c.pin(iota_tokens(1, 3)); });
  expect_rejected_unchanged(c, {live.id}, probes, errc::invalid_argument, {"pin"},
                            [&] { return c.pin(p, tenant(2)); });
  // Uncommitted blocks (the live sequence's) are not cached: nothing to pin.
  expect_rejected_unchanged(c, {live.id}, probes, errc::invalid_argument, {"pin"},
                            [&] { return c.pin(iota_tokens(50, 5)); });
  EXPECT_EQ(c.stats().pins, 0u);
}

// ---- invalidation -------------------------------------------------------------------------------

TYPED_TEST(Features, InvalidateTenantFreesUnreferencedBlocksAndDetachesReferencedOnes) {
  auto c = make_cache<typename TestFixture::lru_cache>(32, bs);
  const auto p = iota_tokens(1, 13);  // 3 whole blocks + 1
  const request_options t1 = tenant(1), t2 = tenant(2);
  this->cache_prompt(c, p, t1);  // a0 a1 a2, evictable
  // A live sequence of tenant 1 holds a0, a1 and its own l2 (committed), l3.
  const auto lp = concat(iota_tokens(1, 8), {500, 501, 502, 503, 504});
  const admission l = this->prefill(c, lp, t1);
  EXPECT_EQ(l.request.cached_tokens, 8u);
  this->commit_ok(c, l.id);
  const auto lblocks = this->blocks_of(c, l.id);
  this->cache_prompt(c, p, t2);  // tenant 2: its own 3 blocks
  cache_stats s = c.stats();
  ASSERT_EQ(s.blocks_cached, 7u);
  ASSERT_EQ(s.blocks_free, 32u - 8u);

  EXPECT_EQ(c.invalidate_tenant(1), 1u);  // a2 only; a0, a1, l2 are referenced
  KVKIT_EXPECT_INVARIANTS(c);
  s = c.stats();
  EXPECT_EQ(s.invalidated_blocks, 1u);
  // a0, a1 and l2 stay with the live sequence but are no longer cached (never hit again):
  // only tenant 2's three blocks count.
  EXPECT_EQ(s.blocks_cached, 3u);
  EXPECT_EQ(s.blocks_free, 25u);
  EXPECT_EQ(s.blocks_referenced, 4u);
  // Tenant 1 hits nothing any more; tenant 2 is untouched.
  EXPECT_EQ(c.match(p, t1), 0u);
  EXPECT_EQ(c.match(lp, t1), 0u);
  EXPECT_EQ(c.match(p, t2), 12u);
  // The live sequence keeps its blocks and K/V, and goes on.
  EXPECT_EQ(this->blocks_of(c, l.id), lblocks);
  EXPECT_EQ(kv_errors(c, l.id, 0, lp.size(), 1), 0u);
  this->append_ok(c, l.id, {600, 601, 602}, 1);
  this->commit_ok(c, l.id);
  EXPECT_EQ(kv_errors(c, l.id, 0, lp.size() + 3, 1), 0u);
  EXPECT_EQ(c.match(concat(lp, {600, 601, 602, 603}), t1), 0u);

  // A new request of tenant 1 starts afresh, and is cached and hit again.
  const admission n = this->prefill(c, p, t1);
  EXPECT_EQ(n.request.cached_tokens, 0u);
  const commit_info nc = this->commit_ok(c, n.id);
  EXPECT_EQ(nc.registered_blocks, 3u);
  EXPECT_EQ(nc.deduplicated_blocks, 0u);
  for (std::size_t k = 0; k < 2; ++k)
    EXPECT_NE(this->blocks_of(c, n.id)[k], lblocks[k]);
  this->finish_ok(c, n.id);
  EXPECT_EQ(c.match(p, t1), 12u);
  const cache_stats before_finish = c.stats();

  // Releasing the detached blocks frees them (counted as invalidated), not makes them evictable.
  this->finish_ok(c, l.id);
  s = c.stats();
  EXPECT_EQ(s.invalidated_blocks, 1u + 4u);    // a0, a1, l2, l3 (filled and committed)
  EXPECT_EQ(before_finish.blocks_cached, 6u);  // the detached blocks were not counted
  EXPECT_EQ(s.blocks_cached, before_finish.blocks_cached);
  EXPECT_EQ(s.blocks_evictable, 6u);  // tenant 1's new 3 and tenant 2's 3
  EXPECT_EQ(s.blocks_referenced, 0u);
  EXPECT_EQ(s.blocks_free, 32u - 6u);
  EXPECT_EQ(c.match(p, t1), 12u);
  EXPECT_EQ(c.match(p, t2), 12u);
}

TYPED_TEST(Features, InvalidateSessionKeyAndPredicateSelectTheirNamespacesOnly) {
  auto c = make_cache<typename TestFixture::lru_cache>(64, bs);
  const auto p = iota_tokens(1, 9);  // 2 cached blocks per namespace
  const std::vector<std::uint64_t> v42{7, 42}, v43{7, 43};
  std::vector<request_options> ns(6);
  ns[0].session_id = 5;
  ns[1].session_id = 6;
  ns[2].tenant_salt = 3;
  ns[2].session_id = 5;  // session 5 of another tenant
  ns[3].extra_keys = v42;
  ns[4].extra_keys = v43;
  ns[5].tenant_salt = 3;  // tenant 3, no session, no keys
  for (const auto& o : ns)
    this->cache_prompt(c, p, o);
  ASSERT_EQ(c.stats().blocks_cached, 12u);
  const auto hits = [&] {
    std::vector<std::uint32_t> m;
    for (const auto& o : ns)
      m.push_back(c.match(p, o));
    return m;
  };
  using v = std::vector<std::uint32_t>;
  EXPECT_EQ(hits(), (v{8, 8, 8, 8, 8, 8}));

  EXPECT_EQ(c.invalidate_session(5), 4u);  // both tenants' session 5
  KVKIT_EXPECT_INVARIANTS(c);
  EXPECT_EQ(hits(), (v{0, 8, 0, 8, 8, 8}));
  EXPECT_EQ(c.invalidate_session(5), 0u);
  EXPECT_EQ(c.invalidate_key(42), 2u);
  KVKIT_EXPECT_INVARIANTS(c);
  EXPECT_EQ(hits(), (v{0, 8, 0, 0, 8, 8}));
  EXPECT_EQ(c.invalidate_key(999), 0u);
  std::vector<std::uint64_t> seen_salts;
  EXPECT_EQ(c.invalidate_if([&](std::uint64_t salt, std::uint64_t session,
                                std::span<const std::uint64_t> keys) {
    seen_salts.push_back(salt);
    return salt == 3 && session == 0 && keys.empty();
  }),
            2u);
  KVKIT_EXPECT_INVARIANTS(c);
  EXPECT_EQ(hits(), (v{0, 8, 0, 0, 8, 0}));
  EXPECT_EQ(seen_salts.size(), 3u) << "the predicate sees every live namespace once";
  const cache_stats s = c.stats();
  EXPECT_EQ(s.invalidated_blocks, 8u);
  EXPECT_EQ(s.blocks_cached, 4u);
  EXPECT_EQ(s.blocks_free, 60u);
  // Nothing left to select: no change at all.
  const cache_snapshot before = snapshot(c, {}, std::vector<probe>{{p, ns[1]}, {p, ns[4]}});
  EXPECT_EQ(c.invalidate_tenant(77), 0u);
  EXPECT_EQ(c.invalidate_if([](auto, auto, auto) { return false; }), 0u);
  EXPECT_TRUE(snapshot(c, {}, std::vector<probe>{{p, ns[1]}, {p, ns[4]}}) == before);
}

// Invalidating a namespace that no live sequence uses must release its slot exactly once: two
// later namespaces must not share it.
TYPED_TEST(Features, NamespacesCreatedAfterAnInvalidationStayApart) {
  auto c = make_cache<typename TestFixture::lru_cache>(16, bs);
  const auto p = iota_tokens(1, 9);
  this->cache_prompt(c, p, tenant(1));
  EXPECT_EQ(c.invalidate_tenant(1), 2u);
  KVKIT_EXPECT_INVARIANTS(c);
  const admission b = this->prefill(c, p, tenant(2));
  this->commit_ok(c, b.id);
  const admission d = this->prefill(c, iota_tokens(50, 9), tenant(3));
  KVKIT_EXPECT_INVARIANTS(c);
  EXPECT_EQ(c.match(p, tenant(2)), 8u);
  this->commit_ok(c, d.id);
  EXPECT_EQ(c.match(iota_tokens(50, 9), tenant(3)), 8u);
  EXPECT_EQ(c.match(p, tenant(3)), 0u);
  this->finish_ok(c, b.id);
  this->finish_ok(c, d.id);
  EXPECT_EQ(c.match(p, tenant(2)), 8u);
}

// ---- expiry
// -----------------------------------------------------------------------------------------

template <class Cache>
Cache make_ttl_cache(std::uint32_t blocks, const std::uint64_t* clock, std::uint64_t ttl) {
  return make_cache<Cache>(blocks, bs, 42, typename Cache::eviction_options{clock, ttl});
}

TYPED_TEST(Features, ExpiredBlocksAreNeverHitAndACommitReplacesThem) {
  std::uint64_t now = 0;
  auto c = make_ttl_cache<typename TestFixture::ttl_cache>(32, &now, 10);
  const auto p = iota_tokens(1, 13);
  this->cache_prompt(c, p);       // released at 0
  const std::uint32_t full = 12;  // 13 tokens: every whole block
  now = 9;
  EXPECT_EQ(c.match(p), full);
  now = 10;
  EXPECT_EQ(c.match(p), 0u);
  EXPECT_EQ(c.match(concat(iota_tokens(1, 6), {0, 0})), 0u) << "no partial reuse of expired";
  const admission a = this->prefill(c, p);
  EXPECT_EQ(a.request.cached_tokens, 0u);
  EXPECT_EQ(c.stats().misses, 2u);
  EXPECT_EQ(c.stats().blocks_cached, 3u) << "expired blocks stay until expire() or a commit";
  const commit_info ci = this->commit_ok(c, a.id);
  EXPECT_EQ(ci.registered_blocks, 3u);
  EXPECT_EQ(ci.deduplicated_blocks, 0u);
  cache_stats s = c.stats();
  EXPECT_EQ(s.expired_blocks, 3u) << "the expired chain was replaced";
  EXPECT_EQ(s.blocks_cached, 3u);
  EXPECT_EQ(s.blocks_free, 32u - 4u);
  EXPECT_EQ(c.eviction().forgotten(), 3u);
  EXPECT_EQ(c.match(p), full) << "referenced blocks never expire";
  now = 100;
  EXPECT_EQ(c.match(p), full);
  this->finish_ok(c, a.id);
  now = 109;
  const admission b = this->prefill(c, p);
  EXPECT_EQ(b.request.cached_tokens, full);
  EXPECT_EQ(kv_errors(c, b.id, 0, p.size()), 0u);
  this->finish_ok(c, b.id);
  now = 119;
  EXPECT_EQ(c.match(p), 0u);
  EXPECT_EQ(c.expire(), 3u);
  EXPECT_EQ(c.stats().expired_blocks, 6u);
  EXPECT_EQ(c.stats().blocks_cached, 0u);
  EXPECT_EQ(c.stats().blocks_free, 32u);
}

TYPED_TEST(Features, ExpireFreesExactlyTheExpiredBlocks) {
  std::uint64_t now = 0;
  auto c = make_ttl_cache<typename TestFixture::ttl_cache>(32, &now, 10);
  const auto a = iota_tokens(100, 9), b = iota_tokens(200, 9), l = iota_tokens(300, 9);
  const auto x = iota_tokens(400, 9);
  this->cache_prompt(c, a);  // a1, a0 released at 0
  const admission live = this->prefill(c, l);
  this->commit_ok(c, live.id);
  // A parent released after its child: x1 at 0, x0 at 6.
  const admission xs = this->prefill(c, iota_tokens(400, 5));
  this->commit_ok(c, xs.id);
  this->cache_prompt(c, x);
  now = 5;
  this->cache_prompt(c, b);  // b1, b0 released at 5
  now = 6;
  this->finish_ok(c, xs.id);
  const cache_stats before = c.stats();
  ASSERT_EQ(before.blocks_cached, 8u);

  now = 10;  // a's two blocks and x1 expired
  EXPECT_EQ(c.match(a), 0u);
  EXPECT_EQ(c.match(x), 4u);
  EXPECT_EQ(c.match(b), 8u);
  EXPECT_EQ(c.expire(), 3u);
  KVKIT_EXPECT_INVARIANTS(c);
  cache_stats s = c.stats();
  EXPECT_EQ(s.expired_blocks, 3u);
  EXPECT_EQ(s.blocks_cached, 5u);
  EXPECT_EQ(s.blocks_free, before.blocks_free + 3);
  EXPECT_EQ(s.evictions, 0u);
  EXPECT_EQ(c.match(x), 4u);
  EXPECT_EQ(c.match(b), 8u);
  EXPECT_EQ(c.match(l), 8u);
  EXPECT_EQ(c.expire(), 0u) << "nothing else expired yet";

  now = 1000;                 // everything unreferenced
  EXPECT_EQ(c.expire(), 3u);  // b's 2 and x0; never the live sequence's
  EXPECT_EQ(c.match(l), 8u);
  this->finish_ok(c, live.id);  // released at 1000
  now = 1009;
  EXPECT_EQ(c.expire(), 0u);
  now = 1010;
  EXPECT_EQ(c.expire(), 2u);
  s = c.stats();
  EXPECT_EQ(s.expired_blocks, 8u);
  EXPECT_EQ(s.blocks_cached, 0u);
  EXPECT_EQ(s.blocks_free, 32u);
  EXPECT_EQ(s.evictions, 0u);
  KVKIT_EXPECT_INVARIANTS(c);
}

TYPED_TEST(Features, PartialReuseNeverCopiesAnExpiredSource) {
  std::uint64_t now = 0;
  auto c = make_ttl_cache<typename TestFixture::ttl_cache>(32, &now, 10);
  // p0 released at 6, p1 at 0.
  const admission hold = this->prefill(c, iota_tokens(1, 5));
  this->commit_ok(c, hold.id);
  this->cache_prompt(c, iota_tokens(1, 9));
  now = 6;
  this->finish_ok(c, hold.id);
  const std::vector<token_id> q{1, 2, 3, 4, 5, 6, 99, 98, 97};
  now = 9;
  EXPECT_EQ(c.match(q), TestFixture::partial ? 6u : 4u);
  now = 10;
  EXPECT_EQ(c.match(q), 4u);
  const admission a = this->prefill(c, q);
  EXPECT_EQ(a.request.cached_tokens, 4u);
  EXPECT_EQ(c.stats().copied_blocks, 0u);
  EXPECT_EQ(kv_errors(c, a.id, 0, q.size()), 0u);
}

// ---- leaf-only eviction candidates -------------------------------------------------------------

TYPED_TEST(Features, LeavesOnlyPolicySeesLeavesAndThenTheirParents) {
  auto c = make_cache<typename TestFixture::leaf_cache>(8, bs);
  const auto& pol = c.eviction();
  this->cache_prompt(c, iota_tokens(1, 13));  // blocks 0 -> 1 -> 2
  EXPECT_TRUE(pol.contains(2));
  EXPECT_FALSE(pol.contains(1));
  EXPECT_FALSE(pol.contains(0));
  EXPECT_EQ(pol.size(), 1u);
  EXPECT_EQ(c.stats().blocks_evictable, 3u);
  // A sibling of block 2 under block 1.
  const auto q = concat(iota_tokens(1, 8), {50, 51, 52, 53, 60});
  this->cache_prompt(c, q);  // block 3 (registered), block 4 (freed)
  EXPECT_TRUE(pol.contains(3));
  EXPECT_EQ(pol.size(), 2u);
  EXPECT_EQ(c.stats().blocks_free, 4u);
  struct step {
    std::size_t tokens;  // of a prompt that is admitted and then dropped uncommitted
    block_id evicted;    // the victim
    std::vector<block_id> candidates;
  };
  const std::vector<step> steps{
      {17, 3, {2}},  // 4 free + 1: block 3 goes; block 1 still has a child
      {21, 2, {1}},  // block 1 is now a leaf: offered
      {25, 1, {0}},
      {29, 0, {}},
  };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "step " << i);
    const admission a =
        this->admit_ok(c, iota_tokens(1000 + 100 * static_cast<token_id>(i), steps[i].tokens));
    const cache_stats s = c.stats();
    EXPECT_EQ(s.evictions, i + 1);
    EXPECT_EQ(s.cascade_evictions, 0u);
    std::vector<block_id> now;
    for (block_id b = 0; b < 8; ++b) {
      if (pol.contains(b))
        now.push_back(b);
    }
    EXPECT_EQ(now, steps[i].candidates);
    const auto blocks = this->blocks_of(c, a.id);
    EXPECT_NE(std::find(blocks.begin(), blocks.end(), steps[i].evicted), blocks.end());
    this->finish_ok(c, a.id);
  }
  EXPECT_EQ(pol.violations(), 0u);
}

// Random workload with a small pool: admissions (many sharing prefixes), partial commits,
// appends, forks, finishes. A leaf-only policy must never cause a cascade, every hit's K/V must
// be right and the invariants must hold throughout.
TYPED_TEST(Features, LeavesOnlyRandomWorkloadNeverCascades) {
  auto c = make_cache<typename TestFixture::leaf_cache>(16, bs);
  std::mt19937 rng(2024);
  std::vector<std::vector<token_id>> shared;  // whole blocks prompts are built from
  for (token_id i = 0; i < 6; ++i)
    shared.push_back(iota_tokens(10 * i + 1, bs));
  struct live_seq {
    sequence_id id;
    std::size_t written;
  };
  std::vector<live_seq> live;
  token_id fresh = 100000;
  std::uint64_t hits = 0;
  for (int step = 0; step < 800; ++step) {
    const int op = static_cast<int>(rng() % 100);
    if (op < 40 || live.empty()) {
      std::vector<token_id> prompt;
      const std::size_t nshared = rng() % 4;
      for (std::size_t k = 0; k < nshared; ++k) {
        const auto& blk = shared[(k == 0 ? 0 : rng() % 3) + k];
        prompt.insert(prompt.end(), blk.begin(), blk.end());
      }
      const std::size_t tail = 1 + rng() % 7;
      for (std::size_t k = 0; k < tail; ++k) {
        prompt.push_back(rng() % 3 == 0 ? fresh++ : static_cast<token_id>(rng() % 4));
      }
      auto r = c.admit(prompt);
      if (!r.ok()) {
        ASSERT_EQ(r.code(), errc::out_of_blocks) << r.status().message();
        const std::size_t i = rng() % live.size();
        ASSERT_TRUE(c.finish(live[i].id).ok());
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        hits += r->request.cached_tokens;
        ASSERT_EQ(kv_errors(c, r->id, 0, r->request.cached_tokens), 0u) << "step " << step;
        write_kv(c, r->id, r->request.cached_tokens, prompt.size());
        live.push_back({r->id, prompt.size()});
      }
    } else if (op < 60) {
      live_seq& s = live[rng() % live.size()];
      const auto v = c.sequence(s.id);
      ASSERT_TRUE(v.ok());
      const auto n = static_cast<std::uint32_t>(v->computed_tokens +
                                                rng() % (s.written - v->computed_tokens + 1));
      ASSERT_TRUE(c.commit(s.id, n).ok());
    } else if (op < 72) {
      live_seq& s = live[rng() % live.size()];
      const std::vector<token_id> more{static_cast<token_id>(rng() % 4),
                                       static_cast<token_id>(rng() % 4)};
      if (c.append(s.id, more).ok()) {
        write_kv(c, s.id, s.written, s.written + 2);
        s.written += 2;
      }
    } else if (op < 80) {
      const live_seq s = live[rng() % live.size()];
      if (c.commit(s.id).ok()) {
        auto f = c.fork(s.id);
        ASSERT_TRUE(f.ok()) << f.status().message();
        live.push_back({*f, s.written});
      }
    } else {
      const std::size_t i = rng() % live.size();
      ASSERT_TRUE(c.finish(live[i].id).ok());
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    }
    const status inv = c.check_invariants();
    ASSERT_TRUE(inv.ok()) << "step " << step << ": " << inv.message();
    for (const live_seq& s : live) {
      ASSERT_EQ(kv_errors(c, s.id, 0, s.written), 0u) << "step " << step;
    }
    ASSERT_EQ(c.stats().cascade_evictions, 0u) << "step " << step;
    ASSERT_EQ(c.eviction().violations(), 0u) << "step " << step;
  }
  const cache_stats s = c.stats();
  EXPECT_GT(s.evictions, 50u);
  EXPECT_GT(hits, 100u);
  EXPECT_GT(s.forks, 10u);
}

// Invalidation frees whole unreferenced subtrees; with a leaf-only policy, only the leaves among
// them are candidates, so only those may be erased from the policy.
TYPED_TEST(Features, LeavesOnlyInvalidationErasesOnlyCandidates) {
  auto c = make_cache<typename TestFixture::leaf_cache>(16, bs);
  this->cache_prompt(c, iota_tokens(1, 13), tenant(1));  // a chain of 3 cached blocks
  this->cache_prompt(c, iota_tokens(1, 13), tenant(2));
  ASSERT_EQ(c.eviction().size(), 2u);
  EXPECT_EQ(c.invalidate_tenant(1), 3u);
  EXPECT_EQ(c.eviction().violations(), 0u) << "a block that was never a candidate was erased";
  EXPECT_EQ(c.eviction().size(), 1u);
  KVKIT_EXPECT_INVARIANTS(c);
  EXPECT_EQ(c.match(iota_tokens(1, 13), tenant(2)), 12u);
}

// ---- metrics ------------------------------------------------------------------------------------

TYPED_TEST(Features, PerClassStatsAreExact) {
  auto c = make_cache<typename TestFixture::lru_cache>(32, bs);
  const auto with_class = [](std::uint32_t k) {
    request_options o;
    o.request_class = k;
    return o;
  };
  const auto p = iota_tokens(1, 9);
  this->cache_prompt(c, p, with_class(0));                                  // miss, 9
  this->cache_prompt(c, p, with_class(1));                                  // 8 of 9
  this->cache_prompt(c, iota_tokens(300, 3), with_class(1));                // short miss, 3
  this->cache_prompt(c, concat(iota_tokens(1, 8), {7, 7}), with_class(5));  // 8 of 10
  this->cache_prompt(c, p, with_class(5));                                  // 8 of 9
  this->cache_prompt(c, iota_tokens(700, 6), with_class(5));                // miss, 6
  EXPECT_EQ(c.stats(0), (class_stats{1, 9, 0, 1, {.never_stored = 1}}));
  EXPECT_EQ(c.stats(1), (class_stats{2, 12, 8, 1, {.full_hit = 1, .partial_last_block = 1}}));
  EXPECT_EQ(
      c.stats(5),
      (class_stats{3, 25, 16, 1, {.full_hit = 1, .never_stored = 1, .partial_last_block = 1}}));
  EXPECT_EQ(c.stats(2), class_stats{});
  EXPECT_EQ(c.stats(max_request_classes - 1), class_stats{});
  EXPECT_EQ(c.stats(max_request_classes + 7), class_stats{});
  const cache_stats s = c.stats();
  EXPECT_EQ(s.queries, 6u);
  EXPECT_EQ(s.query_tokens, 46u);
  EXPECT_EQ(s.hit_tokens, 24u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_DOUBLE_EQ(c.stats(5).token_hit_rate(), 16.0 / 25.0);
}

TYPED_TEST(Features, RequestClassOutOfRangeIsRejected) {
  auto c = make_cache<typename TestFixture::lru_cache>(16, bs);
  const auto p = iota_tokens(1, 9);
  this->cache_prompt(c, p);
  const admission live = this->prefill(c, iota_tokens(40, 6));
  request_options bad;
  bad.request_class = max_request_classes;
  expect_rejected_unchanged(c, {live.id}, {{p}}, errc::invalid_argument,
                            {"request_class = 1024", "0 to 1023"}, [&] { return c.admit(p, bad); });
  bad.request_class = 0xFFFFFFFFu;
  expect_rejected_unchanged(c, {live.id}, {{p}}, errc::invalid_argument,
                            {"request_class = 4294967295", "0 to 1023"},
                            [&] { return c.admit(p, bad); });
  request_options top;
  top.request_class = max_request_classes - 1;
  const admission a = this->prefill(c, p, top);
  EXPECT_EQ(a.request.cached_tokens, 8u);
  EXPECT_EQ(c.stats(max_request_classes - 1), (class_stats{1, 9, 8, 0, {.full_hit = 1}}));
}

TYPED_TEST(Features, FollowUpTurnsCountAsConversationalHits) {
  auto c = make_cache<typename TestFixture::lru_cache>(32, bs);
  request_options session;
  session.session_id = 9;
  const auto system = iota_tokens(1, 4);  // one whole block of system prompt
  const auto turn1 = concat(system, {5, 6});
  const std::vector<token_id> answer{50, 51, 52, 53, 54, 55};
  const admission a = this->prefill(c, turn1, session);
  this->commit_ok(c, a.id);
  this->append_ok(c, a.id, answer);
  this->commit_ok(c, a.id);
  this->finish_ok(c, a.id);  // blocks: [1..4] prompt; [5 6 50 51], [52..55] hold generated tokens
  EXPECT_EQ(c.stats().conversational_hits, 0u);

  // The next turn: the previous prompt, the answer and a new message.
  const auto turn2 = concat(concat(turn1, answer), {70, 71, 72});
  const admission b = this->prefill(c, turn2, session);
  EXPECT_EQ(b.request.cached_tokens, 12u);
  EXPECT_EQ(c.stats().conversational_hits, 1u);
  EXPECT_EQ(kv_errors(c, b.id, 0, turn2.size(), 0), 0u);
  this->finish_ok(c, b.id);

  // A new conversation sharing the system prompt only: a hit, not a conversational one.
  const admission d = this->prefill(c, concat(system, {80, 81, 82, 83, 84}), session);
  EXPECT_EQ(d.request.cached_tokens, 4u);
  EXPECT_EQ(c.stats().conversational_hits, 1u);
  this->finish_ok(c, d.id);
  // Another session shares nothing.
  EXPECT_EQ(c.match(turn2), 0u);
  EXPECT_EQ(c.stats().queries, 3u);
  EXPECT_DOUBLE_EQ(c.stats().conversational_hit_rate(), 1.0 / 3.0);
}

// A partial-block copy that reuses only prompt tokens of an earlier turn (it diverges before the
// generated ones) reuses no generated token.
TYPED_TEST(Features, PartialReuseOfPromptTokensIsNotConversational) {
  auto c = make_cache<typename TestFixture::lru_cache>(32, bs);
  const auto turn1 = iota_tokens(1, 6);
  const admission a = this->prefill(c, turn1);
  this->append_ok(c, a.id, {50, 51, 52, 53, 54, 55});
  this->commit_ok(c, a.id);
  this->finish_ok(c, a.id);  // block 1 = [5 6 | 50 51]: prompt tokens, then generated ones
  const admission b = this->prefill(c, {1, 2, 3, 4, 5, 6, 90, 91, 92});
  EXPECT_EQ(b.request.cached_tokens, TestFixture::partial ? 6u : 4u);
  EXPECT_EQ(c.stats().conversational_hits, 0u) << "tokens 5 and 6 were prompt tokens";
  // Reusing a generated token is conversational.
  const admission d = this->prefill(c, {1, 2, 3, 4, 5, 6, 50, 91, 92});
  EXPECT_EQ(d.request.cached_tokens, TestFixture::partial ? 7u : 4u);
  EXPECT_EQ(c.stats().conversational_hits, TestFixture::partial ? 1u : 0u);
}

}  // namespace
}  // namespace kvkit::test
