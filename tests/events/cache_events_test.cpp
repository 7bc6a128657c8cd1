// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// KV events from a real prefix_cache through kvkit::event_listener: the blocks a subscriber
// rebuilds from the events equal the cache's own enumeration of its cached blocks; every
// published hash is the chained content key computed independently from the event's parent,
// tokens and namespace; a clear() covers the blocks it frees and the blocks sequences still held
// (released later); with no sink nothing is reported.
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/event_listener.hpp>
#include <kvkit/events.hpp>
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

#include "events/cache_workload.hpp"
#include "support/cache_testing.hpp"

namespace {

using kvkit_test::cache_workload;
using kvkit_test::cached_keys;

constexpr std::uint32_t bs = 4;
constexpr std::uint64_t seed = 1234;

template <class Matcher>
using recorded_cache =
    kvkit::prefix_cache<kvkit::free_list_allocator, Matcher, kvkit::ttl_eviction, kvkit::no_storage,
                        kvkit::event_listener<kvkit::recording_event_sink>>;

template <class Cache>
Cache make(std::uint32_t blocks, const std::shared_ptr<std::int64_t>& clock) {
  kvkit::ttl_options o;
  o.ttl = std::chrono::nanoseconds(60);
  o.now = [clock] {
    return std::chrono::nanoseconds(*clock);
  };
  return kvkit::test::make_cache<Cache>(blocks, bs, seed, o);
}

std::map<std::uint64_t, std::uint32_t> resident_keys(const kvkit::resident_set& set) {
  std::map<std::uint64_t, std::uint32_t> out;
  for (const auto& [hash, block] : set.blocks())
    out[hash] = block.copies;
  return out;
}

std::map<std::uint64_t, std::uint32_t> resident_keys(const kvkit::recording_event_sink& rec) {
  return resident_keys(rec.resident());
}

// A subscriber's index, fed the recorded events as they come.
struct follower {
  kvkit::resident_set set;
  std::size_t applied = 0;
  const kvkit::resident_set& update(const kvkit::recording_event_sink& rec) {
    for (; applied < rec.events().size(); ++applied)
      set.apply(rec.events()[applied]);
    return set;
  }
};

// Each stored event's hash is the keyed xxHash3 chain of its parent's hash (the namespace key
// for a chain's first block) and its tokens: parent, tokens and namespace are what they must be.
void expect_chained_keys(const kvkit::recording_event_sink& rec) {
  const kvkit::xxh3_hasher h(seed);
  std::size_t stored = 0;
  for (const kvkit::recorded_event& e : rec.events()) {
    if (e.kind != kvkit::event_kind::stored)
      continue;
    ++stored;
    const std::uint64_t parent =
        e.parent_hash ? *e.parent_hash : h.root(e.tenant_salt, 0, e.extra_keys);
    ASSERT_EQ(e.hash, h.chain(parent, e.tokens)) << "stored event " << stored;
    EXPECT_EQ(e.block_size, bs);
    EXPECT_EQ(e.medium, "GPU");
  }
  EXPECT_GT(stored, 0u);
}

template <class Matcher>
void run_workload(std::uint64_t workload_seed) {
  using cache_t = recorded_cache<Matcher>;
  auto clock = std::make_shared<std::int64_t>(0);
  cache_t c = make<cache_t>(48, clock);
  kvkit::recording_event_sink rec;
  c.listener().attach(rec);
  cache_workload<cache_t> w(c, clock, workload_seed);
  std::uint32_t compared = 0;
  follower sub;
  for (int i = 0; i < 3000; ++i) {
    w.step();
    if (::testing::Test::HasFatalFailure())
      return;
    sub.update(rec);
    if (w.comparable()) {
      ASSERT_EQ(resident_keys(sub.set), cached_keys(c)) << "after operation " << i;
      ++compared;
    }
  }
  w.finish_all();
  const auto cached = cached_keys(c);
  EXPECT_EQ(resident_keys(rec), cached);
  std::uint32_t total = 0;
  for (const auto& kv : cached)
    total += kv.second;
  EXPECT_EQ(total, c.stats().blocks_cached) << "no detached block is left once all finished";
  EXPECT_EQ(c.listener().published_blocks(), total);
  EXPECT_TRUE(c.check_invariants().ok()) << c.check_invariants().message();
  expect_chained_keys(rec);

  // The run went through every kind of event.
  std::multiset<kvkit::removal_reason> reasons;
  std::size_t clears = 0;
  for (const auto& e : rec.events()) {
    if (e.kind == kvkit::event_kind::removed)
      reasons.insert(e.reason);
    clears += e.kind == kvkit::event_kind::cleared ? 1 : 0;
  }
  EXPECT_GT(compared, 1000u);
  EXPECT_GT(reasons.count(kvkit::removal_reason::evicted), 0u);
  EXPECT_GT(reasons.count(kvkit::removal_reason::invalidated), 0u);
  EXPECT_GT(reasons.count(kvkit::removal_reason::expired), 0u);
  EXPECT_GT(reasons.count(kvkit::removal_reason::released), 0u);
  EXPECT_EQ(reasons.count(kvkit::removal_reason::cleared), 0u)
      << "a clear is one event, not one removal per block";
  EXPECT_EQ(clears, w.counts.clears);
  EXPECT_GT(w.counts.clears, 0u);
}

TEST(CacheEvents, SubscriberViewEqualsCachedBlocksHashMatcher) {
  for (std::uint64_t s : {1u, 2u, 3u}) {
    SCOPED_TRACE(s);
    run_workload<kvkit::hash_matcher>(s);
  }
}

TEST(CacheEvents, SubscriberViewEqualsCachedBlocksRadixMatcher) {
  // The radix matcher's cursor carries no hash: the cache's content key is published.
  run_workload<kvkit::radix_matcher>(4);
}

TEST(CacheEvents, ClearCoversBlocksStillHeldAndTheirLaterRelease) {
  using cache_t = recorded_cache<kvkit::hash_matcher>;
  auto clock = std::make_shared<std::int64_t>(0);
  cache_t c = make<cache_t>(32, clock);
  kvkit::recording_event_sink rec;
  c.listener().attach(rec);
  const auto p = kvkit::test::iota_tokens(1, 9);  // 2 whole blocks + 1
  auto held = c.admit(p);
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(c.commit(held->id).ok());
  ASSERT_EQ(rec.resident().size(), 2u);
  EXPECT_EQ(c.clear(), 0u) << "held blocks are not freed by clear()";
  EXPECT_EQ(rec.resident().size(), 0u);
  EXPECT_EQ(rec.events().back().kind, kvkit::event_kind::cleared);

  // The same prompt again: the same keys stored anew, while the held copies still exist.
  auto again = c.admit(p);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->request.cached_tokens, 0u);
  ASSERT_TRUE(c.commit(again->id).ok());
  ASSERT_TRUE(c.finish(again->id).ok());
  const std::size_t before = rec.events().size();
  // Releasing the held blocks frees them (reason `released`), but the subscriber forgot them at
  // the clear: no removal may be published, or it would drop the new copies.
  ASSERT_TRUE(c.finish(held->id).ok());
  EXPECT_EQ(rec.events().size(), before);
  EXPECT_EQ(resident_keys(rec), cached_keys(c));
  EXPECT_EQ(rec.resident().size(), 2u);
}

TEST(CacheEvents, InvalidationOfHeldBlocksIsReportedAtRelease) {
  using cache_t = recorded_cache<kvkit::hash_matcher>;
  auto clock = std::make_shared<std::int64_t>(0);
  cache_t c = make<cache_t>(32, clock);
  kvkit::recording_event_sink rec;
  c.listener().attach(rec);
  const kvkit::request_options t3{.tenant_salt = 3};
  auto held = c.admit(kvkit::test::iota_tokens(1, 9), t3);
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(c.commit(held->id).ok());
  auto done = c.admit(kvkit::test::iota_tokens(50, 9), t3);
  ASSERT_TRUE(done.ok());
  ASSERT_TRUE(c.commit(done->id).ok());
  ASSERT_TRUE(c.finish(done->id).ok());
  EXPECT_EQ(c.invalidate_tenant(3), 2u);
  std::size_t invalidated = 0;
  for (const auto& e : rec.events())
    invalidated +=
        e.kind == kvkit::event_kind::removed && e.reason == kvkit::removal_reason::invalidated;
  EXPECT_EQ(invalidated, 2u);
  EXPECT_EQ(rec.resident().size(), 2u) << "the held blocks are reported when released";
  ASSERT_TRUE(c.finish(held->id).ok());
  EXPECT_EQ(rec.events().back().reason, kvkit::removal_reason::released);
  EXPECT_EQ(rec.resident().size(), 0u);
  EXPECT_EQ(cached_keys(c).size(), 0u);
}

TEST(CacheEvents, NothingIsReportedWithoutASinkAndDetachStops) {
  using cache_t = recorded_cache<kvkit::hash_matcher>;
  auto clock = std::make_shared<std::int64_t>(0);
  cache_t c = make<cache_t>(32, clock);
  EXPECT_EQ(c.listener().sink(), nullptr);
  const auto p = kvkit::test::iota_tokens(1, 13);
  auto a = c.admit(p);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(c.commit(a->id).ok());
  ASSERT_TRUE(c.finish(a->id).ok());
  EXPECT_EQ(c.listener().published_blocks(), 0u);

  kvkit::recording_event_sink rec;
  c.listener().attach(rec, kvkit::medium_cpu);
  EXPECT_EQ(c.listener().medium(), "CPU");
  // Blocks stored before the sink was attached: the sink never saw them, so neither their
  // removal.
  c.invalidate_tenant(0);
  EXPECT_TRUE(rec.events().empty());
  auto b = c.admit(p);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(c.commit(b->id).ok());
  ASSERT_EQ(rec.events().size(), 3u);
  EXPECT_EQ(rec.events()[0].medium, "CPU");
  EXPECT_FALSE(rec.events()[0].parent_hash.has_value());
  EXPECT_EQ(rec.events()[1].parent_hash, rec.events()[0].hash);
  EXPECT_EQ(c.listener().published_blocks(), 3u);
  c.listener().detach();
  ASSERT_TRUE(c.finish(b->id).ok());
  c.clear();
  EXPECT_EQ(rec.events().size(), 3u);
  // Attached again: a new subscriber saw none of the blocks cached meanwhile.
  const auto q = kvkit::test::iota_tokens(500, 9);
  auto d = c.admit(q);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(c.commit(d->id).ok());
  ASSERT_TRUE(c.finish(d->id).ok());
  kvkit::recording_event_sink later;
  c.listener().attach(later);
  EXPECT_EQ(c.listener().published_blocks(), 0u);
  c.invalidate_tenant(0);
  EXPECT_TRUE(later.events().empty()) << "no removal of a block the sink never saw stored";
}

}  // namespace
