// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Paged prefill over a cached prefix, bf16, head_dim 128, 32 query heads / 8 K/V heads, causal,
// page 16:
//   BM_Cuda_PagedPrefill/batch/prefix/new   prefix 0 / 2K / 8K cached tokens + 512 new tokens,
//                                           batch 1..16.
// Reported: TFLOP/s (4 * head_dim per visible (query, key) pair and query head: QK^T and PV)
// beside limit_TFLOP/s, the cuBLAS bf16 GEMM rate measured in the same process
// (BM_Limits_CublasGemmBf16).
#include <kvkit/kernel_registry.hpp>
#include <kvkit/paged_prefill.hpp>

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
constexpr std::uint32_t page = 16;

void BM_Cuda_PagedPrefill(benchmark::State& state) {
  KVKIT_BENCH_REQUIRE_DEVICE(state);
  const auto batch = static_cast<std::uint32_t>(state.range(0));
  const auto prefix = static_cast<std::uint32_t>(state.range(1));
  const auto n = static_cast<std::uint32_t>(state.range(2));
  if (!find_kernel_config(head_dim, cuda_dtype::bf16)) {
    state.SkipWithError("hd128_bf16 not built (KVKIT_KERNEL_CONFIGS)");
    return;
  }
  const std::uint32_t ctx = prefix + n;
  const std::uint32_t pages_per_seq = (ctx + page - 1) / page;
  const std::size_t pages = std::size_t{batch} * pages_per_seq;
  const std::size_t page_bytes = std::size_t{page} * num_kv_heads * head_dim * 2;
  const std::size_t total_q = std::size_t{batch} * n;
  device_memory k(pages * page_bytes), v(pages * page_bytes);
  device_memory q(total_q * num_qo_heads * head_dim * 2), o(q.bytes());
  device_memory indices(pages * 4), indptr((batch + 1) * 4), qo_indptr((batch + 1) * 4),
      kv_len(batch * 4);
  if (!k.ok() || !v.ok() || !q.ok() || !o.ok()) {
    state.SkipWithError("cudaMalloc failed");
    return;
  }
  KVKIT_BENCH_CUDA(state, fill_random(k.get(), k.bytes() / 2, 1));
  KVKIT_BENCH_CUDA(state, fill_random(v.get(), v.bytes() / 2, 2));
  KVKIT_BENCH_CUDA(state, fill_random(q.get(), q.bytes() / 2, 3));
  std::vector<std::uint32_t> h_indices(pages);
  std::iota(h_indices.begin(), h_indices.end(), 0u);
  std::shuffle(h_indices.begin(), h_indices.end(), std::mt19937(42));
  std::vector<std::uint32_t> h_indptr(batch + 1), h_qo(batch + 1), h_len(batch, ctx);
  for (std::uint32_t b = 0; b <= batch; ++b) {
    h_indptr[b] = b * pages_per_seq;
    h_qo[b] = b * n;
  }
  KVKIT_BENCH_CUDA(
      state, cudaMemcpy(indices.get(), h_indices.data(), indices.bytes(), cudaMemcpyHostToDevice));
  KVKIT_BENCH_CUDA(
      state, cudaMemcpy(indptr.get(), h_indptr.data(), indptr.bytes(), cudaMemcpyHostToDevice));
  KVKIT_BENCH_CUDA(
      state, cudaMemcpy(qo_indptr.get(), h_qo.data(), qo_indptr.bytes(), cudaMemcpyHostToDevice));
  KVKIT_BENCH_CUDA(state,
                   cudaMemcpy(kv_len.get(), h_len.data(), kv_len.bytes(), cudaMemcpyHostToDevice));

  paged_prefill_args a;
  a.q = q.get();
  a.qo_indptr = qo_indptr.get<std::uint32_t>();
  a.o = o.get();
  a.kv.k = k.get();
  a.kv.v = v.get();
  a.kv.indptr = indptr.get<std::uint32_t>();
  a.kv.indices = indices.get<std::uint32_t>();
  a.kv.kv_len = kv_len.get<std::uint32_t>();
  a.kv.batch = batch;
  a.kv.block_size = page;
  a.kv.num_kv_heads = num_kv_heads;
  a.kv.head_dim = head_dim;
  a.num_qo_heads = num_qo_heads;
  a.causal = true;
  a.dtype = cuda_dtype::bf16;
  a.max_qo_len = n;
  if (const status s = can_implement(a); !s.ok()) {
    state.SkipWithError(s.message().c_str());
    return;
  }
  std::string failure;  // the first run() error, if any
  const double seconds = time_with_graph(state, 5, [&](cudaStream_t stream) {
    if (const status st = run(a, nullptr, stream); !st.ok() && failure.empty())
      failure = st.message();
  });
  if (!failure.empty()) {
    state.SkipWithError(failure.c_str());
    return;
  }
  // Visible (query, key) pairs per sequence and head: n * prefix + n (n + 1) / 2.
  const double pairs = double(n) * prefix + double(n) * (n + 1) / 2.0;
  report_flops(state, 4.0 * head_dim * pairs * num_qo_heads * batch, seconds);
}

void prefill_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "prefix", "new"});
  for (std::int64_t prefix : {0, 2048, 8192}) {
    for (std::int64_t batch : {1, 2, 4, 8, 16})
      b->Args({batch, prefix, 512});
  }
}

}  // namespace

BENCHMARK(BM_Cuda_PagedPrefill)
    ->Apply(prefill_args)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
KVKIT_REGISTER_LIMIT_BENCHMARKS();
