// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Paged prefill over a cached prefix against reference_prefill:
// - random ragged batches: every built configuration x NHD/HND x page sizes {1, 5, 16, 64} x GQA
//   group {1, 3, 4, 8}, queries per sequence and cached prefix lengths drawn at random (empty
//   sequences included), causal and not, with a grid bound below the true query count;
// - one key that must be seen or must not be: one sequence per position of interest, each with a
//   dominant key (cuda_test_support.hpp, plant_key) at that position only: position 0, both sides
//   of K/V tile boundaries, the last cached token, the first new token, every new token's
//   neighbour (the first masked position of the query before it), the last token, and the first
//   position past the end. Rows span several row tiles, and GQA groups 3 and 6 split a query's
//   heads across row tiles;
// - batches of 64, non-default softmax scales, and a prefix hit equal to the whole prompt.
// Tolerances (cuda_test_support.hpp): output |err| <= 8e-3 (bf16) / 1.5e-3 (fp16), the output's
// rounding plus the rounding of P to 16 bits before the P V product; LSE |err| <= 2e-3. A
// dropped or added dominant key moves an output by 0.1-1.
// KVKIT_GPU_TEST_QUICK=1 reduces the case set (the compute-sanitizer passes).
#include <kvkit/index_math.hpp>
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
                           std::uint32_t max_qo_len, float scale = 0.0f) {
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
  args.scale = scale;
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

// Runs the kernel and the reference and compares.
template <class T>
void compare_with_reference(const paged_batch<T>& batch, const std::vector<std::uint32_t>& qo_lens,
                            const std::vector<T>& q, std::uint32_t hq, bool causal,
                            std::uint32_t max_qo_len, float scale = 0.0f) {
  const prefill_result got = run_prefill(batch, qo_lens, q, hq, causal, max_qo_len, scale);
  std::vector<std::uint32_t> qo_indptr(1, 0);
  for (std::uint32_t n : qo_lens)
    qo_indptr.push_back(qo_indptr.back() + n);
  attention_problem problem;
  problem.qo_indptr = qo_indptr.data();
  problem.num_qo_heads = hq;
  problem.causal = causal;
  problem.scale = scale;
  std::vector<float> want_o(q.size()), want_lse(std::size_t{qo_indptr.back()} * hq);
  const std::vector<float> qf = to_floats(q);
  KVKIT_STATUS_OK(
      reference_prefill(batch.host_view(), problem, qf.data(), want_o.data(), want_lse.data()));
  EXPECT_LE(max_abs_error(got.o, want_o), prefill_output_tolerance<T>());
  EXPECT_LE(max_abs_error(got.lse, want_lse), lse_tolerance);
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
  compare_with_reference(batch, qo_lens, q, hq, causal, bound);
}

TEST(PagedPrefill, MatchesReferenceEveryConfigLayoutPageAndGroup) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  std::uint32_t seed = 1;
  for (const kernel_config& config : test_configs()) {
    for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
      for (std::uint32_t page : pick({1, 5, 16, 64}, {5, 16})) {
        for (std::uint32_t group : pick({1, 3, 4, 8}, {3})) {
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
  for (const kernel_config& config : test_configs()) {
    with_dtype(config.dtype, [&]<class T>() {
      check_prefill<T>(config, kv_order::nhd, 16, 4, false, 501);
      check_prefill<T>(config, kv_order::hnd, 5, 1, false, 502);  // page size 5
    });
  }
}

// One sequence per position of interest, each with a dominant key there: `prefix` cached tokens
// then `n` new ones (see the file comment).
template <class T>
void check_planted(const kernel_config& config, kv_order order, std::uint32_t page,
                   std::uint32_t group, bool causal, std::uint32_t prefix, std::uint32_t n,
                   std::uint32_t seed) {
  SCOPED_TRACE(case_name(config, order, page, group) + (causal ? " causal" : " full") +
               " prefix=" + std::to_string(prefix) + " new=" + std::to_string(n));
  std::mt19937_64 rng(seed);
  paged_batch<T> batch;
  batch.block_size = page;
  batch.num_kv_heads = 1;
  batch.head_dim = static_cast<std::uint32_t>(config.head_dim);
  batch.order = order;
  batch.extra_pages = 1;
  const std::uint32_t kv_len = prefix + n;
  const std::uint32_t tile = config.head_dim <= 128 ? 64 : 32;  // K/V tokens per tile
  std::vector<std::uint32_t> positions{0, kv_len - 1, kv_len};
  for (std::uint32_t t = tile; t < kv_len; t += 3 * tile) {
    positions.push_back(t - 1);
    positions.push_back(t);
  }
  if (prefix > 0)
    positions.push_back(prefix - 1);  // the last cached token
  for (std::uint32_t j = 0; j < n; j += std::max<std::uint32_t>(1, n / 5))
    positions.push_back(prefix + j);  // masked for new queries 0 .. j-1, visible from j on
  positions.push_back(prefix + 1);    // the first masked position of the first new query
  std::vector<std::uint32_t> lens;
  lens.assign(positions.size(), kv_len);
  batch.build(lens, rng);
  for (std::uint32_t i = 0; i < positions.size(); ++i)
    plant_key(batch, i, positions[i]);
  batch.upload();
  const std::uint32_t hq = group;
  const std::vector<std::uint32_t> qo_lens(positions.size(), n);
  std::vector<T> q = random_values<T>(positions.size() * n * hq * batch.head_dim, -2.0f, 2.0f, rng);
  plant_queries(q, batch.head_dim);
  compare_with_reference(batch, qo_lens, q, hq, causal, n);
}

TEST(PagedPrefill, OneKeyAtTileBoundariesTheCausalEdgeAndPastTheEnd) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  std::uint32_t seed = 700;
  for (const kernel_config& config : test_configs()) {
    for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
      for (std::uint32_t page : pick({5, 16}, {5})) {
        for (std::uint32_t group : pick({1, 3, 6}, {3})) {
          with_dtype(config.dtype, [&]<class T>() {
            // 70 new queries x group rows: several row tiles; a prefix ending mid-page.
            check_planted<T>(config, order, page, group, true, 203, 70, seed++);
            check_planted<T>(config, order, page, group, false, 203, 70, seed++);
            check_planted<T>(config, order, page, group, true, 0, 90, seed++);  // no prefix
          });
        }
      }
    }
  }
}

TEST(PagedPrefill, LargeBatch) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : test_configs()) {
    with_dtype(config.dtype, [&]<class T>() {
      SCOPED_TRACE(to_string(config) + " batch 64");
      std::mt19937_64 rng(64);
      paged_batch<T> batch;
      batch.num_kv_heads = 2;
      batch.head_dim = static_cast<std::uint32_t>(config.head_dim);
      const std::uint32_t b = 64;
      std::vector<std::uint32_t> qo_lens(b), kv_lens(b);
      std::uint32_t total_q = 0, max_q = 1;
      for (std::uint32_t i = 0; i < b; ++i) {
        qo_lens[i] = static_cast<std::uint32_t>(rng() % 20);
        kv_lens[i] = qo_lens[i] + static_cast<std::uint32_t>(rng() % 100);
        total_q += qo_lens[i];
        max_q = std::max(max_q, qo_lens[i]);
      }
      batch.build(kv_lens, rng);
      const std::uint32_t hq = 8;
      const std::vector<T> q =
          random_values<T>(std::size_t{total_q} * hq * batch.head_dim, -2.0f, 2.0f, rng);
      compare_with_reference(batch, qo_lens, q, hq, true, max_q);
    });
  }
}

TEST(PagedPrefill, NonDefaultSoftmaxScale) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : test_configs()) {
    for (float scale : {0.02f, 0.3f}) {
      with_dtype(config.dtype, [&]<class T>() {
        SCOPED_TRACE(to_string(config) + " scale " + std::to_string(scale));
        std::mt19937_64 rng(9);
        paged_batch<T> batch;
        batch.num_kv_heads = 2;
        batch.head_dim = static_cast<std::uint32_t>(config.head_dim);
        batch.build({150, 77}, rng);
        const std::uint32_t hq = 4;
        const std::vector<std::uint32_t> qo_lens{40, 77};
        const std::vector<T> q = random_values<T>(117u * hq * batch.head_dim, -2.0f, 2.0f, rng);
        compare_with_reference(batch, qo_lens, q, hq, true, 77, scale);
      });
    }
  }
}

// Prefilling a 300-token prompt whole, and prefilling only its last 300 - P tokens over P
// cached tokens in the same pages, give the same outputs for those tokens (each within the
// prefill tolerance of the exact result, so within twice that of each other).
TEST(PagedPrefill, PrefixHitEqualsWholePrompt) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : test_configs()) {
    for (std::uint32_t page : pick({1, 16, 64}, {16})) {
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
          EXPECT_LE(max_abs_error(hit.o, whole_o), 2 * prefill_output_tolerance<T>())
              << "cached " << cached;
          EXPECT_LE(max_abs_error(hit.lse, whole_lse), lse_tolerance) << "cached " << cached;
        }
      });
    }
  }
}

}  // namespace
