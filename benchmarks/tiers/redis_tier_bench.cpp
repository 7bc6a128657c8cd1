// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Promotion and demotion through the Redis tier on loopback, beside raw hiredis pipelines that
// move the same bytes to and from the same server in the same process. The benchmark starts its
// own redis-server (no persistence) on a free 127.0.0.1 port and stops it at exit.
//
//   BM_Tier_Promote/redis/shape:S/blocks:N        redis_tier::load of an N-block chain into pool
//                                                 blocks (GET, one round trip; verification of
//                                                 header, tokens and XXH3 checksum; copies)
//   BM_Tier_Promote/redis_getex/shape:S/blocks:N  the same with touch_on_hit (GETEX ... EX: a hit
//                                                 restarts the value's time to live), the default
//   BM_Tier_Promote/raw_get/shape:S/blocks:N      the limit: one pipeline of N GETs of the same
//                                                 values through hiredis, K/V segments copied into
//                                                 the same pool blocks, nothing verified
//   BM_Tier_Demote/redis/shape:S/blocks:N         redis_tier::store of N blocks (encode, checksum,
//                                                 pipelined SET ... EX)
//   BM_Tier_Demote/raw_set/shape:S/blocks:N       one pipeline of N SETs of values of the same size
//
// Shapes: 0 = 512 KiB per block (8 layers x 8 heads x 128 x 16 tokens, bf16), 1 = 4 KiB.
// bytes_per_second counts K/V bytes moved.
#include <kvkit/storage.hpp>
#include <kvkit/tier.hpp>
#include <kvkit/tiers/redis_tier.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "support/redis_server.hpp"
#include "tiers/tier_bench_support.hpp"
#include <hiredis/hiredis.h>

namespace {

using kvkit::bench::bench_chain;
using kvkit::bench::shape;

constexpr std::uint32_t kPool = 80;

kvkit::test::redis_server& server() {
  static kvkit::test::redis_server s;  // stopped at exit
  return s;
}

kvkit::redis_tier make_tier(const kvkit::kv_layout& layout, bool touch) {
  kvkit::redis_tier_options o;
  o.port = server().port();
  o.model = "bench";
  o.command_timeout = std::chrono::milliseconds(5000);
  o.touch_on_hit = touch;
  o.on_event = [](const kvkit::tier_event& e) {
    std::fprintf(stderr, "redis tier: %.*s\n", static_cast<int>(e.message.size()),
                 e.message.data());
  };
  return std::move(*kvkit::redis_tier::create(layout, o));
}

void promote(benchmark::State& state, bool touch) {
  const auto blocks = static_cast<std::size_t>(state.range(1));
  const auto layout = shape(state.range(0), kPool);
  auto pool = kvkit::host_storage<kvkit::bf16>::create(layout);
  const bench_chain c(layout, blocks);
  auto tier = make_tier(layout, touch);
  if (tier.store(c.blocks(), kvkit::tier_store_reason::warm) != blocks) {
    state.SkipWithError("store failed");
    return;
  }
  const auto dst = kvkit::bench::pool_views(*pool, 0, blocks);
  const auto chain = c.chain();
  const auto trips = tier.stats().round_trips;
  for (auto _ : state) {
    const auto n = tier.load(chain, dst);
    benchmark::ClobberMemory();
    if (n != blocks) {
      state.SkipWithError("miss");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.bytes()));
  state.counters["round_trips"] = benchmark::Counter(
      static_cast<double>(tier.stats().round_trips - trips), benchmark::Counter::kAvgIterations);
}

void BM_Tier_Promote_Redis(benchmark::State& state) {
  promote(state, false);
}
void BM_Tier_Promote_RedisGetex(benchmark::State& state) {
  promote(state, true);
}

void BM_Tier_Promote_RawGet(benchmark::State& state) {
  const auto blocks = static_cast<std::size_t>(state.range(1));
  const auto layout = shape(state.range(0), kPool);
  auto pool = kvkit::host_storage<kvkit::bf16>::create(layout);
  const bench_chain c(layout, blocks);
  auto tier = make_tier(layout, false);
  if (tier.store(c.blocks(), kvkit::tier_store_reason::warm) != blocks) {
    state.SkipWithError("store failed");
    return;
  }
  std::vector<std::string> keys;
  for (const auto k : c.keys)
    keys.push_back(*tier.data_key(c.ns, k));  // the very values the tier reads
  const auto dst = kvkit::bench::pool_views(*pool, 0, blocks);
  const std::size_t seg = kvkit::kv_segment_bytes(layout);
  const std::size_t segments = kvkit::kv_segments(layout);
  const std::size_t header = kvkit::detail::tier_value_header_bytes(layout);
  redisContext* ctx = redisConnect("127.0.0.1", server().port());
  for (auto _ : state) {
    for (const auto& k : keys)
      redisAppendCommand(ctx, "GET %b", k.data(), k.size());
    for (std::size_t b = 0; b < blocks; ++b) {
      void* r = nullptr;
      if (redisGetReply(ctx, &r) != REDIS_OK || static_cast<redisReply*>(r)->len <= header) {
        state.SkipWithError("raw GET failed");
        break;
      }
      const char* payload = static_cast<redisReply*>(r)->str + header;
      for (std::size_t g = 0; g < segments; ++g)
        std::memcpy(dst[b].data + g * dst[b].stride, payload + g * seg, seg);
      freeReplyObject(r);
    }
    benchmark::ClobberMemory();
  }
  redisFree(ctx);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.bytes()));
  state.counters["round_trips"] = benchmark::Counter(1.0);
}

void BM_Tier_Demote_Redis(benchmark::State& state) {
  const auto blocks = static_cast<std::size_t>(state.range(1));
  const auto layout = shape(state.range(0), kPool);
  const bench_chain c(layout, blocks);
  auto tier = make_tier(layout, false);
  const auto from = c.blocks();
  for (auto _ : state) {
    if (tier.store(from, kvkit::tier_store_reason::eviction) != blocks) {
      state.SkipWithError("store failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.bytes()));
}

void BM_Tier_Demote_RawSet(benchmark::State& state) {
  const auto blocks = static_cast<std::size_t>(state.range(1));
  const auto layout = shape(state.range(0), kPool);
  const bench_chain c(layout, blocks);
  const std::size_t value = kvkit::detail::tier_value_bytes(layout);
  std::vector<std::byte> values(blocks * value);
  for (std::size_t b = 0; b < blocks; ++b)
    std::memcpy(values.data() + b * value + (value - layout.block_bytes_all_layers()),
                c.kv.data() + b * layout.block_bytes_all_layers(), layout.block_bytes_all_layers());
  std::vector<std::string> keys;
  for (std::size_t b = 0; b < blocks; ++b)
    keys.push_back("raw:" + std::to_string(b));
  redisContext* ctx = redisConnect("127.0.0.1", server().port());
  for (auto _ : state) {
    for (std::size_t b = 0; b < blocks; ++b)
      redisAppendCommand(ctx, "SET %b %b EX 3600", keys[b].data(), keys[b].size(),
                         values.data() + b * value, value);
    for (std::size_t b = 0; b < blocks; ++b) {
      void* r = nullptr;
      if (redisGetReply(ctx, &r) != REDIS_OK) {
        state.SkipWithError("raw SET failed");
        break;
      }
      freeReplyObject(r);
    }
  }
  redisFree(ctx);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.bytes()));
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "blocks"});
  b->Args({0, 8})->Args({0, 32})->Args({1, 64});
  b->UseRealTime();  // the server works in another process
}

BENCHMARK(BM_Tier_Promote_Redis)->Name("BM_Tier_Promote/redis")->Apply(shapes);
BENCHMARK(BM_Tier_Promote_RedisGetex)->Name("BM_Tier_Promote/redis_getex")->Apply(shapes);
BENCHMARK(BM_Tier_Promote_RawGet)->Name("BM_Tier_Promote/raw_get")->Apply(shapes);
BENCHMARK(BM_Tier_Demote_Redis)->Name("BM_Tier_Demote/redis")->Apply(shapes);
BENCHMARK(BM_Tier_Demote_RawSet)->Name("BM_Tier_Demote/raw_set")->Apply(shapes);

}  // namespace
