// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Paged prefill over a cached prefix against reference_prefill: every built configuration x
// NHD/HND x page sizes {1, 16, 64} x GQA group {1, 4, 8}, random ragged batches (queries per
// sequence and cached prefix lengths drawn at random, empty sequences included), causal and not.
// A prefix hit (prefill only the suffix over cached pages) equals prefilling the whole prompt.
// Tolerances: output |err| <= 2e-2 (bf16) / 5e-3 (fp16); LSE |err| <= 1e-2.
#include <kvkit/kernel_registry.hpp>
#include <kvkit/paged_prefill.hpp>
#include <kvkit/reference_attention.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "cuda/cuda_test_support.hpp"

namespace {

using namespace kvkit;
using namespace kvkit::test;

struct prefill_result {
  std::vector<float> o, lse;
};

// Runs the kernel on `batch` with `qo_lens` queries per sequence (the last tokens of each).
template <class T>
prefill_result run_prefill(const paged_batch<T>& batch, const std::vector<std::uint32_t>& qo_lens,
                           const std::vector<T>& q, std::uint32_t hq, bool causal,
                           std::uint32_t max_qo_len) {
  std::vector<std::uint32_t> qo_indptr(1, 0);
  for (std::uint32_t n : qo_lens)
    qo_indptr.push_back(qo_indptr.back() + n);
  const std::size_t total_q = qo_indptr.back();
  device_buffer<std::uint32_t> d_qo_indptr(qo_indptr);
  device_buffer<T> d_q(q.empty() ? std::vector<T>(8) : q);
  device_buffer<T> d_o(std::max<std::size_t>(q.size(), 8));
  device_buffer<float> d_lse(std::max<std::size_t>(total_q * hq, 1));
  d_o.poison();
  d_lse.poison();

  paged_prefill_args args;
  args.q = d_q.get();
  args.qo_indptr = d_qo_indptr.get();
  args.kv = batch.device_view();
  args.o = d_o.get();
  args.lse = d_lse.get();
  args.num_qo_heads = hq;
  args.causal = causal;
  args.dtype = cuda_dtype_of<T>();
  args.max_qo_len = max_qo_len;
  prefill_result r;
  const status ok = can_implement(args);
  EXPECT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ(workspace_size(args), 0u);
  const status st = run(args, nullptr, nullptr);
  EXPECT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  r.o = to_floats(d_o.download());
  r.o.resize(q.size());
  r.lse = d_lse.download();
  r.lse.resize(total_q * hq);
  return r;
}

template <class T>
void check_prefill(const kernel_config& config, kv_order order, std::uint32_t page,
                   std::uint32_t group, bool causal, std::uint32_t seed) {
  SCOPED_TRACE(case_name(config, order, page, group) + (causal ? " causal" : " full"));
  std::mt19937_64 rng(seed);
  paged_batch<T> batch;
  batch.block_size = page;
  batch.num_kv_heads = 2;
  batch.head_dim = static_cast<std::uint32_t>(config.head_dim);
  batch.order = order;
  const std::uint32_t b = 1 + static_cast<std::uint32_t>(rng() % 4);
  std::vector<std::uint32_t> qo_lens(b), kv_lens(b);
  for (std::uint32_t i = 0; i < b; ++i) {
    qo_lens[i] = static_cast<std::uint32_t>(rng() % 130);               // 0 .. 129 new tokens
    kv_lens[i] = qo_lens[i] + static_cast<std::uint32_t>(rng() % 260);  // + cached prefix
  }
  qo_lens[0] = std::max<std::uint32_t>(qo_lens[0], 1);
  kv_lens[0] = std::max(kv_lens[0], qo_lens[0]);
  batch.build(kv_lens, rng);
  const std::uint32_t hq = batch.num_kv_heads * group;
  std::uint32_t total_q = 0, max_q = 1;
  for (std::uint32_t n : qo_lens) {
    total_q += n;
    max_q = std::max(max_q, n);
  }
  const std::vector<T> q =
      random_values<T>(std::size_t{total_q} * hq * batch.head_dim, -2.0f, 2.0f, rng);
  // A grid bound below the true maximum exercises the CTAs' loop over further row tiles.
  const std::uint32_t bound = seed % 3 == 0 ? std::max<std::uint32_t>(1, max_q / 3) : max_q;
  const prefill_result got = run_prefill(batch, qo_lens, q, hq, causal, bound);

  std::vector<std::uint32_t> qo_indptr(1, 0);
  for (std::uint32_t n : qo_lens)
    qo_indptr.push_back(qo_indptr.back() + n);
  attention_problem problem;
  problem.qo_indptr = qo_indptr.data();
  problem.num_qo_heads = hq;
  problem.causal = causal;
  std::vector<float> want_o(q.size()), want_lse(std::size_t{total_q} * hq);
  const std::vector<float> qf = to_floats(q);
  KVKIT_STATUS_OK(
      reference_prefill(batch.host_view(), problem, qf.data(), want_o.data(), want_lse.data()));
  EXPECT_LE(max_abs_error(got.o, want_o), output_tolerance<T>());
  EXPECT_LE(max_abs_error(got.lse, want_lse), lse_tolerance);
}

TEST(PagedPrefill, MatchesReferenceEveryConfigLayoutPageAndGroup) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  std::uint32_t seed = 1;
  for (const kernel_config& config : built_kernel_configs()) {
    for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
      for (std::uint32_t page : {1u, 16u, 64u}) {
        for (std::uint32_t group : {1u, 4u, 8u}) {
          with_dtype(config.dtype, [&]<class T>() {
            check_prefill<T>(config, order, page, group, true, seed++);
          });
        }
      }
    }
  }
}

TEST(PagedPrefill, NonCausalMatchesReference) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : built_kernel_configs()) {
    with_dtype(config.dtype, [&]<class T>() {
      check_prefill<T>(config, kv_order::nhd, 16, 4, false, 501);
      check_prefill<T>(config, kv_order::hnd, 5, 1, false, 502);  // page size 5
    });
  }
}

// Prefilling a 300-token prompt whole, and prefilling only its last 300 - P tokens over P
// cached tokens in the same pages, give the same outputs for those tokens.
TEST(PagedPrefill, PrefixHitEqualsWholePrompt) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : built_kernel_configs()) {
    for (std::uint32_t page : {1u, 16u, 64u}) {
      with_dtype(config.dtype, [&]<class T>() {
        SCOPED_TRACE(case_name(config, kv_order::nhd, page, 4));
        std::mt19937_64 rng(page);
        paged_batch<T> batch;
        batch.block_size = page;
        batch.num_kv_heads = 2;
        batch.head_dim = static_cast<std::uint32_t>(config.head_dim);
        constexpr std::uint32_t prompt = 300;
        batch.build({prompt}, rng);
        const std::uint32_t hq = 8;
        const std::size_t row = std::size_t{hq} * batch.head_dim;
        const std::vector<T> q = random_values<T>(prompt * row, -2.0f, 2.0f, rng);
        const prefill_result whole = run_prefill(batch, {prompt}, q, hq, true, prompt);
        for (std::uint32_t cached : {64u, 128u, 299u}) {
          const std::uint32_t n = prompt - cached;
          const std::vector<T> q_suffix(q.begin() + std::ptrdiff_t(cached * row), q.end());
          const prefill_result hit = run_prefill(batch, {n}, q_suffix, hq, true, n);
          const std::vector<float> whole_o(whole.o.begin() + std::ptrdiff_t(cached * row),
                                           whole.o.end());
          const std::vector<float> whole_lse(whole.lse.begin() + std::ptrdiff_t(cached * hq),
                                             whole.lse.end());
          EXPECT_LE(max_abs_error(hit.o, whole_o), output_tolerance<T>()) << "cached " << cached;
          EXPECT_LE(max_abs_error(hit.lse, whole_lse), lse_tolerance) << "cached " << cached;
        }
      });
    }
  }
}

}  // namespace
