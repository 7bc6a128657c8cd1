// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Promotion and demotion through the host tier, beside plain memcpy of the same bytes between the
// same buffers in the same process:
//
//   BM_Tier_Promote/host/<shape>/blocks:N    host_tier::load of an N-block chain into pool blocks
//                                            (index lookups, token/parent/namespace checks,
//                                            copies of every layer's K and V, recency update)
//   BM_Tier_Promote/memcpy/<shape>/blocks:N  the same segment copies from a contiguous arena into
//                                            the same pool blocks, nothing else (the limit)
//   BM_Tier_Demote/host/<shape>/blocks:N     host_tier::store of N blocks of the pool (an
//                                            eviction batch), each evicting one entry
//   BM_Tier_Demote/memcpy/<shape>/blocks:N   the same copies into an arena
//
// Shapes: 512KiB (8 layers x 8 heads x 128 x 16 tokens, bf16) and 4KiB (1 x 1 x 64 x 16).
// bytes_per_second counts K/V bytes moved.
#include <kvkit/eviction/lru.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/tier.hpp>
#include <kvkit/tiers/host_tier.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "tiers/tier_bench_support.hpp"

namespace {

using kvkit::bench::bench_chain;
using kvkit::bench::shape;

constexpr std::uint32_t kPool = 80;  // pool blocks: room for the longest chain

void BM_Tier_Promote_Host(benchmark::State& state) {
  const auto blocks = static_cast<std::size_t>(state.range(1));
  const auto layout = shape(state.range(0), kPool);
  auto pool = kvkit::host_storage<kvkit::bf16>::create(layout);
  const bench_chain c(layout, blocks);
  kvkit::host_tier<kvkit::lru_eviction>::options o;
  o.capacity_blocks = static_cast<std::uint32_t>(blocks);
  auto tier = kvkit::host_tier<kvkit::lru_eviction>::create(layout, o);
  if (!pool.ok() || !tier.ok() ||
      tier->store(c.blocks(), kvkit::tier_store_reason::eviction) != blocks) {
    state.SkipWithError("set-up failed");
    return;
  }
  const auto dst = kvkit::bench::pool_views(*pool, 0, blocks);
  const auto chain = c.chain();
  for (auto _ : state) {
    const auto n = tier->load(chain, dst);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
    if (n != blocks) {
      state.SkipWithError("miss");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.bytes()));
  state.counters["blocks"] = static_cast<double>(blocks);
}

void BM_Tier_Promote_Memcpy(benchmark::State& state) {
  const auto blocks = static_cast<std::size_t>(state.range(1));
  const auto layout = shape(state.range(0), kPool);
  auto pool = kvkit::host_storage<kvkit::bf16>::create(layout);
  const bench_chain c(layout, blocks);  // c.kv is the arena: contiguous blocks
  const auto dst = kvkit::bench::pool_views(*pool, 0, blocks);
  const std::size_t seg = kvkit::kv_segment_bytes(layout);
  const std::size_t segments = kvkit::kv_segments(layout);
  for (auto _ : state) {
    for (std::size_t b = 0; b < blocks; ++b) {
      const std::byte* src = c.kv.data() + b * layout.block_bytes_all_layers();
      for (std::size_t g = 0; g < segments; ++g)
        std::memcpy(dst[b].data + g * dst[b].stride, src + g * seg, seg);
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.bytes()));
  state.counters["blocks"] = static_cast<double>(blocks);
}

void BM_Tier_Demote_Host(benchmark::State& state) {
  const auto blocks = static_cast<std::size_t>(state.range(1));
  const auto layout = shape(state.range(0), kPool);
  auto pool = kvkit::host_storage<kvkit::bf16>::create(layout);
  // Two chains alternate, so every store copies (the other chain's blocks are evicted).
  const bench_chain c(layout, blocks);
  bench_chain d(layout, blocks);
  d.ns.key ^= 1;
  for (auto& k : d.keys)
    k ^= 0x5555;
  kvkit::host_tier<kvkit::lru_eviction>::options o;
  o.capacity_blocks = static_cast<std::uint32_t>(blocks);
  auto tier = kvkit::host_tier<kvkit::lru_eviction>::create(layout, o);
  if (!pool.ok() || !tier.ok()) {
    state.SkipWithError("set-up failed");
    return;
  }
  // Source: the pool's blocks, as an eviction batch would offer them.
  std::vector<kvkit::tier_block> from_c = c.blocks();
  std::vector<kvkit::tier_block> from_d = d.blocks();
  for (std::size_t i = 0; i < blocks; ++i) {
    from_c[i].kv = kvkit::block_view(std::as_const(*pool), static_cast<kvkit::block_id>(i));
    from_d[i].kv = from_c[i].kv;
  }
  bool flip = false;
  for (auto _ : state) {
    const auto n = tier->store(flip ? from_d : from_c, kvkit::tier_store_reason::eviction);
    flip = !flip;
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.bytes()));
  state.counters["blocks"] = static_cast<double>(blocks);
}

void BM_Tier_Demote_Memcpy(benchmark::State& state) {
  const auto blocks = static_cast<std::size_t>(state.range(1));
  const auto layout = shape(state.range(0), kPool);
  auto pool = kvkit::host_storage<kvkit::bf16>::create(layout);
  std::vector<std::byte> arena(blocks * layout.block_bytes_all_layers());
  const std::size_t seg = kvkit::kv_segment_bytes(layout);
  const std::size_t segments = kvkit::kv_segments(layout);
  for (auto _ : state) {
    for (std::size_t b = 0; b < blocks; ++b) {
      const auto src = kvkit::block_view(std::as_const(*pool), static_cast<kvkit::block_id>(b));
      std::byte* dst = arena.data() + b * layout.block_bytes_all_layers();
      for (std::size_t g = 0; g < segments; ++g)
        std::memcpy(dst + g * seg, src.data + g * src.stride, seg);
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(
      static_cast<std::int64_t>(state.iterations() * blocks * layout.block_bytes_all_layers()));
  state.counters["blocks"] = static_cast<double>(blocks);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "blocks"});
  b->Args({0, 8})->Args({0, 32})->Args({1, 64});
}

BENCHMARK(BM_Tier_Promote_Host)->Name("BM_Tier_Promote/host")->Apply(shapes);
BENCHMARK(BM_Tier_Promote_Memcpy)->Name("BM_Tier_Promote/memcpy")->Apply(shapes);
BENCHMARK(BM_Tier_Demote_Host)->Name("BM_Tier_Demote/host")->Apply(shapes);
BENCHMARK(BM_Tier_Demote_Memcpy)->Name("BM_Tier_Demote/memcpy")->Apply(shapes);

}  // namespace
