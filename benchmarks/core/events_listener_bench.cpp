// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// What KV events cost a prefix_cache (hash matcher, LRU, free-list allocator, no K/V storage),
// per 16-token block of a 2,048-token prompt (128 blocks), with each listener:
//
//   none        kvkit::no_listener (the default: nothing is called)
//   detached    kvkit::event_listener<null_event_sink> with no sink attached
//   null_sink   kvkit::event_listener<null_event_sink>, a sink that does nothing
//   recording   kvkit::event_listener<recording_event_sink> (an owning copy of every event)
//
//   BM_EventsListener_HitPath/<listener>    prompt cached: admit (127 blocks hit) + commit +
//                                           finish; no block is stored or removed
//   BM_EventsListener_StorePath/<listener>  fresh prompt each time: 128 blocks stored, each
//                                           evicting one (128 stored + 128 removed events)
//
// Counter per_block: iteration time / 128. Compare each listener with `none` of the same run.
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/event_listener.hpp>
#include <kvkit/events.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::uint32_t kBlockSize = 16;
constexpr std::uint32_t kPromptTokens = 2048;
constexpr std::uint32_t kPromptBlocks = kPromptTokens / kBlockSize;  // 128
constexpr std::uint32_t kCacheBlocks = 4096;

std::vector<kvkit::token_id> make_prompt(std::uint64_t which) {
  std::mt19937_64 rng(which * 0x9E3779B97F4A7C15ull + 1);
  std::vector<kvkit::token_id> p(kPromptTokens);
  for (auto& t : p)
    t = static_cast<kvkit::token_id>(rng() % 128000);
  return p;
}

template <class Listener>
using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                    kvkit::lru_eviction, kvkit::no_storage, Listener>;

// The listener under test and its sink (kept alive beside the cache).
struct none {
  using listener = kvkit::no_listener;
  template <class Cache>
  void attach(Cache&) {}
  void trim() {}
};
struct detached {
  using listener = kvkit::event_listener<kvkit::null_event_sink>;
  template <class Cache>
  void attach(Cache&) {}
  void trim() {}
};
struct null_sink {
  using listener = kvkit::event_listener<kvkit::null_event_sink>;
  kvkit::null_event_sink sink;
  template <class Cache>
  void attach(Cache& c) {
    c.listener().attach(sink);
  }
  void trim() {}
};
struct recording {
  using listener = kvkit::event_listener<kvkit::recording_event_sink>;
  kvkit::recording_event_sink sink;
  template <class Cache>
  void attach(Cache& c) {
    c.listener().attach(sink);
  }
  void trim() {
    if (sink.events().size() > 1u << 16)
      sink.clear();  // keeps memory bounded; the cost stays in the measurement
  }
};

template <class Setup>
auto make_cache(Setup& setup) {
  using cache = cache_t<typename Setup::listener>;
  auto storage = kvkit::no_storage::create(kBlockSize, kCacheBlocks);
  kvkit::cache_config cfg;
  cfg.seed = 0x6b766b6974ull;
  cache c = std::move(cache::create(cfg, std::move(*storage)).value());
  setup.attach(c);
  return c;
}

template <class Cache>
bool run_request(benchmark::State& state, Cache& cache, const std::vector<kvkit::token_id>& prompt,
                 std::uint32_t expected_cached) {
  auto adm = cache.admit(prompt);
  if (!adm.ok() || adm->request.cached_tokens != expected_cached) {
    state.SkipWithError(adm.ok() ? "unexpected cached_tokens" : adm.error().message().c_str());
    return false;
  }
  if (!cache.commit(adm->id).ok() || !cache.finish(adm->id).ok()) {
    state.SkipWithError("commit or finish failed");
    return false;
  }
  return true;
}

void per_block(benchmark::State& state) {
  state.counters["per_block"] = benchmark::Counter(
      kPromptBlocks, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

template <class Setup>
void BM_EventsListener_HitPath(benchmark::State& state) {
  Setup setup;
  auto cache = make_cache(setup);
  const auto prompt = make_prompt(0);
  if (!run_request(state, cache, prompt, 0))
    return;
  constexpr std::uint32_t expected = (kPromptBlocks - 1) * kBlockSize;
  for (auto _ : state) {
    if (!run_request(state, cache, prompt, expected))
      break;
    setup.trim();
  }
  per_block(state);
}

template <class Setup>
void BM_EventsListener_StorePath(benchmark::State& state) {
  Setup setup;
  auto cache = make_cache(setup);
  // Fill the pool so that every new block evicts one.
  std::uint64_t next = 0;
  for (std::uint32_t i = 0; i < kCacheBlocks / kPromptBlocks; ++i) {
    if (!run_request(state, cache, make_prompt(next++), 0))
      return;
  }
  std::vector<std::vector<kvkit::token_id>> prompts;
  for (int i = 0; i < 64; ++i)
    prompts.push_back(make_prompt(1000 + i));
  std::size_t i = 0;
  for (auto _ : state) {
    // 64 prompts cycle through a pool of 32 prompts' worth: each is evicted before it returns.
    if (!run_request(state, cache, prompts[i], 0))
      break;
    i = (i + 1) % prompts.size();
    setup.trim();
  }
  per_block(state);
}

BENCHMARK_TEMPLATE(BM_EventsListener_HitPath, none)->Name("BM_EventsListener_HitPath/none");
BENCHMARK_TEMPLATE(BM_EventsListener_HitPath, detached)->Name("BM_EventsListener_HitPath/detached");
BENCHMARK_TEMPLATE(BM_EventsListener_HitPath, null_sink)
    ->Name("BM_EventsListener_HitPath/null_sink");
BENCHMARK_TEMPLATE(BM_EventsListener_HitPath, recording)
    ->Name("BM_EventsListener_HitPath/recording");
BENCHMARK_TEMPLATE(BM_EventsListener_StorePath, none)->Name("BM_EventsListener_StorePath/none");
BENCHMARK_TEMPLATE(BM_EventsListener_StorePath, detached)
    ->Name("BM_EventsListener_StorePath/detached");
BENCHMARK_TEMPLATE(BM_EventsListener_StorePath, null_sink)
    ->Name("BM_EventsListener_StorePath/null_sink");
BENCHMARK_TEMPLATE(BM_EventsListener_StorePath, recording)
    ->Name("BM_EventsListener_StorePath/recording");

}  // namespace
