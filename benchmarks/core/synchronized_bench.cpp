// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Cost of the lock of synchronized_cache, and its contention, on the hit path of a cached
// 2,048-token prompt in 16-token blocks (127 blocks hit, 1 new; no_storage, hash/lru/free_list).
// Each iteration is one request's life: admit + commit + finish.
//
//   BM_Unsynchronized_AdmitFinish/<policies>                  baseline: prefix_cache, 1 thread
//   BM_Synchronized_AdmitFinish/<policies>/threads:N          3 locked calls per request
//   BM_Synchronized_AdmitFinishWithLock/<policies>/threads:N  1 with_lock() call per request
//
// All threads share one cache and admit the same prompt (every request hits). Wall-clock time
// (UseRealTime). Counter:
//   per_request   wall time per request over all threads (1 / aggregate throughput)
// With N threads on fewer than N cores, per_request measures throughput under oversubscription,
// not scaling. With one lock per call, the requests of different threads overlap, so the 127 hit
// blocks stay referenced and skip the LRU erase/insert that a lone request pays; with_lock() makes
// each request atomic, so it measures pure serialisation plus lock hand-over.
#include <kvkit/kvkit.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace {

constexpr std::uint32_t kBlockSize = 16;
constexpr std::uint32_t kPromptTokens = 2048;
constexpr std::uint32_t kPromptBlocks = kPromptTokens / kBlockSize;  // 128
constexpr std::uint32_t kCacheBlocks = 4096;
constexpr std::uint64_t kSeed = 0x6b766b6974ull;
constexpr std::uint32_t kExpectedCached = (kPromptBlocks - 1) * kBlockSize;

std::vector<kvkit::token_id> make_prompt() {
  std::mt19937_64 rng(1);
  std::vector<kvkit::token_id> p(kPromptTokens);
  for (auto& t : p)
    t = static_cast<kvkit::token_id>(rng() % 128000);
  return p;
}

template <class Cache>
Cache make_cache() {
  auto storage = kvkit::no_storage::create(kBlockSize, kCacheBlocks);
  kvkit::cache_config cfg;
  cfg.seed = kSeed;
  return std::move(Cache::create(cfg, std::move(*storage)).value());
}

/// admit + commit + finish on anything with prefix_cache's members; false (benchmark marked
/// failed) on an error or an unexpected hit length.
template <class Cache>
bool run_request(benchmark::State& state, Cache& cache, std::span<const kvkit::token_id> prompt) {
  auto adm = cache.admit(prompt);
  if (!adm.ok()) {
    state.SkipWithError(("admit failed: " + adm.error().message()).c_str());
    return false;
  }
  if (adm->request.cached_tokens != kExpectedCached) {
    state.SkipWithError(("cached_tokens = " + std::to_string(adm->request.cached_tokens)).c_str());
    return false;
  }
  if (auto com = cache.commit(adm->id); !com.ok()) {
    state.SkipWithError(("commit failed: " + com.error().message()).c_str());
    return false;
  }
  if (auto st = cache.finish(adm->id); !st.ok()) {
    state.SkipWithError(("finish failed: " + st.message()).c_str());
    return false;
  }
  return true;
}

void set_per_request(benchmark::State& state) {
  // Wall time over the requests of all threads (kAvgThreads: every thread adds this counter).
  state.counters["per_request"] =
      benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate |
                                benchmark::Counter::kAvgThreads | benchmark::Counter::kInvert);
}

/// Caches the prompt's 128 blocks (the first request misses).
template <class Cache>
bool warm(benchmark::State& state, Cache& cache, std::span<const kvkit::token_id> prompt) {
  auto adm = cache.admit(prompt);
  if (!adm.ok() || !cache.commit(adm->id).ok() || !cache.finish(adm->id).ok()) {
    state.SkipWithError("warming the cache failed");
    return false;
  }
  return true;
}

template <class Cache>
void BM_Unsynchronized_AdmitFinish(benchmark::State& state) {
  Cache cache = make_cache<Cache>();
  const auto prompt = make_prompt();
  if (!warm(state, cache, prompt))
    return;
  for (auto _ : state) {
    if (!run_request(state, cache, prompt))
      break;
  }
  set_per_request(state);
}

/// One cache shared by the threads of a run; made by thread 0 before the loop (Google Benchmark
/// starts every thread's loop together) and dropped by thread 0 after it.
template <class Sync>
std::unique_ptr<Sync> shared_cache;

template <class Sync>
void BM_Synchronized_AdmitFinish(benchmark::State& state) {
  const auto prompt = make_prompt();
  if (state.thread_index() == 0) {
    shared_cache<Sync> = std::make_unique<Sync>(make_cache<typename Sync::cache_type>());
    (void)warm(state, *shared_cache<Sync>, prompt);
  }
  for (auto _ : state) {
    if (!run_request(state, *shared_cache<Sync>, prompt))
      break;
  }
  set_per_request(state);
  if (state.thread_index() == 0)
    shared_cache<Sync>.reset();
}

template <class Sync>
void BM_Synchronized_AdmitFinishWithLock(benchmark::State& state) {
  const auto prompt = make_prompt();
  if (state.thread_index() == 0) {
    shared_cache<Sync> = std::make_unique<Sync>(make_cache<typename Sync::cache_type>());
    (void)warm(state, *shared_cache<Sync>, prompt);
  }
  for (auto _ : state) {
    const bool ok = shared_cache<Sync>->with_lock(
        [&](typename Sync::cache_type& c) { return run_request(state, c, prompt); });
    if (!ok)
      break;
  }
  set_per_request(state);
  if (state.thread_index() == 0)
    shared_cache<Sync>.reset();
}

template <class Allocator, class Matcher, class Eviction>
void register_policies() {
  using cache = kvkit::prefix_cache<Allocator, Matcher, Eviction, kvkit::no_storage>;
  using sync = kvkit::synchronized_cache<cache>;
  const std::string suffix = "/" + std::string(Matcher::name) + "/" + std::string(Eviction::name) +
                             "/" + std::string(Allocator::name);
  benchmark::RegisterBenchmark(("BM_Unsynchronized_AdmitFinish" + suffix).c_str(),
                               BM_Unsynchronized_AdmitFinish<cache>)
      ->UseRealTime();
  for (int threads : {1, 2, 4, 8}) {
    benchmark::RegisterBenchmark(("BM_Synchronized_AdmitFinish" + suffix).c_str(),
                                 BM_Synchronized_AdmitFinish<sync>)
        ->UseRealTime()
        ->Threads(threads);
  }
  for (int threads : {1, 2, 4, 8}) {
    benchmark::RegisterBenchmark(("BM_Synchronized_AdmitFinishWithLock" + suffix).c_str(),
                                 BM_Synchronized_AdmitFinishWithLock<sync>)
        ->UseRealTime()
        ->Threads(threads);
  }
}

const bool registered = [] {
  register_policies<kvkit::free_list_allocator, kvkit::hash_matcher, kvkit::lru_eviction>();
  return true;
}();

}  // namespace
