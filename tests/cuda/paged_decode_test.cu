// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Paged decode against reference_decode:
// - random ragged batches: every built configuration x NHD/HND x page sizes {1, 5, 16, 64} x GQA
//   group {1, 3, 4, 8} (and 12, 16: two CTAs per K/V head) with one split, automatic splits and
//   a forced split count;
// - one key that must be seen or must not be: one sequence per position of interest, each with a
//   dominant key (cuda_test_support.hpp, plant_key) at that position only: position 0, both
//   sides of every split boundary of the plan, the last token, and the first position past the
//   end (in the last partial page, or in an extra page when the last page is full). A kernel that
//   drops the key or reads the one past the end moves the output by 0.1-1, 30x the tolerance;
// - batches of 64 and 200, non-default softmax scales, an understated max_kv_len.
// Tolerances (cuda_test_support.hpp): output |err| <= 3e-3 (bf16) / 5e-4 (fp16), half an ulp of
// an output below 1 with a 1.5-2x margin; LSE |err| <= 2e-3.
// KVKIT_GPU_TEST_QUICK=1 reduces the case set (the compute-sanitizer passes).
#include <kvkit/index_math.hpp>
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

struct decode_case {
  std::uint32_t group = 1;
  std::uint32_t num_splits = 0;     // 0: automatic
  std::uint32_t max_kv_len = 1500;  // host-side bound given to plan()
  float scale = 0.0f;               // 0: 1 / sqrt(head_dim)
  bool planted = false;             // queries with element 0 = 2 (see plant_key)
  std::uint32_t expect_splits = 0;  // when set, the plan run() must use (checked)
  std::uint32_t expect_split_tokens = 0;
};

// Runs decode over `batch` (already built and uploaded) and compares with the reference.
template <class T>
void run_and_compare(const paged_batch<T>& batch, const decode_case& c, std::mt19937_64& rng) {
  const std::uint32_t b = static_cast<std::uint32_t>(batch.kv_len.size());
  const std::uint32_t hq = batch.num_kv_heads * c.group;
  const std::uint32_t d = batch.head_dim;
  std::vector<T> q = random_values<T>(std::size_t{b} * hq * d, -2.0f, 2.0f, rng);
  if (c.planted)
    plant_queries(q, d);
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
  args.max_kv_len = c.max_kv_len;
  args.num_splits = c.num_splits;
  args.scale = c.scale;
  KVKIT_STATUS_OK(can_implement(args));
  device_buffer<unsigned char> ws(workspace_size(args));
  KVKIT_STATUS_OK(run(args, ws.get(), nullptr));
  KVKIT_CUDA_OK(cudaDeviceSynchronize());
  if (c.num_splits > 1) {
    EXPECT_EQ(plan(args).num_splits, c.num_splits);
  }
  if (c.expect_splits != 0) {  // the planted keys sit at the boundaries of this plan
    EXPECT_EQ(plan(args).num_splits, c.expect_splits);
    EXPECT_EQ(plan(args).split_tokens, c.expect_split_tokens);
  }

  std::vector<float> want_o(q.size()), want_lse(std::size_t{b} * hq);
  const std::vector<float> qf = to_floats(q);
  KVKIT_STATUS_OK(
      reference_decode(batch.host_view(), hq, qf.data(), want_o.data(), want_lse.data(), c.scale));
  EXPECT_LE(max_abs_error(to_floats(d_o.download()), want_o), output_tolerance<T>());
  EXPECT_LE(max_abs_error(d_lse.download(), want_lse), lse_tolerance);
}

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
  decode_case c;
  c.group = group;
  c.num_splits = num_splits;
  run_and_compare(batch, c, rng);
}

TEST(PagedDecode, MatchesReferenceEveryConfigLayoutPageAndGroup) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  std::uint32_t seed = 1;
  for (const kernel_config& config : test_configs()) {
    for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
      for (std::uint32_t page : pick({1, 5, 16, 64}, {5, 16})) {
        for (std::uint32_t group : pick({1, 3, 4, 8}, {3})) {
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
  for (const kernel_config& config : test_configs()) {
    with_dtype(config.dtype, [&]<class T>() {
      check_decode<T>(config, kv_order::nhd, 16, 12, 0, 99);
      check_decode<T>(config, kv_order::hnd, 7, 16, 3, 100);  // a page size not a power of two
    });
  }
}

// One sequence per position of interest, each with a dominant key there (see the file comment).
template <class T>
void check_planted(const kernel_config& config, kv_order order, std::uint32_t page,
                   std::uint32_t group, std::uint32_t num_splits, std::uint32_t kv_len,
                   std::uint32_t max_kv_len, std::uint32_t seed) {
  SCOPED_TRACE(case_name(config, order, page, group) + " splits=" + std::to_string(num_splits) +
               " kv_len=" + std::to_string(kv_len) + " max_kv_len=" + std::to_string(max_kv_len));
  std::mt19937_64 rng(seed);
  paged_batch<T> batch;
  batch.block_size = page;
  batch.num_kv_heads = 1;
  batch.head_dim = static_cast<std::uint32_t>(config.head_dim);
  batch.order = order;
  batch.extra_pages = 1;  // the position past the end is addressable even after a full page

  // The plan the kernel will use decides where the split boundaries are. An automatic plan
  // depends on the batch, so the batch has a fixed size and the positions repeat to fill it.
  constexpr std::uint32_t batch_size = 24;
  paged_decode_args probe;
  probe.kv.batch = batch_size;
  probe.kv.num_kv_heads = 1;
  probe.num_qo_heads = group;
  probe.max_kv_len = max_kv_len;
  probe.num_splits = num_splits;
  const paged_decode_plan p = plan(probe);
  std::vector<std::uint32_t> positions{0, kv_len - 1, kv_len};
  for (std::uint32_t s = 1; s < p.num_splits; ++s) {
    const token_range r = split_range(s, p.num_splits, p.split_tokens, kv_len);
    if (r.begin > 0 && r.begin < kv_len) {
      positions.push_back(r.begin - 1);
      positions.push_back(r.begin);
    }
  }
  ASSERT_LE(positions.size(), batch_size);
  std::vector<std::uint32_t> lens;
  lens.assign(batch_size, kv_len);
  batch.build(lens, rng);
  for (std::uint32_t i = 0; i < batch_size; ++i)
    plant_key(batch, i, positions[i % positions.size()]);
  batch.upload();
  decode_case c;
  c.group = group;
  c.num_splits = num_splits;
  c.max_kv_len = max_kv_len;
  c.planted = true;
  c.expect_splits = p.num_splits;
  c.expect_split_tokens = p.num_splits > 1 ? p.split_tokens : 0;
  run_and_compare(batch, c, rng);
}

TEST(PagedDecode, OneKeyAtEverySplitBoundaryTheLastSlotAndPastTheEnd) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  std::uint32_t seed = 300;
  for (const kernel_config& config : test_configs()) {
    for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
      for (std::uint32_t page : pick({1, 5, 16, 64}, {5})) {
        for (std::uint32_t group : pick({1, 6, 12}, {6})) {
          with_dtype(config.dtype, [&]<class T>() {
            // A last partial page (1000 % page != 0 for 16 and 64), forced splits, automatic
            // splits, and a bound that understates the length (the last split runs on).
            check_planted<T>(config, order, page, group, 5, 1000, 1000, seed++);
            check_planted<T>(config, order, page, group, 0, 1000, 1000, seed++);
            check_planted<T>(config, order, page, group, 3, 1000, 400, seed++);
            check_planted<T>(config, order, page, group, 1, 64 * page, 64 * page, seed++);
          });
        }
      }
    }
  }
}

TEST(PagedDecode, LargeBatches) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : test_configs()) {
    for (std::uint32_t b : pick({64, 200}, {64})) {
      with_dtype(config.dtype, [&]<class T>() {
        SCOPED_TRACE(to_string(config) + " batch " + std::to_string(b));
        std::mt19937_64 rng(b);
        paged_batch<T> batch;
        batch.num_kv_heads = 2;
        batch.head_dim = static_cast<std::uint32_t>(config.head_dim);
        std::vector<std::uint32_t> lens(b);
        for (auto& l : lens)
          l = 1 + static_cast<std::uint32_t>(rng() % 300);
        batch.build(lens, rng);
        decode_case c;
        c.group = 4;
        c.max_kv_len = 300;
        run_and_compare(batch, c, rng);
      });
    }
  }
}

TEST(PagedDecode, NonDefaultSoftmaxScale) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : test_configs()) {
    for (float scale : {0.02f, 0.3f}) {
      with_dtype(config.dtype, [&]<class T>() {
        SCOPED_TRACE(to_string(config) + " scale " + std::to_string(scale));
        std::mt19937_64 rng(7);
        paged_batch<T> batch;
        batch.num_kv_heads = 2;
        batch.head_dim = static_cast<std::uint32_t>(config.head_dim);
        batch.build({333, 1200, 17}, rng);
        decode_case c;
        c.group = 4;
        c.scale = scale;
        c.num_splits = 4;
        run_and_compare(batch, c, rng);
      });
    }
  }
}

}  // namespace
