// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The core's seams for the features that build on it: each cached block's chained content key,
// the listener told about every block stored and removed (and clear()), and clear() itself.

#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/eviction/ttl.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/matcher/radix.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "support/cache_testing.hpp"

namespace kvkit::test {
namespace {

constexpr std::uint32_t bs = 4;
constexpr std::uint64_t seed = 99;

/// Everything a listener was told, in order.
struct event_log {
  struct event {
    char kind = 0;  // 's' stored, 'r' removed, 'c' cleared
    block_id block = invalid_block;
    std::uint64_t key = 0;
    std::uint64_t parent_key = 0;
    std::vector<token_id> tokens;
    std::uint64_t salt = 0;
    std::vector<std::uint64_t> extra_keys;
    removal_reason reason = removal_reason::evicted;
    float first_value = 0;  // K/V of the block's first token, layer 0 (host storage)
  };
  std::vector<event> events;
  std::map<block_id, std::uint64_t> live;  // stored and not removed: block -> key
};

/// A listener recording into a shared log (the cache owns the listener; the test keeps the log).
struct recording_listener {
  std::shared_ptr<event_log> log = std::make_shared<event_log>();
  const host_storage<float>* storage = nullptr;  // to read K/V while a removed block still has it

  event_log::event record(char kind, const block_event& e) const {
    event_log::event ev;
    ev.kind = kind;
    ev.block = e.block;
    ev.key = e.key;
    ev.parent_key = e.parent_key;
    ev.tokens.assign(e.tokens.begin(), e.tokens.end());
    ev.salt = e.tenant_salt;
    ev.extra_keys.assign(e.extra_keys.begin(), e.extra_keys.end());
    if (storage != nullptr)
      ev.first_value = storage->block(0, 0, e.block)[0];
    return ev;
  }
  void on_stored(const block_event& e) {
    log->events.push_back(record('s', e));
    EXPECT_TRUE(log->live.emplace(e.block, e.key).second) << "block " << e.block << " stored twice";
  }
  void on_removed(const block_event& e, removal_reason why) {
    auto ev = record('r', e);
    ev.reason = why;
    log->events.push_back(ev);
    const auto it = log->live.find(e.block);
    ASSERT_NE(it, log->live.end()) << "block " << e.block << " removed but never stored";
    EXPECT_EQ(it->second, e.key) << "a removed block's key differs from its stored key";
    log->live.erase(it);
  }
  void on_cleared() {
    event_log::event ev;
    ev.kind = 'c';
    log->events.push_back(ev);
  }
};

static_assert(listener_has_on_stored<recording_listener>);
static_assert(listener_has_on_removed<recording_listener>);
static_assert(listener_has_on_cleared<recording_listener>);
static_assert(!listener_traits<no_listener>::active, "the default listener is told nothing");

using listened_cache = prefix_cache<free_list_allocator, hash_matcher, lru_eviction,
                                    host_storage<float>, recording_listener>;
using plain_cache =
    prefix_cache<free_list_allocator, hash_matcher, lru_eviction, host_storage<float>>;

template <class Cache>
Cache make(std::uint32_t num_blocks) {
  return make_cache<Cache>(num_blocks, bs, seed);
}

/// Writes value @p v into the first K element of every token of @p seq's uncomputed blocks.
template <class Cache>
void write_kv(Cache& c, sequence_id seq, float v) {
  auto view = c.sequence(seq);
  ASSERT_TRUE(view.ok());
  for (std::size_t t = view->computed_tokens; t < view->tokens.size(); ++t)
    c.storage().block(0, 0, view->blocks[t / bs])[(t % bs) * 2 * 4] = v;
}

/// The content key of the @p k-th block of @p prompt, computed independently of the cache.
std::uint64_t expected_key(std::span<const token_id> prompt, std::uint32_t k,
                           std::uint64_t salt = 0, std::uint64_t session = 0) {
  const xxh3_hasher h(seed);
  std::uint64_t key = h.root(salt, session, {});
  for (std::uint32_t i = 0; i <= k; ++i)
    key = h.chain(key, prompt.subspan(std::size_t{i} * bs, bs));
  return key;
}

TEST(Seams, BlockKeyIsTheChainedContentKey) {
  plain_cache c = make<plain_cache>(32);
  const auto p = iota_tokens(1, 13);  // 3 whole blocks + 1
  const request_options t5{.tenant_salt = 5};
  for (const request_options& o : {request_options{}, t5}) {
    auto a = c.admit(p, o);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(c.commit(a->id).ok());
    const auto blocks = c.sequence(a->id)->blocks;
    for (std::uint32_t k = 0; k < 3; ++k)
      EXPECT_EQ(c.block_key(blocks[k]), expected_key(p, k, o.tenant_salt)) << "block " << k;
    EXPECT_EQ(c.block_key(blocks[3]), 0u) << "a partial, uncommitted block has no key";
    ASSERT_TRUE(c.finish(a->id).ok());
  }
  EXPECT_NE(expected_key(p, 0), expected_key(p, 0, 5)) << "the tenant salt roots the chain";
  EXPECT_EQ(c.block_key(31), 0u) << "a free block has no key";
  EXPECT_TRUE(c.check_invariants().ok()) << c.check_invariants().message();
}

TEST(Seams, ListenerSeesEveryStoreAndRemovalInOrder) {
  listened_cache c = make<listened_cache>(6);
  c.listener().storage = &c.storage();
  const auto log = c.listener().log;
  const auto a = iota_tokens(1, 9);    // 2 whole blocks + 1
  const auto b = iota_tokens(100, 9);  // 2 whole blocks + 1, unrelated

  auto sa = c.admit(a);
  ASSERT_TRUE(sa.ok());
  write_kv(c, sa->id, 7.0f);
  ASSERT_TRUE(c.commit(sa->id).ok());
  ASSERT_EQ(log->events.size(), 2u) << "two blocks stored";
  for (std::uint32_t k = 0; k < 2; ++k) {
    const auto& e = log->events[k];
    EXPECT_EQ(e.kind, 's');
    EXPECT_EQ(e.block, c.sequence(sa->id)->blocks[k]);
    EXPECT_EQ(e.key, c.block_key(e.block));
    EXPECT_EQ(e.key, expected_key(a, k));
    EXPECT_EQ(e.parent_key, k == 0 ? xxh3_hasher(seed).root(0, 0, {}) : log->events[0].key);
    EXPECT_EQ(e.tokens, std::vector<token_id>(a.begin() + k * bs, a.begin() + (k + 1) * bs));
  }
  ASSERT_TRUE(c.finish(sa->id).ok());

  // b needs 3 of the 4 free blocks (a's two are cached, evictable); a third prompt, with b still
  // live, finds one free block and evicts a's two, the child first.
  auto sb = c.admit(b);
  ASSERT_TRUE(sb.ok());
  ASSERT_TRUE(c.commit(sb->id).ok());
  auto sb2 = c.admit(iota_tokens(200, 9));
  ASSERT_TRUE(sb2.ok());
  std::vector<const event_log::event*> removed;
  for (const auto& e : log->events)
    if (e.kind == 'r')
      removed.push_back(&e);
  ASSERT_EQ(removed.size(), 2u);
  for (const auto* e : removed) {
    EXPECT_EQ(e->reason, removal_reason::evicted);
    EXPECT_EQ(e->first_value, 7.0f) << "the K/V bytes are still there while the listener runs";
  }
  EXPECT_EQ(removed[0]->key, expected_key(a, 1)) << "the child goes first";
  EXPECT_EQ(removed[1]->key, expected_key(a, 0));
  // What the listener holds as stored is exactly what the cache holds as cached.
  EXPECT_EQ(log->live.size(), c.stats().blocks_cached);
  EXPECT_TRUE(c.check_invariants().ok()) << c.check_invariants().message();
}

TEST(Seams, RemovalReasonsAndClear) {
  using ttl_cache = prefix_cache<free_list_allocator, radix_matcher, ttl_eviction,
                                 host_storage<float>, recording_listener>;
  auto now = std::make_shared<std::int64_t>(0);
  ttl_options o;
  o.ttl = std::chrono::nanoseconds(10);
  o.now = [now] {
    return std::chrono::nanoseconds(*now);
  };
  ttl_cache c = make_cache<ttl_cache>(64, bs, seed, o);
  const auto log = c.listener().log;
  const auto reasons = [&] {
    std::multiset<removal_reason> r;
    for (const auto& e : log->events)
      if (e.kind == 'r')
        r.insert(e.reason);
    return r;
  };
  const auto run = [&](std::span<const token_id> p, const request_options& ro) {
    auto s = c.admit(p, ro);
    EXPECT_TRUE(s.ok());
    EXPECT_TRUE(c.commit(s->id).ok());
    return s->id;
  };
  // Expired: cached, released, idle past the time to live.
  const sequence_id e1 = run(iota_tokens(1, 9), {});
  ASSERT_TRUE(c.finish(e1).ok());
  *now = 100;
  EXPECT_EQ(c.expire(), 2u);
  EXPECT_EQ(reasons().count(removal_reason::expired), 2u);

  // Invalidated now (unreferenced) and released later (referenced at invalidation).
  const sequence_id i1 = run(iota_tokens(20, 9), {.tenant_salt = 3});
  ASSERT_TRUE(c.finish(i1).ok());
  const sequence_id held = run(iota_tokens(40, 9), {.tenant_salt = 3});
  EXPECT_EQ(c.invalidate_tenant(3), 2u);
  EXPECT_EQ(reasons().count(removal_reason::invalidated), 2u);
  EXPECT_EQ(reasons().count(removal_reason::released), 0u);
  EXPECT_EQ(c.stats().blocks_cached, 0u) << "held blocks of an invalidated tenant are not cached";
  ASSERT_TRUE(c.finish(held).ok());
  EXPECT_EQ(reasons().count(removal_reason::released), 2u);

  // clear(): one on_cleared, then every unreferenced cached block removed as cleared.
  const sequence_id k1 = run(iota_tokens(60, 9), {});
  ASSERT_TRUE(c.finish(k1).ok());
  const sequence_id k2 = run(iota_tokens(80, 13), {.tenant_salt = 9});
  ASSERT_TRUE(c.finish(k2).ok());
  const std::size_t before = log->events.size();
  EXPECT_EQ(c.clear(), 5u);
  ASSERT_GT(log->events.size(), before);
  EXPECT_EQ(log->events[before].kind, 'c') << "on_cleared comes first";
  EXPECT_EQ(reasons().count(removal_reason::cleared), 5u);
  EXPECT_EQ(c.stats().blocks_cached, 0u);
  EXPECT_EQ(c.stats().invalidated_blocks, 2u + 2u + 5u);
  EXPECT_TRUE(log->live.empty()) << "every stored block was reported removed";
  EXPECT_EQ(c.match(iota_tokens(60, 9)), 0u);
  EXPECT_TRUE(c.check_invariants().ok()) << c.check_invariants().message();
}

TEST(Seams, ClearKeepsReferencedBlocksWithTheirSequences) {
  plain_cache c = make<plain_cache>(16);
  const auto p = iota_tokens(1, 9);
  auto live = c.admit(p);
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(c.commit(live->id).ok());
  auto done = c.admit(iota_tokens(50, 9));
  ASSERT_TRUE(done.ok());
  ASSERT_TRUE(c.commit(done->id).ok());
  ASSERT_TRUE(c.finish(done->id).ok());
  EXPECT_EQ(c.clear(), 2u);  // the finished prompt's two blocks
  const cache_stats s = c.stats();
  EXPECT_EQ(s.blocks_cached, 0u);
  EXPECT_EQ(s.blocks_referenced, 3u);  // the live sequence keeps its blocks
  EXPECT_EQ(c.match(concat(p, {99})), 0u) << "nothing cleared is hit again";
  ASSERT_TRUE(c.finish(live->id).ok());
  EXPECT_EQ(c.available_blocks(), 16u);
  EXPECT_TRUE(c.check_invariants().ok()) << c.check_invariants().message();
}

/// Also records the end of every operation ('e').
struct operation_listener : recording_listener {
  void on_operation_end() noexcept {
    event_log::event ev;
    ev.kind = 'e';
    log->events.push_back(ev);
  }
};
static_assert(listener_has_on_operation_end<operation_listener>);
static_assert(!listener_has_on_operation_end<recording_listener>);

TEST(Seams, EveryStoringOrRemovingOperationEndsOnceAfterItsEvents) {
  using op_cache = prefix_cache<free_list_allocator, hash_matcher, lru_eviction,
                                host_storage<float>, operation_listener>;
  op_cache c = make<op_cache>(6);
  const auto log = c.listener().log;
  // Runs one operation: exactly one end, the last event it caused.
  const auto one = [&](const char* what, auto&& op) {
    const std::size_t before = log->events.size();
    op();
    std::size_t ends = 0;
    for (std::size_t i = before; i < log->events.size(); ++i)
      ends += log->events[i].kind == 'e' ? 1 : 0;
    EXPECT_EQ(ends, 1u) << what;
    ASSERT_GT(log->events.size(), before) << what;
    EXPECT_EQ(log->events.back().kind, 'e') << what << ": the end comes after every event";
  };
  sequence_id s{}, f{};
  one("admit", [&] {
    auto a = c.admit(iota_tokens(1, 9));
    ASSERT_TRUE(a.ok());
    s = a->id;
  });
  one("commit(seq)", [&] { ASSERT_TRUE(c.commit(s).ok()); });  // two stores, then the end
  one("append", [&] { ASSERT_TRUE(c.append(s, iota_tokens(500, 3)).ok()); });
  one("commit(seq, n)", [&] { ASSERT_TRUE(c.commit(s, 12).ok()); });
  one("fork", [&] {
    auto x = c.fork(s);
    ASSERT_TRUE(x.ok());
    f = *x;
  });
  one("finish", [&] { ASSERT_TRUE(c.finish(f).ok()); });
  one("finish", [&] { ASSERT_TRUE(c.finish(s).ok()); });
  // 3 cached blocks; a prompt of 5 blocks evicts 2 of them: two removals, then one end.
  one("admit evicting", [&] {
    auto a = c.admit(iota_tokens(100, 17));
    ASSERT_TRUE(a.ok());
    s = a->id;
  });
  std::size_t removed = 0;
  for (const auto& e : log->events)
    removed += e.kind == 'r' ? 1 : 0;
  EXPECT_EQ(removed, 2u);
  one("failed admit", [&] { EXPECT_FALSE(c.admit(std::vector<token_id>{}).ok()); });
  one("failed commit", [&] { EXPECT_FALSE(c.commit(sequence_id{}, 1).ok()); });
  one("commit", [&] { ASSERT_TRUE(c.commit(s).ok()); });
  one("finish", [&] { ASSERT_TRUE(c.finish(s).ok()); });
  one("pin", [&] {
    auto p = c.pin(iota_tokens(100, 17));
    ASSERT_TRUE(p.ok());
    s = p->id;
  });
  one("unpin", [&] { ASSERT_TRUE(c.finish(s).ok()); });
  one("invalidate_tenant", [&] { c.invalidate_tenant(3); });
  one("invalidate_session", [&] { c.invalidate_session(3); });
  one("invalidate_key", [&] { c.invalidate_key(3); });
  one("expire", [&] { c.expire(); });
  one("clear", [&] { EXPECT_EQ(c.clear(), 5u); });  // 1 left of the first prompt, 4 of the second
  const std::size_t before = log->events.size();
  EXPECT_EQ(c.match(iota_tokens(1, 9)), 0u);
  (void)c.stats();
  EXPECT_EQ(log->events.size(), before) << "reading operations end nothing";
  EXPECT_TRUE(c.check_invariants().ok()) << c.check_invariants().message();
}

}  // namespace
}  // namespace kvkit::test
