// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// copy_blocks (device pairs and inline pairs) and device_storage (create, copy_block,
// copy_blocks, move) copy every layer's K and V of each pair, bit for bit, and nothing else.
#include <kvkit/concepts.hpp>
#include <kvkit/copy_blocks.hpp>
#include <kvkit/device_storage.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cuda/cuda_test_support.hpp"

namespace {

using namespace kvkit;
using namespace kvkit::test;

static_assert(kv_storage<device_storage<bf16>>);
static_assert(kv_storage<device_storage<fp16>>);

kv_layout make_layout(kv_order order, std::uint32_t page, std::uint32_t heads,
                      std::uint32_t head_dim) {
  kv_layout l;
  l.num_layers = 3;
  l.num_kv_heads = heads;
  l.head_dim = head_dim;
  l.block_size = page;
  l.num_blocks = 40;
  l.type = dtype::bf16;
  l.order = order;
  return l;
}

// Random pairs with distinct destinations, no destination also a source.
std::vector<block_copy> random_pairs(std::uint32_t num_blocks, std::uint32_t n,
                                     std::mt19937_64& rng) {
  std::vector<std::uint32_t> ids(num_blocks);
  std::iota(ids.begin(), ids.end(), 0u);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<block_copy> pairs(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    pairs[i].dst = ids[i];
    pairs[i].src = ids[n + rng() % (num_blocks - n)];
  }
  return pairs;
}

void apply(std::vector<bf16>& host, const kv_layout& l, const std::vector<block_copy>& pairs) {
  for (const block_copy& p : pairs) {
    for (std::uint32_t layer = 0; layer < l.num_layers; ++layer) {
      for (std::uint32_t kv = 0; kv < 2; ++kv) {
        std::memcpy(host.data() + l.offset(layer, kv, p.dst, 0, 0, 0),
                    host.data() + l.offset(layer, kv, p.src, 0, 0, 0),
                    l.block_elements() * sizeof(bf16));
      }
    }
  }
}

TEST(CopyBlocks, DevicePairsAndInlinePairs) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  std::mt19937_64 rng(3);
  for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
    // Page 1 x 1 head x head_dim 4 makes 8-byte blocks: the narrower vector path.
    for (auto [page, heads, dim] : {std::tuple{1u, 1u, 128u}, std::tuple{16u, 4u, 128u},
                                    std::tuple{64u, 8u, 64u}, std::tuple{1u, 1u, 4u}}) {
      SCOPED_TRACE(std::string(to_string(order)) + " page=" + std::to_string(page));
      const kv_layout l = make_layout(order, page, heads, dim);
      std::vector<bf16> host = random_values<bf16>(l.total_elements(), -1.0f, 1.0f, rng);
      device_buffer<bf16> pool(host);
      const std::vector<block_copy> pairs = random_pairs(l.num_blocks, 13, rng);
      device_buffer<block_copy> d_pairs(pairs);
      copy_blocks_args args;
      args.base = pool.get();
      args.layout = l;
      args.pairs = d_pairs.get();
      args.num_pairs = static_cast<std::uint32_t>(pairs.size());
      KVKIT_STATUS_OK(can_implement(args));
      KVKIT_STATUS_OK(run(args, nullptr, nullptr));
      apply(host, l, pairs);
      const std::vector<block_copy> more = random_pairs(l.num_blocks, 7, rng);
      KVKIT_STATUS_OK(copy_blocks_inline(pool.get(), l, more.data(), 7, nullptr));
      apply(host, l, more);
      KVKIT_CUDA_OK(cudaDeviceSynchronize());
      const std::vector<bf16> got = pool.download();
      EXPECT_EQ(std::memcmp(got.data(), host.data(), host.size() * sizeof(bf16)), 0);
    }
  }
}

TEST(DeviceStorage, CreateCopyAndMove) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  std::mt19937_64 rng(5);
  for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
    const kv_layout l = make_layout(order, 16, 4, 128);
    auto made = device_storage<bf16>::create(l);
    ASSERT_TRUE(made.ok()) << made.status().message();
    device_storage<bf16> s = std::move(made).value();
    EXPECT_EQ(s.bytes(), l.total_bytes());
    EXPECT_EQ(s.layout().num_blocks, l.num_blocks);
    // Zero-filled at creation.
    KVKIT_CUDA_OK(cudaStreamSynchronize(s.stream()));
    std::vector<bf16> zeros(l.total_elements());
    KVKIT_CUDA_OK(cudaMemcpy(zeros.data(), s.data(), l.total_bytes(), cudaMemcpyDeviceToHost));
    EXPECT_TRUE(std::all_of(zeros.begin(), zeros.end(), [](bf16 x) { return x.bits == 0; }));

    std::vector<bf16> host = random_values<bf16>(l.total_elements(), -1.0f, 1.0f, rng);
    KVKIT_CUDA_OK(cudaMemcpy(s.data(), host.data(), l.total_bytes(), cudaMemcpyHostToDevice));
    s.copy_block(3, 9);
    apply(host, l, {{3, 9}});
    const std::vector<block_copy> pairs = random_pairs(l.num_blocks, 15, rng);
    KVKIT_STATUS_OK(s.copy_blocks(pairs));
    apply(host, l, pairs);
    device_storage<bf16> moved = std::move(s);
    EXPECT_EQ(s.bytes(), 0u);  // NOLINT(bugprone-use-after-move): moved-from state is specified
    KVKIT_CUDA_OK(cudaStreamSynchronize(moved.stream()));
    std::vector<bf16> got(l.total_elements());
    KVKIT_CUDA_OK(cudaMemcpy(got.data(), moved.data(), l.total_bytes(), cudaMemcpyDeviceToHost));
    EXPECT_EQ(std::memcmp(got.data(), host.data(), l.total_bytes()), 0);
  }
}

// copy_block() cannot return a status (the cache calls it as a statement); a copy that could not
// be enqueued is kept and reported, never dropped.
TEST(DeviceStorage, AFailedCopyOnWriteIsReported) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  const kv_layout l = make_layout(kv_order::nhd, 16, 4, 128);
  auto made = device_storage<bf16>::create(l);
  ASSERT_TRUE(made.ok()) << made.status().message();
  device_storage<bf16> s = std::move(made).value();
  s.copy_block(1, 2);
  EXPECT_TRUE(s.copy_error().ok()) << s.copy_error().message();
  s.copy_block(l.num_blocks, 2);  // no such block: the copy is not enqueued
  s.copy_block(3, l.num_blocks + 5);
  const status first = s.copy_error();
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.code(), errc::invalid_argument);
  EXPECT_NE(first.message().find("copy_block(40, 2)"), std::string::npos) << first.message();
  device_storage<bf16> moved = std::move(s);  // the error moves with the storage
  EXPECT_EQ(moved.take_copy_error().message(), first.message());
  EXPECT_TRUE(moved.copy_error().ok());
  KVKIT_CUDA_OK(cudaStreamSynchronize(moved.stream()));
}

TEST(DeviceStorage, ManyPairsSpanSeveralLaunches) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  std::mt19937_64 rng(9);
  kv_layout l = make_layout(kv_order::nhd, 1, 1, 64);
  l.num_layers = 1;
  l.num_blocks = 2000;
  auto made = device_storage<bf16>::create(l);
  ASSERT_TRUE(made.ok()) << made.status().message();
  device_storage<bf16> s = std::move(made).value();
  std::vector<bf16> host = random_values<bf16>(l.total_elements(), -1.0f, 1.0f, rng);
  KVKIT_CUDA_OK(cudaMemcpy(s.data(), host.data(), l.total_bytes(), cudaMemcpyHostToDevice));
  const std::vector<block_copy> pairs = random_pairs(l.num_blocks, 700, rng);  // 3 launches
  KVKIT_STATUS_OK(s.copy_blocks(pairs));
  apply(host, l, pairs);
  KVKIT_CUDA_OK(cudaStreamSynchronize(s.stream()));
  std::vector<bf16> got(l.total_elements());
  KVKIT_CUDA_OK(cudaMemcpy(got.data(), s.data(), l.total_bytes(), cudaMemcpyDeviceToHost));
  EXPECT_EQ(std::memcmp(got.data(), host.data(), l.total_bytes()), 0);
}

}  // namespace
