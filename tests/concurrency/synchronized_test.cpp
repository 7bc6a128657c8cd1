// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit::synchronized_cache under contention: 8 threads drive random request lives (admit,
// commit, append, fork, pin, finish, match, stats, sequence, invalidate) against one cache. With
// host storage every thread also writes K/V derived from (tenant, token prefix) into its
// sequences' uncomputed slots and checks that every hit returns exactly those values. At the end
// the cache's invariants hold and its counters equal the sums of what the threads did.
// Meant to run under ThreadSanitizer (preset `tsan`); bounded to well under a second natively.
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/synchronized.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/cache_testing.hpp"
#include "support/text.hpp"

namespace kvkit::test {
namespace {

constexpr std::uint32_t kBlockSize = 4;
constexpr std::uint32_t kNumBlocks = 192;
constexpr int kThreads = 8;
constexpr int kOpsPerThread = 1500;
constexpr std::size_t kMaxLive = 4;  // live sequences per thread
constexpr std::uint32_t kMaxTokens = 96;

template <class Storage>
using cache_of = prefix_cache<free_list_allocator, hash_matcher, lru_eviction, Storage>;

template <class Storage>
synchronized_cache<cache_of<Storage>> make_synchronized() {
  auto storage = make_storage<Storage>(kBlockSize, kNumBlocks);
  EXPECT_TRUE(storage.ok());
  auto c = synchronized_cache<cache_of<Storage>>::create(cache_config{.seed = 7},
                                                         std::move(storage).value());
  EXPECT_TRUE(c.ok()) << c.status().message();
  return std::move(c).value();
}

// ---- K/V derived from the prefix -------------------------------------------------------------

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 31);
}

/// Chained digest of (tenant, tokens[0..i]) for every position i.
std::vector<std::uint64_t> prefix_digests(std::uint64_t tenant, const std::vector<token_id>& t) {
  std::vector<std::uint64_t> d(t.size());
  std::uint64_t h = mix(0x6b766b6974ull, tenant);
  for (std::size_t i = 0; i < t.size(); ++i) {
    h = mix(h, t[i]);
    d[i] = h;
  }
  return d;
}

/// The K (kv = 0) or V (kv = 1) element a runtime would compute for a token with this prefix
/// digest: an integer below 2^24, so exact in float.
float kv_value(std::uint64_t digest, std::uint32_t layer, std::uint32_t kv, std::uint32_t head,
               std::uint32_t dim) {
  const std::uint64_t salt = ((layer * 2 + kv) * 8 + head) * 8 + dim;
  return static_cast<float>(((digest >> 40) ^ salt) & 0xFFFFFFu);
}

/// Writes K/V for tokens [from, to) of a sequence with block table @p blocks.
template <class Storage>
void write_kv(Storage& st, const std::vector<block_id>& blocks,
              const std::vector<std::uint64_t>& digests, std::uint32_t from, std::uint32_t to) {
  const kv_layout& l = st.layout();
  for (std::uint32_t i = from; i < to; ++i) {
    const block_id b = blocks[i / kBlockSize];
    for (std::uint32_t layer = 0; layer < l.num_layers; ++layer)
      for (std::uint32_t kv = 0; kv < 2; ++kv)
        for (std::uint32_t h = 0; h < l.num_kv_heads; ++h)
          for (std::uint32_t d = 0; d < l.head_dim; ++d)
            st.at(layer, kv, b, i % kBlockSize, h, d) = kv_value(digests[i], layer, kv, h, d);
  }
}

/// Number of K/V elements of tokens [0, n) that differ from what the prefix implies.
template <class Storage>
std::uint64_t count_wrong_kv(Storage& st, std::span<const block_id> blocks,
                             const std::vector<std::uint64_t>& digests, std::uint32_t n) {
  const kv_layout& l = st.layout();
  std::uint64_t wrong = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    const block_id b = blocks[i / kBlockSize];
    for (std::uint32_t layer = 0; layer < l.num_layers; ++layer)
      for (std::uint32_t kv = 0; kv < 2; ++kv)
        for (std::uint32_t h = 0; h < l.num_kv_heads; ++h)
          for (std::uint32_t d = 0; d < l.head_dim; ++d)
            wrong +=
                st.at(layer, kv, b, i % kBlockSize, h, d) != kv_value(digests[i], layer, kv, h, d);
  }
  return wrong;
}

// ---- the workload ------------------------------------------------------------------------------

struct live_seq {
  sequence_id id;
  std::uint64_t tenant = 0;
  std::vector<token_id> tokens;
};

/// What one thread did (successful calls only) and the first thing it found wrong.
struct thread_tally {
  std::uint64_t admissions = 0;
  std::uint64_t hit_tokens = 0;
  std::uint64_t finishes = 0;
  std::uint64_t appended_tokens = 0;
  std::uint64_t forks = 0;
  std::uint64_t pins = 0;
  std::uint64_t hits_checked = 0;  // admissions whose hit K/V was verified
  std::uint64_t out_of_blocks = 0;
  std::string failure;
};

/// Prompts: one of 4 shared system prompts (2 to 8 blocks), a shared or own user part, tenant 0
/// or 1: plenty of cross-thread hits, deduplication and evictions in a 192-block pool.
std::pair<std::uint64_t, std::vector<token_id>> make_prompt(std::mt19937_64& rng, int thread) {
  const std::uint64_t tenant = rng() % 4 == 0 ? 1 : 0;
  const std::uint32_t system = static_cast<std::uint32_t>(rng() % 4);
  std::vector<token_id> p = iota_tokens(1000 * (system + 1), (system + 1) * 2 * kBlockSize);
  const std::uint32_t user = 1 + static_cast<std::uint32_t>(rng() % 12);
  const token_id base = rng() % 2 == 0 ? 50000 + static_cast<token_id>(rng() % 8) * 100
                                       : 100000 + static_cast<token_id>(thread) * 1000 +
                                             static_cast<token_id>(rng() % 64) * 13;
  for (std::uint32_t i = 0; i < user; ++i)
    p.push_back(base + i);
  return {tenant, std::move(p)};
}

template <class Storage>
void run_thread(synchronized_cache<cache_of<Storage>>& cache, int thread, thread_tally& tally,
                std::atomic<bool>& go) {
  using cache_t = cache_of<Storage>;
  constexpr bool has_kv = !std::is_same_v<Storage, no_storage>;
  std::mt19937_64 rng(0xC0FFEEull + static_cast<std::uint64_t>(thread));
  std::vector<live_seq> live;
  const auto fail = [&](std::string what) {
    if (tally.failure.empty())
      tally.failure = "thread " + std::to_string(thread) + ": " + std::move(what);
  };
  // Writes K/V of the uncomputed tokens of @p s and commits them, as one atomic step.
  const auto compute_and_commit = [&](const live_seq& s) {
    const auto digests = prefix_digests(s.tenant, s.tokens);
    cache.with_lock([&](cache_t& c) {
      auto view = c.sequence(s.id);
      if (!view.ok())
        return fail("sequence: " + view.status().message());
      if constexpr (has_kv) {
        const std::vector<block_id> blocks(view->blocks.begin(), view->blocks.end());
        write_kv(c.storage(), blocks, digests, view->computed_tokens,
                 static_cast<std::uint32_t>(s.tokens.size()));
      }
      if (auto r = c.commit(s.id); !r.ok())
        fail("commit: " + r.status().message());
    });
  };
  const auto finish = [&](std::size_t k) {
    if (auto st = cache.finish(live[k].id); !st.ok())
      return fail("finish: " + st.message());
    ++tally.finishes;
    live[k] = std::move(live.back());
    live.pop_back();
  };

  while (!go.load(std::memory_order_acquire)) {
  }
  for (int op = 0; op < kOpsPerThread && tally.failure.empty(); ++op) {
    const auto dice = rng() % 100;
    const std::size_t k = live.empty() ? 0 : rng() % live.size();
    if (dice < 30 || live.empty()) {  // admit
      if (live.size() >= kMaxLive) {
        finish(k);
        continue;
      }
      auto [tenant, prompt] = make_prompt(rng, thread);
      const request_options opts{.tenant_salt = tenant};
      auto adm = cache.admit(prompt, opts);
      if (!adm.ok()) {
        if (adm.code() != errc::out_of_blocks)
          fail("admit: " + adm.status().message());
        ++tally.out_of_blocks;
        continue;
      }
      ++tally.admissions;
      const std::uint32_t cached = adm->request.cached_tokens;
      tally.hit_tokens += cached;
      if (cached % kBlockSize != 0 || cached >= prompt.size())
        fail("admit: cached_tokens = " + std::to_string(cached));
      if constexpr (has_kv) {
        if (cached > 0) {
          const auto digests = prefix_digests(tenant, prompt);
          const std::uint64_t wrong = cache.with_lock([&](cache_t& c) -> std::uint64_t {
            auto view = c.sequence(adm->id);
            return view.ok() ? count_wrong_kv(c.storage(), view->blocks, digests, cached) : ~0ull;
          });
          if (wrong != 0)
            fail("hit of " + std::to_string(cached) + " tokens has " + std::to_string(wrong) +
                 " wrong K/V elements");
          ++tally.hits_checked;
        }
      }
      live.push_back({adm->id, tenant, std::move(prompt)});
    } else if (dice < 50) {  // compute + commit
      compute_and_commit(live[k]);
    } else if (dice < 62) {  // decode: append, then compute + commit
      if (live[k].tokens.size() >= kMaxTokens) {
        finish(k);
        continue;
      }
      std::vector<token_id> gen(1 + rng() % 6);
      for (auto& t : gen)
        t = 200000 + static_cast<token_id>(rng() % 4);
      if (auto st = cache.append(live[k].id, gen); !st.ok()) {
        if (st.code() != errc::out_of_blocks)
          fail("append: " + st.message());
        ++tally.out_of_blocks;
        continue;
      }
      tally.appended_tokens += gen.size();
      live[k].tokens.insert(live[k].tokens.end(), gen.begin(), gen.end());
      if (rng() % 2 == 0)
        compute_and_commit(live[k]);
    } else if (dice < 78) {  // finish
      finish(k);
    } else if (dice < 82) {  // fork (after computing everything)
      if (live.size() >= kMaxLive)
        continue;
      compute_and_commit(live[k]);
      auto f = cache.fork(live[k].id);
      if (!f.ok())
        fail("fork: " + f.status().message());
      else {
        ++tally.forks;
        live.push_back({*f, live[k].tenant, live[k].tokens});
      }
    } else if (dice < 84) {  // pin a prompt's cached prefix, then release it
      auto [tenant, prompt] = make_prompt(rng, thread);
      auto p = cache.pin(prompt, {.tenant_salt = tenant});
      if (p.ok()) {
        ++tally.pins;
        if (auto st = cache.finish(p->id); !st.ok())
          fail("finish(pin): " + st.message());
        ++tally.finishes;
      } else if (p.code() != errc::invalid_argument) {
        fail("pin: " + p.status().message());
      }
    } else if (dice < 90) {  // match
      auto [tenant, prompt] = make_prompt(rng, thread);
      const std::uint32_t m = cache.match(prompt, {.tenant_salt = tenant});
      if (m % kBlockSize != 0 || m >= prompt.size())
        fail("match = " + std::to_string(m));
    } else if (dice < 94) {  // snapshot of an own sequence
      auto snap = cache.sequence(live[k].id);
      if (!snap.ok())
        fail("sequence: " + snap.status().message());
      else if (snap->tokens != live[k].tokens ||
               snap->blocks.size() != (snap->tokens.size() + kBlockSize - 1) / kBlockSize)
        fail("sequence: snapshot disagrees with the thread's own record");
    } else if (dice < 99) {  // stats: one consistent snapshot
      const cache_stats st = cache.stats();
      if (st.blocks_total != kNumBlocks || st.blocks_free > kNumBlocks ||
          st.blocks_cached + st.blocks_free > kNumBlocks ||
          st.blocks_evictable > st.blocks_cached ||
          st.full_hits + st.partial_hits + st.misses != st.queries ||
          st.active_sequences < live.size())
        fail("stats: inconsistent snapshot");
      (void)cache.stats(0);
    } else {  // invalidate tenant 1 (its live sequences keep their blocks)
      (void)cache.invalidate_tenant(1);
    }
  }
  while (!live.empty() && tally.failure.empty())
    finish(live.size() - 1);
}

template <class Storage>
class SynchronizedCacheTest : public ::testing::Test {};

using storage_types = ::testing::Types<no_storage, host_storage<float>>;
TYPED_TEST_SUITE(SynchronizedCacheTest, storage_types);

TYPED_TEST(SynchronizedCacheTest, ConcurrentRequestLivesKeepInvariantsAndCounters) {
  auto cache = make_synchronized<TypeParam>();
  std::array<thread_tally, kThreads> tallies{};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { run_thread<TypeParam>(cache, t, tallies[t], go); });
  }
  go.store(true, std::memory_order_release);
  for (auto& th : threads)
    th.join();

  thread_tally sum;
  for (const thread_tally& t : tallies) {
    EXPECT_EQ(t.failure, "");
    sum.admissions += t.admissions;
    sum.hit_tokens += t.hit_tokens;
    sum.finishes += t.finishes;
    sum.appended_tokens += t.appended_tokens;
    sum.forks += t.forks;
    sum.pins += t.pins;
    sum.hits_checked += t.hits_checked;
  }
  const status inv = cache.check_invariants();
  EXPECT_TRUE(inv.ok()) << inv.message();
  const cache_stats st = cache.stats();
  EXPECT_EQ(st.queries, sum.admissions);
  EXPECT_EQ(st.hit_tokens, sum.hit_tokens);
  EXPECT_EQ(st.finished_sequences, sum.finishes);
  EXPECT_EQ(st.appended_tokens, sum.appended_tokens);
  EXPECT_EQ(st.forks, sum.forks);
  EXPECT_EQ(st.pins, sum.pins);
  EXPECT_EQ(st.active_sequences, 0u);
  EXPECT_EQ(st.blocks_referenced, 0u);
  EXPECT_EQ(st.blocks_evictable, st.blocks_cached);
  EXPECT_EQ(cache.available_blocks(), kNumBlocks);
  EXPECT_EQ(cache.stats(0).queries, sum.admissions);
  // The workload must have exercised sharing, not only misses.
  EXPECT_GT(st.hit_tokens, 0u);
  EXPECT_GT(st.deduplicated_blocks + st.full_hits + st.partial_hits, 0u);
  if constexpr (!std::is_same_v<TypeParam, no_storage>) {
    EXPECT_GT(sum.hits_checked, 0u);
  }
}

TYPED_TEST(SynchronizedCacheTest, ForwardsResultsAndErrors) {
  using sync_t = synchronized_cache<cache_of<TypeParam>>;
  // create() forwards the cache's error: a storage layout the cache refuses.
  auto bad = synchronized_cache<cache_of<raw_layout_storage>>::create(
      cache_config{.seed = 1}, raw_layout_storage(raw_layout(3, kNumBlocks)));
  EXPECT_EQ(bad.code(), errc::invalid_config);
  KVKIT_EXPECT_SUBSTR(bad.error().message(), "block_size");

  sync_t cache = make_synchronized<TypeParam>();
  EXPECT_EQ(cache.block_size(), kBlockSize);
  EXPECT_EQ(cache.num_blocks(), kNumBlocks);
  const auto prompt = iota_tokens(1, 3 * kBlockSize);
  auto a = cache.admit(prompt);
  ASSERT_TRUE(a.ok());
  auto snap = cache.sequence(a->id);
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->tokens, prompt);
  EXPECT_EQ(snap->blocks.size(), 3u);
  EXPECT_EQ(snap->computed_tokens, 0u);
  ASSERT_TRUE(cache.commit(a->id).ok());
  EXPECT_EQ(cache.match(prompt), 2 * kBlockSize);
  // Moving keeps the cache (and its lock) with the new object.
  sync_t moved = std::move(cache);
  EXPECT_EQ(moved.sequence(a->id)->computed_tokens, prompt.size());
  ASSERT_TRUE(moved.finish(a->id).ok());
  EXPECT_EQ(moved.sequence(a->id).code(), errc::finished_sequence);
  EXPECT_EQ(moved.finish(a->id).code(), errc::finished_sequence);
  // with_lock returns what the callable returns, by value or by reference.
  const std::uint32_t cached =
      moved.with_lock([](const cache_of<TypeParam>& c) { return c.stats().blocks_cached; });
  EXPECT_EQ(cached, 3u);
  const sync_t& as_const = moved;
  EXPECT_EQ(as_const.with_lock([](const auto& c) { return c.num_blocks(); }), kNumBlocks);
  // explain_miss answers as the cache does, and changes nothing: cached, then invalidated.
  const auto explain_locked = [&] {
    return moved.with_lock([&](const cache_of<TypeParam>& c) { return c.explain_miss(prompt); });
  };
  // Both eligible blocks hit; the third holds the prompt's last token, which is always computed.
  const miss_info cached_now = moved.explain_miss(prompt);
  EXPECT_EQ(cached_now.reason, miss_reason::partial_last_block);
  EXPECT_EQ(cached_now.block, 2u);
  EXPECT_EQ(cached_now, explain_locked());
  EXPECT_EQ(moved.stats().queries, 1u);
  EXPECT_EQ(moved.invalidate_tenant(0), 3u);
  const miss_info gone = moved.explain_miss(prompt);
  EXPECT_EQ(gone.reason, miss_reason::invalidated);
  EXPECT_EQ(gone.block, 0u);
  EXPECT_EQ(gone, explain_locked());
  EXPECT_EQ(moved.expire(), 0u);
  EXPECT_TRUE(moved.check_invariants().ok());
}

}  // namespace
}  // namespace kvkit::test
