// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Tiers under a GPU pool (device_storage, <kvkit/tiers/device_binding.hpp>): blocks demoted from
// the device pool to a host tier come back with the same bytes, copied on the storage's stream.
// Skipped without a CUDA device.
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/tiered.hpp>
#include <kvkit/tiers/device_binding.hpp>
#include <kvkit/tiers/host_tier.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace {

using host_t = kvkit::host_tier<kvkit::lru_eviction>;
using cache_t =
    kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher, kvkit::lru_eviction,
                        kvkit::device_storage<kvkit::bf16>, kvkit::tiered<host_t>>;

bool has_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

kvkit::kv_layout layout(std::uint32_t blocks) {
  kvkit::kv_layout l;
  l.num_layers = 2;
  l.num_kv_heads = 2;
  l.head_dim = 64;
  l.block_size = 16;
  l.num_blocks = blocks;
  l.type = kvkit::dtype::bf16;
  return l;
}

// Fills every segment of block `b` with bytes that are a function of `tag`.
void fill(cache_t& c, kvkit::block_id b, std::uint32_t tag) {
  const auto& l = c.storage().layout();
  const std::size_t seg = kvkit::kv_segment_bytes(l);
  std::vector<std::byte> host(seg);
  for (std::size_t s = 0; s < kvkit::kv_segments(l); ++s) {
    for (std::size_t i = 0; i < seg; ++i)
      host[i] = static_cast<std::byte>((tag * 131 + s * 17 + i) & 0xFF);
    auto* dst = reinterpret_cast<std::byte*>(c.storage().data()) + s * l.num_blocks * seg + b * seg;
    ASSERT_EQ(cudaMemcpy(dst, host.data(), seg, cudaMemcpyHostToDevice), cudaSuccess);
  }
}

bool holds(cache_t& c, kvkit::block_id b, std::uint32_t tag) {
  const auto& l = c.storage().layout();
  const std::size_t seg = kvkit::kv_segment_bytes(l);
  std::vector<std::byte> host(seg);
  for (std::size_t s = 0; s < kvkit::kv_segments(l); ++s) {
    const auto* src =
        reinterpret_cast<const std::byte*>(c.storage().data()) + s * l.num_blocks * seg + b * seg;
    if (cudaMemcpy(host.data(), src, seg, cudaMemcpyDeviceToHost) != cudaSuccess)
      return false;
    for (std::size_t i = 0; i < seg; ++i)
      if (host[i] != static_cast<std::byte>((tag * 131 + s * 17 + i) & 0xFF))
        return false;
  }
  return true;
}

TEST(TieredDevice, DemotedBlocksComeBackWithTheirBytes) {
  if (!has_device())
    GTEST_SKIP() << "no CUDA device";
  kvkit::cache_config cc;
  cc.seed = 5;
  auto cache = cache_t::create(cc, *kvkit::device_storage<kvkit::bf16>::create(layout(8))).value();
  host_t::options o;
  o.capacity_blocks = 64;
  cache.listener().attach<0>(*host_t::create(layout(1), std::move(o)));
  std::vector<kvkit::token_id> a(65);
  for (std::size_t i = 0; i < a.size(); ++i)
    a[i] = static_cast<kvkit::token_id>(i + 1);
  auto first = cache.admit(a).value();
  auto view = cache.sequence(first.id).value();
  for (std::uint32_t k = 0; k < 4; ++k)
    fill(cache, view.blocks[k], k + 1);
  ASSERT_TRUE(cache.commit(first.id).ok());
  ASSERT_TRUE(cache.finish(first.id).ok());
  for (int r = 0; r < 2; ++r) {  // other prompts push a's blocks out of the pool
    std::vector<kvkit::token_id> other(64);
    for (std::size_t i = 0; i < other.size(); ++i)
      other[i] = static_cast<kvkit::token_id>(1000 * (r + 1) + i);
    auto adm = cache.admit(other).value();
    ASSERT_TRUE(cache.commit(adm.id).ok());
    ASSERT_TRUE(cache.finish(adm.id).ok());
  }
  ASSERT_EQ(cache.match(a), 0u);
  auto again = cache.admit(a).value();
  EXPECT_EQ(again.tier_cached_tokens[0], 64u);
  ASSERT_EQ(cudaStreamSynchronize(cache.storage().stream()), cudaSuccess);
  auto v2 = cache.sequence(again.id).value();
  for (std::uint32_t k = 0; k < 4; ++k)
    EXPECT_TRUE(holds(cache, v2.blocks[k], k + 1)) << "block " << k;
  ASSERT_TRUE(cache.finish(again.id).ok());
}

}  // namespace
