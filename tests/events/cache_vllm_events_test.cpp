// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// KV events of a prefix_cache keyed by vLLM's block hashes (vllm_hash_matcher): every published
// hash is the int vLLM's KV events carry for the same tokens (vllm_request_block_hashes, checked
// against vLLM's own vectors in vllm_hashing_test), in the shared namespace and in a salted one,
// and parents name the previous block's vLLM hash.
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/event_listener.hpp>
#include <kvkit/events.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/vllm_hashing.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <unordered_map>
#include <vector>

#include "events/cache_workload.hpp"
#include "support/cache_testing.hpp"

namespace {

constexpr std::uint32_t bs = 4;
constexpr std::uint64_t seed = 77;

using cache_t =
    kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::vllm_hash_matcher, kvkit::lru_eviction,
                        kvkit::no_storage, kvkit::event_listener<kvkit::recording_event_sink>>;

std::vector<std::uint64_t> vllm_ints(std::span<const kvkit::token_id> tokens,
                                     const kvkit::vllm_request_keys& keys = {}) {
  auto digests = kvkit::vllm_request_block_hashes(tokens, bs, keys);
  EXPECT_TRUE(digests.ok());
  std::vector<std::uint64_t> out;
  for (const auto& d : *digests)
    out.push_back(kvkit::vllm_external_hash(d));
  return out;
}

TEST(CacheVllmEvents, PublishedHashesAreVllmBlockHashes) {
  cache_t c = kvkit::test::make_cache<cache_t>(64, bs, seed);
  kvkit::recording_event_sink rec;
  c.listener().attach(rec);
  const auto p = kvkit::test::iota_tokens(100, 4 * bs + 1);  // 4 whole blocks + 1
  auto a = c.admit(p);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(c.commit(a->id).ok());
  const auto want = vllm_ints(p);
  ASSERT_EQ(want.size(), 4u);
  ASSERT_EQ(rec.events().size(), 4u);
  for (std::size_t k = 0; k < 4; ++k) {
    const kvkit::recorded_event& e = rec.events()[k];
    EXPECT_EQ(e.hash, want[k]) << "block " << k;
    if (k == 0)
      EXPECT_FALSE(e.parent_hash.has_value()) << "a chain's first block has no parent";
    else
      EXPECT_EQ(e.parent_hash, want[k - 1]) << "block " << k;
    EXPECT_NE(e.hash, c.block_key(c.sequence(a->id)->blocks[k]))
        << "the cache's own content key is not what vLLM subscribers know";
  }

  // A salted namespace: vLLM's cache_salt on the first block, "kvkit-ns-<namespace key>".
  const kvkit::request_options t5{.tenant_salt = 5};
  auto b = c.admit(p, t5);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(c.commit(b->id).ok());
  kvkit::vllm_request_keys keys;
  keys.cache_salt = kvkit::vllm_hasher::namespace_salt(kvkit::xxh3_hasher(seed).root(5, {}));
  const auto salted = vllm_ints(p, keys);
  ASSERT_EQ(rec.events().size(), 8u);
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(rec.events()[4 + k].hash, salted[k]) << "block " << k;
    EXPECT_NE(salted[k], want[k]);
  }

  // Removals carry the hash the block was published with.
  ASSERT_TRUE(c.finish(a->id).ok());
  ASSERT_TRUE(c.finish(b->id).ok());
  EXPECT_EQ(c.invalidate_tenant(0), 4u);
  std::set<std::uint64_t> removed;
  for (const auto& e : rec.events())
    if (e.kind == kvkit::event_kind::removed)
      removed.insert(e.hash);
  EXPECT_EQ(removed, std::set<std::uint64_t>(want.begin(), want.end()));
}

TEST(CacheVllmEvents, WorkloadHashesChainAsVllmAndTheViewEqualsTheCache) {
  auto clock = std::make_shared<std::int64_t>(0);
  cache_t c = kvkit::test::make_cache<cache_t>(40, bs, seed);
  kvkit::recording_event_sink rec;
  c.listener().attach(rec);
  kvkit_test::cache_workload<cache_t> w(c, clock, 9);
  for (int i = 0; i < 1500; ++i) {
    w.step();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
  }
  w.finish_all();

  // Each stored block's vLLM hash, recomputed from its whole chain of tokens (walking the
  // published parents) and its namespace.
  struct stored {
    std::optional<std::uint64_t> parent;
    std::vector<kvkit::token_id> tokens;
  };
  std::unordered_map<std::uint64_t, stored> by_hash;
  std::size_t checked = 0;
  for (const kvkit::recorded_event& e : rec.events()) {
    if (e.kind != kvkit::event_kind::stored)
      continue;
    by_hash[e.hash] = {e.parent_hash, e.tokens};
    std::vector<kvkit::token_id> chain = e.tokens;
    for (auto p = e.parent_hash; p; p = by_hash.at(*p).parent) {
      const auto& t = by_hash.at(*p).tokens;
      chain.insert(chain.begin(), t.begin(), t.end());
    }
    kvkit::vllm_request_keys keys;
    if (e.tenant_salt != 0 || !e.extra_keys.empty()) {
      keys.cache_salt = kvkit::vllm_hasher::namespace_salt(
          kvkit::xxh3_hasher(seed).root(e.tenant_salt, e.extra_keys));
    }
    const auto want = vllm_ints(chain, keys);
    ASSERT_EQ(want.back(), e.hash) << "stored event of a " << want.size() << "-block chain";
    ++checked;
  }
  EXPECT_GT(checked, 100u);

  // The subscriber's view has exactly one entry per cached block.
  std::uint32_t cached = 0;
  for (kvkit::block_id b = 0; b < c.num_blocks(); ++b)
    cached += c.block_key(b) != 0 ? 1 : 0;
  std::uint32_t copies = 0;
  for (const auto& [hash, block] : rec.resident().blocks())
    copies += block.copies;
  EXPECT_EQ(copies, cached);
  EXPECT_EQ(cached, c.stats().blocks_cached);
  EXPECT_EQ(c.listener().published_blocks(), cached);
  EXPECT_GT(w.counts.clears + w.counts.invalidations, 0u);
}

}  // namespace
