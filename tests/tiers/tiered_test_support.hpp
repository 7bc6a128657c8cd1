// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Helpers of the tests of tiers under a pool: caches over host_storage whose blocks hold bytes
// that are a function of their prefix, and a request runner that checks every cached block.
#pragma once

#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/tiered.hpp>
#include <kvkit/tiers/host_tier.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tiers/tier_test_support.hpp"

namespace kvkit::test {

using host_t = kvkit::host_tier<kvkit::lru_eviction>;
template <class Tiers>
using tiered_cache_t =
    kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher, kvkit::lru_eviction,
                        kvkit::host_storage<kvkit::fp16>, Tiers>;

inline kvkit::kv_layout pool_layout(std::uint32_t blocks) {
  kvkit::kv_layout l = kvkit::test::small_layout();  // 4 tokens per block, 512 bytes
  l.num_blocks = blocks;
  return l;
}

inline host_t make_host(std::uint32_t capacity) {
  host_t::options o;
  o.capacity_blocks = capacity;
  return host_t::create(pool_layout(1), std::move(o)).value();
}

template <class Tiers>
tiered_cache_t<Tiers> make_cache(std::uint32_t blocks, std::uint64_t seed = 7) {
  kvkit::cache_config c;
  c.seed = seed;
  return tiered_cache_t<Tiers>::create(
             c, kvkit::host_storage<kvkit::fp16>::create(pool_layout(blocks)).value())
      .value();
}

// The K/V bytes of block k of a prompt: a function of every token up to the end of the block,
// so equal prefixes have equal bytes and any other block's bytes differ.
inline std::vector<std::byte> bytes_of(std::span<const token_id> prompt, std::size_t k,
                                       std::size_t block_size, std::size_t n, std::uint64_t ns) {
  std::uint64_t h = 1469598103934665603ULL ^ ns;
  for (std::size_t i = 0; i < std::min(prompt.size(), (k + 1) * block_size); ++i)
    h = (h ^ static_cast<std::uint64_t>(prompt[i])) * 1099511628211ULL;
  std::vector<std::byte> out(n);
  for (auto& b : out) {
    h ^= h << 13;
    h ^= h >> 7;
    h ^= h << 17;
    b = static_cast<std::byte>(h);
  }
  return out;
}

// Runs one request: admit, "prefill" the uncached blocks with their bytes, commit, finish.
// Checks that every cached block (pool or promoted) holds the bytes of its prefix.
template <class Cache>
inline kvkit::admission run_request(Cache& cache, const std::vector<token_id>& prompt,
                                    const kvkit::request_options& o = {}, bool keep = false,
                                    kvkit::sequence_id* seq_out = nullptr) {
  auto a = cache.admit(prompt, o);
  EXPECT_TRUE(a.ok()) << a.error().message();
  const auto& l = cache.storage().layout();
  const std::size_t bs = l.block_size;
  const std::size_t bytes = l.block_bytes_all_layers();
  auto view = cache.sequence(a->id).value();
  for (std::size_t k = 0; k < view.blocks.size(); ++k) {
    const kvkit::kv_block_view v = kvkit::block_view(cache.storage(), view.blocks[k]);
    const std::size_t seg = kvkit::kv_segment_bytes(l);
    const auto want = bytes_of(prompt, k, bs, bytes, o.tenant_salt);
    if (k < a->cached_blocks) {
      for (std::size_t s = 0; s < kvkit::kv_segments(l); ++s)
        EXPECT_EQ(0, std::memcmp(v.data + s * v.stride, want.data() + s * seg, seg))
            << "block " << k << " segment " << s << " holds wrong K/V";
    } else {
      for (std::size_t s = 0; s < kvkit::kv_segments(l); ++s)
        std::memcpy(v.data + s * v.stride, want.data() + s * seg, seg);
    }
  }
  EXPECT_TRUE(cache.commit(a->id).ok());
  if (seq_out != nullptr)
    *seq_out = a->id;
  if (!keep) {
    EXPECT_TRUE(cache.finish(a->id).ok());
  }
  EXPECT_TRUE(cache.check_invariants().ok()) << cache.check_invariants().message();
  return *a;
}

inline std::vector<token_id> prompt_of(token_id base, std::size_t n) {
  std::vector<token_id> p(n);
  for (std::size_t i = 0; i < n; ++i)
    p[i] = base + static_cast<token_id>(i);
  return p;
}

}  // namespace kvkit::test
