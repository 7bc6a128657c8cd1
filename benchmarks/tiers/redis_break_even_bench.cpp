// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Break-even of loading against recomputing: for the mini engine's models (examples/mini_engine,
// CPU backend), the time to recompute N blocks of a prompt (the engine's measured prefill) beside
// the time to promote the same N blocks at admission from the host tier and from Redis on
// loopback (kvkit::tiered under a real prefix_cache of the engine's K/V layout). The benchmark
// starts its own redis-server on a free 127.0.0.1 port.
//
//   BM_BreakEven/recompute/model:M/blocks:N   one request of N blocks + 1 token through the engine
//                                             with caching off: its prefill (and first token)
//   BM_BreakEven/host/model:M/blocks:N        admit() promoting N blocks from a host_tier
//   BM_BreakEven/redis/model:M/blocks:N       admit() promoting N blocks from a redis_tier
//
// Models: 0 = tiny (2 layers, 2 KV heads of 32: 4 KiB per bf16 block of 16 tokens),
// 1 = small128 (2 layers, 2 KV heads of 128: 16 KiB per block). Counters: us_per_block (manual
// time per block) and tokens_per_s (the rate it stands for: 16 tokens per block). Loading beats
// recomputing at N blocks when its time is below recompute's; an engine whose prefill runs below
// a tier's tokens_per_s gains by loading from it.
#include <kvkit/kvkit.hpp>
#include <kvkit/tiered.hpp>
#include <kvkit/tiers/host_tier.hpp>
#include <kvkit/tiers/redis_tier.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

#include "support/redis_server.hpp"
#include <mini_engine/cpu_backend.hpp>
#include <mini_engine/engine.hpp>

namespace {

using backend_t = mini_engine::cpu_backend<kvkit::bf16>;
using storage_t = backend_t::storage_type;

kvkit::test::redis_server& server() {
  static kvkit::test::redis_server s;  // stopped at exit
  return s;
}

mini_engine::model_config model(std::int64_t id) {
  return id == 0 ? mini_engine::model_config::tiny() : mini_engine::model_config::small128();
}

kvkit::kv_layout layout_of(const mini_engine::model_config& c, std::uint32_t blocks) {
  return kvkit::kv_layout{.num_layers = c.num_layers,
                          .num_kv_heads = c.num_kv_heads,
                          .head_dim = c.head_dim,
                          .block_size = 16,
                          .num_blocks = blocks};
}

std::vector<kvkit::token_id> prompt(const mini_engine::model_config& c, std::size_t tokens,
                                    std::uint64_t seed) {
  std::vector<kvkit::token_id> p(tokens);
  std::uint64_t s = seed;
  for (auto& t : p) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<kvkit::token_id>((s >> 33) % c.vocab_size);
  }
  return p;
}

// Manual time per block, in microseconds, and the prefill rate it stands for (tokens per second).
void per_block(benchmark::State& state, std::int64_t blocks, double total_s) {
  const double n = static_cast<double>(state.iterations()) * static_cast<double>(blocks);
  if (n == 0 || total_s <= 0)
    return;
  state.counters["us_per_block"] = total_s * 1e6 / n;
  state.counters["tokens_per_s"] = n * 16 / total_s;
}

void BM_BreakEven_Recompute(benchmark::State& state) {
  const auto config = model(state.range(0));
  const auto blocks = state.range(1);
  using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                      kvkit::lru_eviction, storage_t>;
  auto weights = mini_engine::model_weights::random(config);
  auto cache = cache_t::create({}, *storage_t::create(layout_of(config, 256)));
  mini_engine::engine_options o;
  o.max_running = 1;
  o.prefix_caching = false;
  o.max_batch_tokens = 1u << 20;
  mini_engine::engine<cache_t, backend_t> engine(std::move(*cache), backend_t(*weights), o);
  const auto p = prompt(config, static_cast<std::size_t>(blocks) * 16 + 1, 7);
  double total = 0;
  for (auto _ : state) {
    mini_engine::request r;
    r.prompt = p;
    r.max_new_tokens = 1;
    engine.submit(std::move(r));
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = engine.run_until_idle(); !s) {
      state.SkipWithError(s.message().c_str());
      break;
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(dt);
    total += dt;
  }
  per_block(state, blocks, total);
}

template <class Tier>
void promote(benchmark::State& state, Tier tier) {
  const auto config = model(state.range(0));
  const auto blocks = state.range(1);
  using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                      kvkit::lru_eviction, storage_t, kvkit::tiered<Tier>>;
  kvkit::cache_config cc;
  cc.seed = 11;
  auto cache = cache_t::create(cc, *storage_t::create(layout_of(config, 256)));
  cache->listener().template attach<0>(std::move(tier));
  const auto p = prompt(config, static_cast<std::size_t>(blocks) * 16 + 1, 9);
  {  // computed once (bytes as the engine would leave them), warmed into the tier
    auto a = cache->admit(p);
    (void)cache->commit(a->id);
    (void)kvkit::warm_tiers(*cache, a->id);
    (void)cache->finish(a->id);
    cache->clear();  // the pool only: the tier keeps the blocks
  }
  double total = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto a = cache->admit(p);
    const auto t1 = std::chrono::steady_clock::now();
    if (!a || a->tier_cached_tokens[0] != blocks * 16) {
      state.SkipWithError("the tier did not promote every block");
      break;
    }
    const double dt = std::chrono::duration<double>(t1 - t0).count();
    state.SetIterationTime(dt);
    total += dt;
    (void)cache->finish(a->id);
    cache->clear();
  }
  per_block(state, blocks, total);
}

void BM_BreakEven_Host(benchmark::State& state) {
  kvkit::host_tier<>::options o;
  o.capacity_blocks = 1024;
  promote(state, *kvkit::host_tier<>::create(layout_of(model(state.range(0)), 1), std::move(o)));
}

void BM_BreakEven_Redis(benchmark::State& state) {
  kvkit::redis_tier_options o;
  o.port = server().port();
  o.model = "break-even";
  o.command_timeout = std::chrono::milliseconds(5000);
  promote(state, *kvkit::redis_tier::create(layout_of(model(state.range(0)), 1), std::move(o)));
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"model", "blocks"});
  for (std::int64_t m : {0, 1})
    for (std::int64_t n : {1, 4, 16, 64})
      b->Args({m, n});
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(BM_BreakEven_Recompute)->Name("BM_BreakEven/recompute")->Apply(args);
BENCHMARK(BM_BreakEven_Host)->Name("BM_BreakEven/host")->Apply(args);
BENCHMARK(BM_BreakEven_Redis)->Name("BM_BreakEven/redis")->Apply(args);

BENCHMARK_MAIN();
