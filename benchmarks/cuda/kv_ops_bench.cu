// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// K/V writes and block copies, bf16, head_dim 128, 8 K/V heads, page 16:
//   BM_Cuda_AppendKv/tokens        new tokens' K and V into random slots (bytes read + written)
//   BM_Cuda_CopyBlocks/pairs       block pairs x 32 layers x (K, V) in one launch
// Reported: GB/s beside limit_GB/s, the device-to-device copy bandwidth measured in the same
// process (BM_Limits_MemcpyD2D).
#include <kvkit/append_kv.hpp>
#include <kvkit/copy_blocks.hpp>
#include <kvkit/kernel_registry.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cuda/gpu_bench_support.hpp"

namespace {

using namespace kvkit;
using namespace kvkit::bench;

constexpr std::uint32_t num_kv_heads = 8;
constexpr std::uint32_t head_dim = 128;
constexpr std::uint32_t page = 16;

void BM_Cuda_AppendKv(benchmark::State& state) {
  KVKIT_BENCH_REQUIRE_DEVICE(state);
  const auto tokens = static_cast<std::uint32_t>(state.range(0));
  if (!find_kernel_config(head_dim, cuda_dtype::bf16)) {
    state.SkipWithError("hd128_bf16 not built (KVKIT_KERNEL_CONFIGS)");
    return;
  }
  const std::uint32_t num_blocks = std::max<std::uint32_t>(4 * tokens / page, 1024);
  const std::size_t row_bytes = std::size_t{num_kv_heads} * head_dim * 2;
  device_memory k_new(tokens * row_bytes), v_new(tokens * row_bytes);
  device_memory k_cache(std::size_t{num_blocks} * page * row_bytes), v_cache(k_cache.bytes());
  device_memory slots(tokens * sizeof(std::int64_t));
  if (!k_cache.ok() || !v_cache.ok()) {
    state.SkipWithError("cudaMalloc failed");
    return;
  }
  KVKIT_BENCH_CUDA(state, fill_random(k_new.get(), k_new.bytes() / 2, 1));
  KVKIT_BENCH_CUDA(state, fill_random(v_new.get(), v_new.bytes() / 2, 2));
  std::vector<std::int64_t> all(std::size_t{num_blocks} * page);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), std::mt19937(7));
  KVKIT_BENCH_CUDA(state,
                   cudaMemcpy(slots.get(), all.data(), slots.bytes(), cudaMemcpyHostToDevice));
  append_kv_args a;
  a.k_new = k_new.get();
  a.v_new = v_new.get();
  a.slot_mapping = slots.get<std::int64_t>();
  a.k_cache = k_cache.get();
  a.v_cache = v_cache.get();
  a.num_tokens = tokens;
  a.num_kv_heads = num_kv_heads;
  a.head_dim = head_dim;
  a.block_size = page;
  a.num_blocks = num_blocks;
  a.dtype = cuda_dtype::bf16;
  std::string failure;  // the first run() error, if any
  const double seconds = time_with_graph(state, 20, [&](cudaStream_t stream) {
    if (const status st = run(a, nullptr, stream); !st.ok() && failure.empty())
      failure = st.message();
  });
  if (!failure.empty()) {
    state.SkipWithError(failure.c_str());
    return;
  }
  report_bandwidth(state, 2.0 * 2.0 * double(tokens) * row_bytes, seconds);  // K+V, read+write
}

void BM_Cuda_CopyBlocks(benchmark::State& state) {
  KVKIT_BENCH_REQUIRE_DEVICE(state);
  const auto num_pairs = static_cast<std::uint32_t>(state.range(0));
  kv_layout l;
  l.num_layers = 32;
  l.num_kv_heads = num_kv_heads;
  l.head_dim = head_dim;
  l.block_size = page;
  l.num_blocks = std::max<std::uint32_t>(2 * num_pairs, 64);
  l.type = dtype::bf16;
  device_memory pool(l.total_bytes());
  device_memory pairs(num_pairs * sizeof(block_copy));
  if (!pool.ok()) {
    state.SkipWithError("cudaMalloc failed");
    return;
  }
  KVKIT_BENCH_CUDA(state, fill_random(pool.get(), pool.bytes() / 2, 1));
  std::vector<std::uint32_t> ids(l.num_blocks);
  std::iota(ids.begin(), ids.end(), 0u);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(3));
  std::vector<block_copy> h_pairs(num_pairs);
  for (std::uint32_t i = 0; i < num_pairs; ++i)
    h_pairs[i] = {ids[i], ids[num_pairs + i]};
  KVKIT_BENCH_CUDA(state,
                   cudaMemcpy(pairs.get(), h_pairs.data(), pairs.bytes(), cudaMemcpyHostToDevice));
  copy_blocks_args a;
  a.base = pool.get();
  a.layout = l;
  a.pairs = pairs.get<block_copy>();
  a.num_pairs = num_pairs;
  std::string failure;  // the first run() error, if any
  const double seconds = time_with_graph(state, 5, [&](cudaStream_t stream) {
    if (const status st = run(a, nullptr, stream); !st.ok() && failure.empty())
      failure = st.message();
  });
  if (!failure.empty()) {
    state.SkipWithError(failure.c_str());
    return;
  }
  report_bandwidth(state, 2.0 * double(num_pairs) * double(l.block_bytes_all_layers()), seconds);
}

}  // namespace

BENCHMARK(BM_Cuda_AppendKv)
    ->ArgName("tokens")
    ->Arg(1)
    ->Arg(64)
    ->Arg(512)
    ->Arg(4096)
    ->Arg(32768)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Cuda_CopyBlocks)
    ->ArgName("pairs")
    ->Arg(1)
    ->Arg(16)
    ->Arg(256)
    ->Arg(1024)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
KVKIT_REGISTER_LIMIT_BENCHMARKS();
