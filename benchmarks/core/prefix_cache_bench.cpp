// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Control-plane cost of prefix_cache (no K/V bytes: no_storage) for a 2,048-token prompt in
// 16-token blocks (128 blocks), per policy combination:
//
//   BM_PrefixCache_HitPath/<matcher>/<eviction>/<allocator>
//       prompt cached: 127 blocks hit, 1 new
//   BM_PrefixCache_MissPath/<...>
//       fresh prompt: 128 new blocks, each evicting one cached block
//   BM_PrefixCache_MissPath/<...>/no_miss_record
//       the same with cache_config::miss_record = 0: the cost of remembering removals (which
//       tells an evicted block from one never stored) is the difference
//   BM_PrefixCache_PartialHitPath/<...>
//       last 10% differs: 115 blocks hit, 13 new
//
// Each iteration is one request's life: admit + commit + finish. Counters:
//   per_block         time per prompt block (iteration time / 128)
//   evictions         cached blocks evicted per iteration
//   meta_B_per_block  stats().metadata_bytes / num_blocks (bookkeeping of cache and policies)
//   token_B_per_block stats().token_bytes / num_blocks (stored tokens that verify hits)
//
// Baselines in the same process: copying the prompt's tokens, and a std::unordered_map lookup
// per block (with and without hashing the block first).
#include <kvkit/kvkit.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr std::uint32_t kBlockSize = 16;
constexpr std::uint32_t kPromptTokens = 2048;
constexpr std::uint32_t kPromptBlocks = kPromptTokens / kBlockSize;  // 128
constexpr std::uint32_t kCacheBlocks = 4096;                         // 32 prompts' worth
constexpr std::uint64_t kSeed = 0x6b766b6974ull;

/// Distinct prompts: random token ids (vocabulary of 128k) from a per-prompt generator.
std::vector<kvkit::token_id> make_prompt(std::uint64_t which,
                                         std::uint32_t tokens = kPromptTokens) {
  std::mt19937_64 rng(which * 0x9E3779B97F4A7C15ull + 1);
  std::vector<kvkit::token_id> p(tokens);
  for (auto& t : p)
    t = static_cast<kvkit::token_id>(rng() % 128000);
  return p;
}

template <class Allocator, class Matcher, class Eviction>
using cache_t = kvkit::prefix_cache<Allocator, Matcher, Eviction, kvkit::no_storage>;

template <class Cache>
Cache make_cache(std::uint32_t num_blocks = kCacheBlocks, bool miss_record = true) {
  auto storage = kvkit::no_storage::create(kBlockSize, num_blocks);
  kvkit::cache_config cfg;
  cfg.seed = kSeed;
  if (!miss_record)
    cfg.miss_record = 0;
  return std::move(Cache::create(cfg, std::move(*storage)).value());
}

/// Runs one request's life; returns false (and marks the benchmark failed) on any error or when
/// the cache hit a different number of tokens than expected.
template <class Cache>
bool run_request(benchmark::State& state, Cache& cache, std::span<const kvkit::token_id> prompt,
                 std::uint32_t expected_cached) {
  auto adm = cache.admit(prompt);
  if (!adm.ok()) {
    state.SkipWithError(("admit failed: " + adm.error().message()).c_str());
    return false;
  }
  if (adm->request.cached_tokens != expected_cached) {
    state.SkipWithError(("cached_tokens = " + std::to_string(adm->request.cached_tokens) +
                         ", expected " + std::to_string(expected_cached))
                            .c_str());
    return false;
  }
  auto com = cache.commit(adm->id);
  if (!com.ok()) {
    state.SkipWithError(("commit failed: " + com.error().message()).c_str());
    return false;
  }
  if (auto st = cache.finish(adm->id); !st.ok()) {
    state.SkipWithError(("finish failed: " + st.message()).c_str());
    return false;
  }
  return true;
}

template <class Cache>
void set_common_counters(benchmark::State& state, const Cache& cache,
                         std::uint64_t evictions_before) {
  const kvkit::cache_stats st = cache.stats();
  state.counters["per_block"] = benchmark::Counter(
      kPromptBlocks, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["evictions"] = benchmark::Counter(
      static_cast<double>(st.evictions - evictions_before), benchmark::Counter::kAvgIterations);
  state.counters["meta_B_per_block"] = static_cast<double>(st.metadata_bytes) / st.blocks_total;
  state.counters["token_B_per_block"] = static_cast<double>(st.token_bytes) / st.blocks_total;
}

// ---- hit path
// ------------------------------------------------------------------------------------
template <class Cache>
void BM_PrefixCache_HitPath(benchmark::State& state) {
  Cache cache = make_cache<Cache>();
  const auto prompt = make_prompt(0);
  if (!run_request(state, cache, prompt, 0))
    return;  // caches all 128 blocks
  // The last token is always computed, so the last block is allocated fresh (and deduplicated
  // against the cached one at commit).
  constexpr std::uint32_t expected = (kPromptBlocks - 1) * kBlockSize;
  const std::uint64_t ev0 = cache.stats().evictions;
  for (auto _ : state) {
    if (!run_request(state, cache, prompt, expected))
      break;
  }
  set_common_counters(state, cache, ev0);
}

// ---- miss path
// ----------------------------------------------------------------------------------- A ring of 64
// distinct prompts (8,192 blocks) over a 4,096-block cache: by the time a prompt comes round again
// it has been evicted, and in the steady state every admission evicts 128 blocks of the least
// recently finished prompt.
template <class Cache, bool MissRecord = true>
void BM_PrefixCache_MissPath(benchmark::State& state) {
  constexpr std::uint32_t ring = 2 * kCacheBlocks / kPromptBlocks;
  Cache cache = make_cache<Cache>(kCacheBlocks, MissRecord);
  std::vector<std::vector<kvkit::token_id>> prompts;
  for (std::uint32_t i = 0; i < ring; ++i)
    prompts.push_back(make_prompt(1000 + i));
  std::uint32_t next = 0;
  for (std::uint32_t i = 0; i < ring; ++i, next = (next + 1) % ring) {  // reach the steady state
    if (!run_request(state, cache, prompts[next], 0))
      return;
  }
  const std::uint64_t ev0 = cache.stats().evictions;
  for (auto _ : state) {
    if (!run_request(state, cache, prompts[next], 0))
      break;
    next = next + 1 == ring ? 0 : next + 1;
  }
  set_common_counters(state, cache, ev0);
}

// ---- partial hit
// --------------------------------------------------------------------------------- A shared
// 1,843-token prefix (90%) with a distinct 205-token suffix per request: 115 blocks hit, 13 new
// blocks registered. 512 suffixes cycle through a cache that holds about 300 of them, so old suffix
// blocks are evicted while the shared prefix (released last, so most recent) stays.
template <class Cache>
void BM_PrefixCache_PartialHitPath(benchmark::State& state) {
  constexpr std::uint32_t shared = kPromptTokens * 9 / 10;              // 1,843
  constexpr std::uint32_t expected = shared / kBlockSize * kBlockSize;  // 1,840 (115 blocks)
  constexpr std::uint32_t ring = 512;
  Cache cache = make_cache<Cache>();
  const auto prefix = make_prompt(0);
  std::vector<std::vector<kvkit::token_id>> prompts;
  for (std::uint32_t i = 0; i < ring; ++i) {
    auto p = make_prompt(5000 + i);
    std::memcpy(p.data(), prefix.data(), shared * sizeof(kvkit::token_id));
    prompts.push_back(std::move(p));
  }
  if (!run_request(state, cache, prompts[0], 0))
    return;
  std::uint32_t next = 1;
  for (std::uint32_t i = 1; i < ring; ++i, next = (next + 1) % ring) {
    if (!run_request(state, cache, prompts[next], expected))
      return;
  }
  const std::uint64_t ev0 = cache.stats().evictions;
  for (auto _ : state) {
    if (!run_request(state, cache, prompts[next], expected))
      break;
    next = next + 1 == ring ? 0 : next + 1;
  }
  set_common_counters(state, cache, ev0);
}

// ---- baselines
// -----------------------------------------------------------------------------------
void set_per_block(benchmark::State& state) {
  state.counters["per_block"] = benchmark::Counter(
      kPromptBlocks, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

/// Copying the prompt's 2,048 tokens (8 KiB), as admit() does once into the sequence.
void BM_Baseline_MemcpyBlockTokens(benchmark::State& state) {
  const auto prompt = make_prompt(0);
  std::vector<kvkit::token_id> dst(kPromptTokens);
  for (auto _ : state) {
    benchmark::DoNotOptimize(prompt.data());
    std::memcpy(dst.data(), prompt.data(), kPromptTokens * sizeof(kvkit::token_id));
    benchmark::ClobberMemory();
  }
  set_per_block(state);
}

/// One std::unordered_map<uint64_t, uint32_t> lookup per block, keys (block hashes) precomputed,
/// map of 4,096 entries: the floor of a node-based hash table without hashing or verification.
void BM_Baseline_UnorderedMapLookup(benchmark::State& state) {
  std::mt19937_64 rng(7);
  std::unordered_map<std::uint64_t, std::uint32_t> map;
  std::vector<std::uint64_t> keys;
  for (std::uint32_t i = 0; i < kCacheBlocks; ++i) {
    const std::uint64_t k = rng();
    map.emplace(k, i);
    if (i < kPromptBlocks)
      keys.push_back(k);
  }
  for (auto _ : state) {
    std::uint32_t sum = 0;
    for (std::uint64_t k : keys)
      sum += map.find(k)->second;
    benchmark::DoNotOptimize(sum);
  }
  set_per_block(state);
}

/// A minimal hash-table prefix cache lookup: per block, chain-hash the 16 tokens with xxh3 and
/// look the hash up in a std::unordered_map (no verification, no reference counts, no LRU).
void BM_Baseline_ChainHashMapLookup(benchmark::State& state) {
  const auto prompt = make_prompt(0);
  const kvkit::xxh3_hasher hasher(kSeed);
  std::unordered_map<std::uint64_t, std::uint32_t> map;
  std::uint64_t h = 0;
  for (std::uint32_t k = 0; k < kPromptBlocks; ++k) {
    h = hasher.chain(h, std::span(prompt).subspan(k * kBlockSize, kBlockSize));
    map.emplace(h, k);
  }
  std::mt19937_64 rng(7);
  while (map.size() < kCacheBlocks)
    map.emplace(rng(), 0);
  for (auto _ : state) {
    std::uint64_t p = 0;
    std::uint32_t hits = 0;
    for (std::uint32_t k = 0; k < kPromptBlocks; ++k) {
      p = hasher.chain(p, std::span(prompt).subspan(k * kBlockSize, kBlockSize));
      auto it = map.find(p);
      if (it == map.end())
        break;
      ++hits;
    }
    benchmark::DoNotOptimize(hits);
  }
  set_per_block(state);
}

template <class Allocator, class Matcher, class Eviction>
void register_policies() {
  using cache = cache_t<Allocator, Matcher, Eviction>;
  const std::string suffix = "/" + std::string(Matcher::name) + "/" + std::string(Eviction::name) +
                             "/" + std::string(Allocator::name);
  benchmark::RegisterBenchmark(("BM_PrefixCache_HitPath" + suffix).c_str(),
                               BM_PrefixCache_HitPath<cache>);
  benchmark::RegisterBenchmark(("BM_PrefixCache_MissPath" + suffix).c_str(),
                               BM_PrefixCache_MissPath<cache>);
  benchmark::RegisterBenchmark(("BM_PrefixCache_MissPath" + suffix + "/no_miss_record").c_str(),
                               BM_PrefixCache_MissPath<cache, false>);
  benchmark::RegisterBenchmark(("BM_PrefixCache_PartialHitPath" + suffix).c_str(),
                               BM_PrefixCache_PartialHitPath<cache>);
}

const bool registered = [] {
  register_policies<kvkit::free_list_allocator, kvkit::hash_matcher, kvkit::lru_eviction>();
  benchmark::RegisterBenchmark("BM_Baseline_MemcpyBlockTokens", BM_Baseline_MemcpyBlockTokens);
  benchmark::RegisterBenchmark("BM_Baseline_UnorderedMapLookup", BM_Baseline_UnorderedMapLookup);
  benchmark::RegisterBenchmark("BM_Baseline_ChainHashMapLookup", BM_Baseline_ChainHashMapLookup);
  return true;
}();

}  // namespace
