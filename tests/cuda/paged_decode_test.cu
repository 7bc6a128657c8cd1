// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Paged decode against reference_decode: every built configuration x NHD/HND x page sizes
// {1, 16, 64} x GQA group {1, 4, 8} (and 12, two CTAs per K/V head), on random ragged batches,
// with one split, automatic splits and a forced split count.
// Tolerances: output |err| <= 2e-2 (bf16) / 5e-3 (fp16); LSE |err| <= 1e-2.
#include <kvkit/kernel_registry.hpp>
#include <kvkit/paged_decode.hpp>
#include <kvkit/reference_attention.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "cuda/cuda_test_support.hpp"

namespace {

using namespace kvkit;
using namespace kvkit::test;

template <class T>
void check_decode(const kernel_config& config, kv_order order, std::uint32_t page,
                  std::uint32_t group, std::uint32_t num_splits, std::uint32_t seed) {
  SCOPED_TRACE(case_name(config, order, page, group) + " splits=" + std::to_string(num_splits));
  std::mt19937_64 rng(seed);
  paged_batch<T> batch;
  batch.block_size = page;
  batch.num_kv_heads = 2;
  batch.head_dim = static_cast<std::uint32_t>(config.head_dim);
  batch.order = order;
  std::uniform_int_distribution<std::uint32_t> len(1, 700);
  std::vector<std::uint32_t> lens(1 + rng() % 5);
  for (auto& l : lens)
    l = len(rng);
  lens[0] = 1;           // the shortest context
  lens.push_back(1500);  // a long one, split many ways
  batch.build(lens, rng);
  const std::uint32_t b = static_cast<std::uint32_t>(lens.size());
  const std::uint32_t hq = batch.num_kv_heads * group;
  const std::uint32_t d = batch.head_dim;

  const std::vector<T> q = random_values<T>(std::size_t{b} * hq * d, -2.0f, 2.0f, rng);
  device_buffer<T> d_q(q);
  device_buffer<T> d_o(q.size());
  device_buffer<float> d_lse(std::size_t{b} * hq);
  d_o.poison();
  d_lse.poison();

  paged_decode_args args;
  args.q = d_q.get();
  args.kv = batch.device_view();
  args.o = d_o.get();
  args.lse = d_lse.get();
  args.num_qo_heads = hq;
  args.dtype = cuda_dtype_of<T>();
  args.max_kv_len = 1500;
  args.num_splits = num_splits;
  KVKIT_STATUS_OK(can_implement(args));
  device_buffer<unsigned char> ws(workspace_size(args));
  KVKIT_STATUS_OK(run(args, ws.get(), nullptr));
  KVKIT_CUDA_OK(cudaDeviceSynchronize());
  if (num_splits > 1) {
    EXPECT_EQ(plan(args).num_splits, num_splits);
  }

  std::vector<float> want_o(q.size()), want_lse(std::size_t{b} * hq);
  const std::vector<float> qf = to_floats(q);
  KVKIT_STATUS_OK(
      reference_decode(batch.host_view(), hq, qf.data(), want_o.data(), want_lse.data()));
  EXPECT_LE(max_abs_error(to_floats(d_o.download()), want_o), output_tolerance<T>());
  EXPECT_LE(max_abs_error(d_lse.download(), want_lse), lse_tolerance);
}

TEST(PagedDecode, MatchesReferenceEveryConfigLayoutPageAndGroup) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  std::uint32_t seed = 1;
  for (const kernel_config& config : built_kernel_configs()) {
    for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
      for (std::uint32_t page : {1u, 16u, 64u}) {
        for (std::uint32_t group : {1u, 4u, 8u}) {
          for (std::uint32_t splits : {1u, 0u, 5u}) {
            with_dtype(config.dtype, [&]<class T>() {
              check_decode<T>(config, order, page, group, splits, seed++);
            });
          }
        }
      }
    }
  }
}

TEST(PagedDecode, GroupLargerThanOneCta) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : built_kernel_configs()) {
    with_dtype(config.dtype, [&]<class T>() {
      check_decode<T>(config, kv_order::nhd, 16, 12, 0, 99);
      check_decode<T>(config, kv_order::hnd, 7, 16, 3, 100);  // a page size not a power of two
    });
  }
}

TEST(PagedDecode, RunsInsideACudaGraph) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  const kernel_config config = built_kernel_configs().front();
  with_dtype(config.dtype, [&]<class T>() {
    std::mt19937_64 rng(7);
    paged_batch<T> batch;
    batch.num_kv_heads = 2;
    batch.head_dim = static_cast<std::uint32_t>(config.head_dim);
    batch.build({900, 33}, rng);
    const std::uint32_t hq = 8;
    const std::vector<T> q = random_values<T>(2 * hq * batch.head_dim, -2.0f, 2.0f, rng);
    device_buffer<T> d_q(q);
    device_buffer<T> d_o(q.size());
    d_o.poison();
    paged_decode_args args;
    args.q = d_q.get();
    args.kv = batch.device_view();
    args.o = d_o.get();
    args.num_qo_heads = hq;
    args.dtype = cuda_dtype_of<T>();
    args.max_kv_len = 900;
    args.num_splits = 4;
    device_buffer<unsigned char> ws(workspace_size(args));
    cudaStream_t stream = nullptr;
    KVKIT_CUDA_OK(cudaStreamCreate(&stream));
    cudaGraph_t graph = nullptr;
    KVKIT_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    const status st = run(args, ws.get(), stream);
    KVKIT_CUDA_OK(cudaStreamEndCapture(stream, &graph));
    KVKIT_STATUS_OK(st);
    cudaGraphExec_t exec = nullptr;
    KVKIT_CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    KVKIT_CUDA_OK(cudaGraphLaunch(exec, stream));
    KVKIT_CUDA_OK(cudaStreamSynchronize(stream));
    std::vector<float> want(q.size());
    const std::vector<float> qf = to_floats(q);
    KVKIT_STATUS_OK(reference_decode(batch.host_view(), hq, qf.data(), want.data(), nullptr));
    EXPECT_LE(max_abs_error(to_floats(d_o.download()), want), output_tolerance<T>());
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
  });
}

}  // namespace
