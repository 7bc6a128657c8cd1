// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// append_kv writes each token's K/V rows to its slot, exactly (bit for bit), for every built
// configuration x NHD/HND x page sizes {1, 5, 16, 64} x K/V heads {1, 4, 8}; skipped tokens
// (negative or out-of-pool slots) and all other slots stay untouched. Strided input rows (a
// fused QKV tensor) are read correctly.
#include <kvkit/append_kv.hpp>
#include <kvkit/kernel_registry.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "cuda/cuda_test_support.hpp"

namespace {

using namespace kvkit;
using namespace kvkit::test;

template <class T>
void check_append(const kernel_config& config, kv_order order, std::uint32_t page,
                  std::uint32_t heads, std::uint64_t stride_factor, std::uint32_t seed) {
  SCOPED_TRACE(case_name(config, order, page, heads) + " stride x" + std::to_string(stride_factor));
  std::mt19937_64 rng(seed);
  const std::uint32_t d = static_cast<std::uint32_t>(config.head_dim);
  const std::uint32_t num_blocks = 2 + 200 / page;
  const std::size_t pool = std::size_t{num_blocks} * page * heads * d;
  const std::uint32_t n = 1 + static_cast<std::uint32_t>(rng() % 150);
  const std::uint64_t row = std::uint64_t{heads} * d;
  const std::uint64_t stride = row * stride_factor;

  // Distinct random slots; a few tokens are padding (-1) or beyond the pool.
  std::vector<std::int64_t> all(std::size_t{num_blocks} * page);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng);
  std::vector<std::int64_t> slots(all.begin(), all.begin() + std::min<std::size_t>(n, all.size()));
  slots.resize(n, -1);
  if (n > 3) {
    slots[1] = -1;
    slots[2] = std::int64_t{num_blocks} * page + 5;
  }

  const std::vector<T> k_new = random_values<T>(n * stride, -1.0f, 1.0f, rng);
  const std::vector<T> v_new = random_values<T>(n * stride, -1.0f, 1.0f, rng);
  std::vector<T> k_pool = random_values<T>(pool, -1.0f, 1.0f, rng);
  std::vector<T> v_pool = random_values<T>(pool, -1.0f, 1.0f, rng);
  device_buffer<T> d_k_new(k_new), d_v_new(v_new), d_k(k_pool), d_v(v_pool);
  device_buffer<std::int64_t> d_slots(slots);

  append_kv_args args;
  args.k_new = d_k_new.get();
  args.v_new = d_v_new.get();
  args.k_stride = stride_factor == 1 ? 0 : stride;
  args.v_stride = stride_factor == 1 ? 0 : stride;
  args.slot_mapping = d_slots.get();
  args.k_cache = d_k.get();
  args.v_cache = d_v.get();
  args.num_tokens = n;
  args.num_kv_heads = heads;
  args.head_dim = d;
  args.block_size = page;
  args.num_blocks = num_blocks;
  args.order = order;
  args.dtype = cuda_dtype_of<T>();
  KVKIT_STATUS_OK(can_implement(args));
  EXPECT_EQ(workspace_size(args), 0u);
  KVKIT_STATUS_OK(run(args, nullptr, nullptr));
  KVKIT_CUDA_OK(cudaDeviceSynchronize());

  paged_kv<T> view;
  view.k = k_pool.data();
  view.v = v_pool.data();
  view.block_size = page;
  view.num_kv_heads = heads;
  view.head_dim = d;
  view.order = order;
  for (std::uint32_t t = 0; t < n; ++t) {
    if (slots[t] < 0 || slots[t] >= std::int64_t{num_blocks} * page)
      continue;
    const auto blk = static_cast<std::uint32_t>(slots[t] / page);
    const auto pos = static_cast<std::uint32_t>(slots[t] % page);
    for (std::uint32_t h = 0; h < heads; ++h) {
      std::memcpy(k_pool.data() + view.offset(blk, pos, h), k_new.data() + t * stride + h * d,
                  d * sizeof(T));
      std::memcpy(v_pool.data() + view.offset(blk, pos, h), v_new.data() + t * stride + h * d,
                  d * sizeof(T));
    }
  }
  const std::vector<T> got_k = d_k.download();
  const std::vector<T> got_v = d_v.download();
  EXPECT_EQ(std::memcmp(got_k.data(), k_pool.data(), pool * sizeof(T)), 0);
  EXPECT_EQ(std::memcmp(got_v.data(), v_pool.data(), pool * sizeof(T)), 0);
}

TEST(AppendKv, WritesEverySlotExactly) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  std::uint32_t seed = 1;
  for (const kernel_config& config : test_configs()) {
    for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
      for (std::uint32_t page : pick({1, 5, 16, 64}, {5})) {
        for (std::uint32_t heads : pick({1, 4, 8}, {4})) {
          with_dtype(config.dtype,
                     [&]<class T>() { check_append<T>(config, order, page, heads, 1, seed++); });
        }
      }
    }
  }
}

TEST(AppendKv, ReadsStridedRows) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : test_configs()) {
    with_dtype(config.dtype, [&]<class T>() {
      check_append<T>(config, kv_order::nhd, 16, 4, 3, 77);
      check_append<T>(config, kv_order::hnd, 3, 2, 2, 78);  // page size 3
    });
  }
}

}  // namespace
