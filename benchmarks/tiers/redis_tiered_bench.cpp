// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Writes to Redis through a pool (kvkit::tiered under a real prefix_cache): what one cache
// operation that moves N blocks down costs, round trips included. The benchmark starts its own
// redis-server (no persistence) on a free 127.0.0.1 port and stops it at exit.
//
//   BM_Tiered_Demote/redis/blocks:N        admit() of an N-block prompt into a pool of N blocks
//                                          holding another N-block prompt: it evicts those N
//                                          blocks into Redis and promotes N - 1 of its own from
//                                          there (the two prompts alternate), then commit() and
//                                          finish()
//   BM_Tiered_WriteThrough/redis/blocks:N  commit() of N freshly computed blocks with
//                                          write-through (a new prompt each time; its admission
//                                          is not timed)
//
// Blocks of 16 tokens, 2 layers x 2 KV heads x 32, bf16: 8 KiB each. Counters: round_trips per
// operation (the tier's own count) and us_per_block.
#include <kvkit/kvkit.hpp>
#include <kvkit/tiered.hpp>
#include <kvkit/tiers/redis_tier.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "support/redis_server.hpp"

namespace {

using storage_t = kvkit::host_storage<kvkit::bf16>;
using cache_t =
    kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher, kvkit::lru_eviction,
                        storage_t, kvkit::tiered<kvkit::redis_tier>>;

kvkit::test::redis_server& server() {
  static kvkit::test::redis_server s;  // stopped at exit
  return s;
}

kvkit::kv_layout layout_of(std::uint32_t blocks) {
  return kvkit::kv_layout{
      .num_layers = 2, .num_kv_heads = 2, .head_dim = 32, .block_size = 16, .num_blocks = blocks};
}

cache_t make_cache(std::uint32_t blocks, kvkit::tier_write_policy write, const char* model) {
  kvkit::cache_config cc;
  cc.seed = 17;
  auto cache = cache_t::create(cc, *storage_t::create(layout_of(blocks)));
  kvkit::redis_tier_options o;
  o.port = server().port();
  o.model = model;
  o.write = write;
  o.ttl = std::chrono::seconds(30);
  o.command_timeout = std::chrono::milliseconds(5000);
  o.on_event = [](const kvkit::tier_event& e) {
    std::fprintf(stderr, "redis tier: %.*s\n", static_cast<int>(e.message.size()),
                 e.message.data());
  };
  cache->listener().attach<0>(*kvkit::redis_tier::create(layout_of(1), std::move(o)));
  return std::move(*cache);
}

std::vector<kvkit::token_id> prompt(std::size_t tokens, std::uint64_t seed) {
  std::vector<kvkit::token_id> p(tokens);
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (auto& t : p) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    t = static_cast<kvkit::token_id>(s % 32000);
  }
  return p;
}

std::uint64_t round_trips(const cache_t& c) {
  return c.listener().stats().levels[0].tier.round_trips;
}

void report(benchmark::State& state, std::int64_t blocks, double seconds, std::uint64_t trips,
            std::uint64_t ops) {
  const auto n = static_cast<double>(ops == 0 ? 1 : ops);
  state.counters["us_per_block"] = seconds * 1e6 / (n * static_cast<double>(blocks));
  state.counters["round_trips"] = static_cast<double>(trips) / n;
  state.SetBytesProcessed(static_cast<std::int64_t>(ops) * blocks *
                          static_cast<std::int64_t>(layout_of(1).block_bytes_all_layers()));
}

void BM_Tiered_Demote_Redis(benchmark::State& state) {
  const auto blocks = static_cast<std::uint32_t>(state.range(0));
  auto cache = make_cache(blocks, kvkit::tier_write_policy::on_eviction, "bench-demote");
  const std::vector<kvkit::token_id> p[2] = {prompt(blocks * 16, 1), prompt(blocks * 16, 2)};
  for (const auto& x : p) {  // both chains once, so each admission evicts N and promotes N - 1
    auto a = cache.admit(x);
    (void)cache.commit(a->id);
    (void)cache.finish(a->id);
  }
  double total = 0;
  std::uint64_t trips = 0, ops = 0;
  std::size_t i = 0;
  for (auto _ : state) {
    const std::uint64_t before = round_trips(cache);
    const auto t0 = std::chrono::steady_clock::now();
    auto a = cache.admit(p[i++ % 2]);
    if (!a || a->tier_cached_tokens[0] != (blocks - 1) * 16) {
      state.SkipWithError("the admission did not promote the demoted chain");
      break;
    }
    (void)cache.commit(a->id);
    (void)cache.finish(a->id);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(dt);
    total += dt;
    trips += round_trips(cache) - before;
    ++ops;
  }
  report(state, blocks, total, trips, ops);
}

void BM_Tiered_WriteThrough_Redis(benchmark::State& state) {
  const auto blocks = static_cast<std::uint32_t>(state.range(0));
  auto cache = make_cache(blocks, kvkit::tier_write_policy::through, "bench-through");
  double total = 0;
  std::uint64_t trips = 0, ops = 0;
  static std::uint64_t seed = 100;  // never reused: no prompt shares a prefix with another
  for (auto _ : state) {
    auto a = cache.admit(prompt(blocks * 16, seed++));  // a miss: nothing promoted
    const std::uint64_t before = round_trips(cache);
    const auto t0 = std::chrono::steady_clock::now();
    auto c = cache.commit(a->id);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!c || c->registered_blocks != blocks) {
      state.SkipWithError("the commit did not register every block");
      break;
    }
    state.SetIterationTime(dt);
    total += dt;
    trips += round_trips(cache) - before;
    ++ops;
    (void)cache.finish(a->id);
  }
  report(state, blocks, total, trips, ops);
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"blocks"});
  for (std::int64_t n : {8, 64})
    b->Args({n});
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(300);
}

}  // namespace

BENCHMARK(BM_Tiered_Demote_Redis)->Name("BM_Tiered_Demote/redis")->Apply(args);
BENCHMARK(BM_Tiered_WriteThrough_Redis)->Name("BM_Tiered_WriteThrough/redis")->Apply(args);

BENCHMARK_MAIN();
