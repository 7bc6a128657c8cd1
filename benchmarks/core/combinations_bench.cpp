// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Every allocator x matcher x eviction combination of the catalogue (kvkit::for_each_combination),
// control plane only (no_storage), for a 2,048-token prompt in 16-token blocks (128 blocks) and a
// pool of 4,096 blocks:
//
//   BM_Combination_Hit/<allocator>/<matcher>/<eviction>
//       The prompt is cached; each iteration is one request's life (admit + commit + finish)
//       with 127 blocks hit. Counter ns_per_block: time per prompt block.
//   BM_Combination_Miss/<allocator>/<matcher>/<eviction>
//       The pool is full of cached blocks; each iteration admits a fresh prompt (its first token
//       is new, so every block misses), commits and finishes it: 128 blocks allocated, each
//       evicting a cached one. Counters ns_per_block, evictions_per_s (evictions under
//       pressure per second), meta_B_per_block (stats().metadata_bytes / cached blocks at the
//       end: bookkeeping of the cache and its policies per cached block, tokens excluded).
//
// Baseline in the same process, BM_Combination_Hit/baseline/unordered_map and
// BM_Combination_Miss/baseline/unordered_map: per block, a keyed xxHash3 chain step plus a
// std::unordered_map lookup (and, on the miss path, an insert and an erase).
//
// bench_table.py (benchmarks/tools) turns the JSON output into a Markdown table; the CMake target
// run-combination-table does both.
#include <kvkit/catalogue.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr std::uint32_t kBlockSize = 16;
constexpr std::uint32_t kPromptTokens = 2048;
constexpr std::uint32_t kPromptBlocks = kPromptTokens / kBlockSize;  // 128
constexpr std::uint32_t kCacheBlocks = 4096;
constexpr std::uint64_t kSeed = 0x6b766b6974ull;

std::vector<kvkit::token_id> make_prompt(std::uint64_t which) {
  std::mt19937_64 rng(which * 0x9E3779B97F4A7C15ull + 1);
  std::vector<kvkit::token_id> p(kPromptTokens);
  for (auto& t : p)
    t = static_cast<kvkit::token_id>(rng() % 128000);
  return p;
}

template <class A, class M, class E>
using cache_t = kvkit::prefix_cache<A, M, E, kvkit::no_storage>;

template <class Cache>
Cache make_cache() {
  auto storage = kvkit::no_storage::create(kBlockSize, kCacheBlocks);
  kvkit::cache_config cfg;
  cfg.seed = kSeed;
  return std::move(Cache::create(cfg, std::move(*storage)).value());
}

template <class Cache>
bool run_request(benchmark::State& state, Cache& cache, std::span<const kvkit::token_id> prompt) {
  auto adm = cache.admit(prompt);
  if (!adm.ok()) {
    state.SkipWithError(("admit: " + adm.error().message()).c_str());
    return false;
  }
  if (!cache.commit(adm->id).ok() || !cache.finish(adm->id).ok()) {
    state.SkipWithError("commit or finish failed");
    return false;
  }
  return true;
}

void per_block(benchmark::State& state) {
  state.counters["ns_per_block"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kPromptBlocks),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

template <class A, class M, class E>
void BM_Combination_Hit(benchmark::State& state) {
  auto cache = make_cache<cache_t<A, M, E>>();
  const auto prompt = make_prompt(1);
  if (!run_request(state, cache, prompt))
    return;
  for (auto _ : state) {
    if (!run_request(state, cache, prompt))
      return;
  }
  if (cache.stats().hit_blocks !=
      static_cast<std::uint64_t>(state.iterations()) * (kPromptBlocks - 1))
    state.SkipWithError("the cached prompt did not hit every eligible block");
  per_block(state);
}

template <class A, class M, class E>
void BM_Combination_Miss(benchmark::State& state) {
  auto cache = make_cache<cache_t<A, M, E>>();
  auto prompt = make_prompt(2);
  kvkit::token_id fresh = 200000;
  // Fill the pool with cached blocks.
  for (std::uint32_t i = 0; i < kCacheBlocks / kPromptBlocks + 1; ++i) {
    prompt[0] = fresh++;
    if (!run_request(state, cache, prompt))
      return;
  }
  const std::uint64_t evictions_before = cache.stats().evictions;
  for (auto _ : state) {
    prompt[0] = fresh++;
    if (!run_request(state, cache, prompt))
      return;
  }
  const kvkit::cache_stats st = cache.stats();
  if (st.hit_blocks != 0)
    state.SkipWithError("a fresh prompt hit");
  per_block(state);
  state.counters["evictions_per_s"] = benchmark::Counter(
      static_cast<double>(st.evictions - evictions_before), benchmark::Counter::kIsRate);
  state.counters["meta_B_per_block"] =
      st.blocks_cached == 0 ? 0.0 : static_cast<double>(st.metadata_bytes) / st.blocks_cached;
}

// ---- baseline: chained hash + std::unordered_map ---------------------------------------------

void BM_Combination_Hit_baseline(benchmark::State& state) {
  const kvkit::xxh3_hasher h(kSeed);
  const auto prompt = make_prompt(1);
  std::unordered_map<std::uint64_t, kvkit::block_id> map;
  map.reserve(kCacheBlocks);
  std::uint64_t key = 0;
  for (std::uint32_t b = 0; b < kPromptBlocks; ++b) {
    key = h.chain(key, std::span(prompt).subspan(b * kBlockSize, kBlockSize));
    map.emplace(key, b);
  }
  for (auto _ : state) {
    std::uint64_t k = 0;
    std::uint32_t hits = 0;
    for (std::uint32_t b = 0; b + 1 < kPromptBlocks; ++b) {
      k = h.chain(k, std::span(prompt).subspan(b * kBlockSize, kBlockSize));
      hits += map.find(k) != map.end();
    }
    benchmark::DoNotOptimize(hits);
  }
  per_block(state);
}

void BM_Combination_Miss_baseline(benchmark::State& state) {
  const kvkit::xxh3_hasher h(kSeed);
  auto prompt = make_prompt(2);
  std::unordered_map<std::uint64_t, kvkit::block_id> map;
  map.reserve(kCacheBlocks);
  std::vector<std::uint64_t> ring(kCacheBlocks);  // keys in insertion order: FIFO eviction
  std::size_t head = 0;
  kvkit::token_id fresh = 200000;
  for (auto _ : state) {
    prompt[0] = fresh++;
    std::uint64_t k = 0;
    for (std::uint32_t b = 0; b < kPromptBlocks; ++b) {
      k = h.chain(k, std::span(prompt).subspan(b * kBlockSize, kBlockSize));
      if (map.find(k) == map.end()) {
        if (map.size() == kCacheBlocks)
          map.erase(ring[head]);
        map.emplace(k, static_cast<kvkit::block_id>(head));
        ring[head] = k;
        head = (head + 1) % kCacheBlocks;
      }
    }
  }
  per_block(state);
}

const bool registered = [] {
  benchmark::RegisterBenchmark("BM_Combination_Hit/baseline/unordered_map",
                               BM_Combination_Hit_baseline);
  benchmark::RegisterBenchmark("BM_Combination_Miss/baseline/unordered_map",
                               BM_Combination_Miss_baseline);
  kvkit::for_each_combination([]<class A, class M, class E>() {
    const std::string name = std::string(kvkit::policy_traits<A>::name()) + "/" +
                             std::string(kvkit::policy_traits<M>::name()) + "/" +
                             std::string(kvkit::policy_traits<E>::name());
    benchmark::RegisterBenchmark(("BM_Combination_Hit/" + name).c_str(),
                                 BM_Combination_Hit<A, M, E>);
    benchmark::RegisterBenchmark(("BM_Combination_Miss/" + name).c_str(),
                                 BM_Combination_Miss<A, M, E>);
  });
  return true;
}();

}  // namespace
