// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Paged decode, bf16, head_dim 128, 32 query heads / 8 K/V heads (GQA group 4):
//   BM_Cuda_PagedDecode/batch/ctx/page   batch 1..256 x context 1K..32K at page 16, and a page
//                                        size sweep 1..128 at batch 16, context 8K.
// Reported: GB/s (K/V bytes read + q/o bytes, per launch) beside limit_GB/s, the
// device-to-device copy bandwidth measured in the same process (BM_Limits_MemcpyD2D). Inputs
// rotate among several copies of the K/V so that small cases do not run from L2.
#include <kvkit/kernel_registry.hpp>
#include <kvkit/paged_decode.hpp>

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

constexpr std::uint32_t num_qo_heads = 32;
constexpr std::uint32_t num_kv_heads = 8;
constexpr std::uint32_t head_dim = 128;

void BM_Cuda_PagedDecode(benchmark::State& state) {
  KVKIT_BENCH_REQUIRE_DEVICE(state);
  const auto batch = static_cast<std::uint32_t>(state.range(0));
  const auto ctx = static_cast<std::uint32_t>(state.range(1));
  const auto page = static_cast<std::uint32_t>(state.range(2));
  if (!find_kernel_config(head_dim, cuda_dtype::bf16)) {
    state.SkipWithError("hd128_bf16 not built (KVKIT_KERNEL_CONFIGS)");
    return;
  }

  const std::uint32_t pages_per_seq = (ctx + page - 1) / page;
  const std::size_t pages = std::size_t{batch} * pages_per_seq;
  const std::size_t page_bytes = std::size_t{page} * num_kv_heads * head_dim * 2;
  const std::size_t kv_bytes = 2 * pages * page_bytes;
  int device = 0, l2 = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device);
  // Enough copies that consecutive launches never find their K/V in L2.
  const std::size_t copies =
      std::clamp<std::size_t>((4 * std::size_t(l2) + kv_bytes - 1) / kv_bytes, 1, 16);

  device_memory k(copies * pages * page_bytes), v(copies * pages * page_bytes);
  device_memory q(std::size_t{batch} * num_qo_heads * head_dim * 2);
  device_memory o(q.bytes());
  device_memory indices(copies * pages * 4), indptr((batch + 1) * 4), kv_len(batch * 4);
  if (!k.ok() || !v.ok() || !q.ok() || !o.ok() || !indices.ok()) {
    state.SkipWithError("cudaMalloc failed (case too large for this GPU)");
    return;
  }
  KVKIT_BENCH_CUDA(state, fill_random(k.get(), k.bytes() / 2, 1));
  KVKIT_BENCH_CUDA(state, fill_random(v.get(), v.bytes() / 2, 2));
  KVKIT_BENCH_CUDA(state, fill_random(q.get(), q.bytes() / 2, 3));

  // Pages of copy c are a random permutation of [c * pages, (c + 1) * pages).
  std::vector<std::uint32_t> h_indices(copies * pages);
  std::mt19937 rng(42);
  for (std::size_t c = 0; c < copies; ++c) {
    auto first = h_indices.begin() + std::ptrdiff_t(c * pages);
    std::iota(first, first + std::ptrdiff_t(pages), static_cast<std::uint32_t>(c * pages));
    std::shuffle(first, first + std::ptrdiff_t(pages), rng);
  }
  std::vector<std::uint32_t> h_indptr(batch + 1), h_len(batch, ctx);
  for (std::uint32_t b = 0; b <= batch; ++b)
    h_indptr[b] = b * pages_per_seq;
  KVKIT_BENCH_CUDA(
      state, cudaMemcpy(indices.get(), h_indices.data(), indices.bytes(), cudaMemcpyHostToDevice));
  KVKIT_BENCH_CUDA(
      state, cudaMemcpy(indptr.get(), h_indptr.data(), indptr.bytes(), cudaMemcpyHostToDevice));
  KVKIT_BENCH_CUDA(state,
                   cudaMemcpy(kv_len.get(), h_len.data(), kv_len.bytes(), cudaMemcpyHostToDevice));

  std::vector<paged_decode_args> args(copies);
  for (std::size_t c = 0; c < copies; ++c) {
    paged_decode_args& a = args[c];
    a.q = q.get();
    a.o = o.get();
    a.kv.k = k.get();
    a.kv.v = v.get();
    a.kv.indptr = indptr.get<std::uint32_t>();
    a.kv.indices = indices.get<std::uint32_t>() + c * pages;
    a.kv.kv_len = kv_len.get<std::uint32_t>();
    a.kv.batch = batch;
    a.kv.block_size = page;
    a.kv.num_kv_heads = num_kv_heads;
    a.kv.head_dim = head_dim;
    a.num_qo_heads = num_qo_heads;
    a.dtype = cuda_dtype::bf16;
    a.max_kv_len = ctx;
  }
  if (const status s = can_implement(args[0]); !s.ok()) {
    state.SkipWithError(s.message().c_str());
    return;
  }
  device_memory ws(workspace_size(args[0]));
  std::size_t next = 0;
  std::string failure;  // the first run() error, if any
  const double seconds = time_with_graph(state, 10, [&](cudaStream_t stream) {
    if (const status st = run(args[next], ws.get(), stream); !st.ok() && failure.empty())
      failure = st.message();
    next = (next + 1) % copies;
  });
  if (!failure.empty()) {
    state.SkipWithError(failure.c_str());
    return;
  }
  // K and V of every context token, plus q read and o written.
  const double bytes =
      2.0 * double(batch) * ctx * num_kv_heads * head_dim * 2 + 2.0 * double(q.bytes());
  report_bandwidth(state, bytes, seconds);
  state.counters["splits"] = plan(args[0]).num_splits;
}

void decode_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "ctx", "page"});
  for (std::int64_t batch : {1, 16, 64, 256}) {
    for (std::int64_t ctx : {1024, 2048, 4096, 8192, 16384, 32768}) {
      if (batch * ctx <= std::int64_t{4} << 20)
        b->Args({batch, ctx, 16});  // <= 16 GiB of K/V
    }
  }
  for (std::int64_t page : {1, 2, 4, 8, 32, 64, 128})
    b->Args({16, 8192, page});
}

}  // namespace

BENCHMARK(BM_Cuda_PagedDecode)->Apply(decode_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
KVKIT_REGISTER_LIMIT_BENCHMARKS();
