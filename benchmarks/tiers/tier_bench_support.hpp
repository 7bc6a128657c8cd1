// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Shared set-up of the tier benchmarks: two block shapes, a prompt cut into blocks with the keys
// a cache gives them, a pool (host_storage) to promote into, and contiguous source bytes.
#pragma once

#include <kvkit/hashing.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/tier.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace kvkit::bench {

// Shape 0: 8 layers x 8 KV heads x head dim 128 x 16 tokens, bf16: 512 KiB per block (a large
// model's block is this or bigger). Shape 1: 1 layer x 1 head x 64 x 16, bf16: 4 KiB per block,
// where per-block costs (lookup, verification, headers) show.
inline kv_layout shape(std::int64_t id, std::uint32_t num_blocks) {
  kv_layout l;
  l.num_layers = id == 0 ? 8 : 1;
  l.num_kv_heads = id == 0 ? 8 : 1;
  l.head_dim = id == 0 ? 128 : 64;
  l.block_size = 16;
  l.num_blocks = num_blocks;
  l.type = dtype::bf16;
  return l;
}

inline const char* shape_name(std::int64_t id) {
  return id == 0 ? "512KiB" : "4KiB";
}

// One prompt of `blocks` blocks: keys, tokens, and its K/V (random bytes, contiguous per block).
struct bench_chain {
  kv_layout layout;
  tier_namespace ns;
  std::vector<token_id> tokens;
  std::vector<std::uint64_t> keys;
  std::vector<std::byte> kv;  // blocks x block_bytes_all_layers()

  bench_chain(const kv_layout& l, std::size_t blocks) : layout(l) {
    const xxh3_hasher h(0x6b766b6974ull);
    ns.key = h.root(0, 0, {});
    std::mt19937_64 rng(42);
    tokens.resize(blocks * l.block_size);
    for (auto& t : tokens)
      t = static_cast<token_id>(rng() % 128000);
    std::uint64_t parent = ns.key;
    for (std::size_t i = 0; i < blocks; ++i) {
      parent = h.chain(parent,
                       std::span<const token_id>(tokens).subspan(i * l.block_size, l.block_size));
      keys.push_back(parent);
    }
    kv.resize(blocks * l.block_bytes_all_layers());
    for (std::size_t i = 0; i < kv.size(); i += 8) {
      const std::uint64_t x = rng();
      for (std::size_t j = 0; j < 8 && i + j < kv.size(); ++j)
        kv[i + j] = static_cast<std::byte>(x >> (8 * j));
    }
  }
  [[nodiscard]] tier_chain chain() const { return tier_chain{ns, ns.key, keys, tokens, 0}; }
  [[nodiscard]] std::vector<tier_block> blocks() const {
    std::vector<tier_block> out(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      out[i].ns = ns;
      out[i].key = keys[i];
      out[i].parent = i == 0 ? ns.key : keys[i - 1];
      out[i].tokens =
          std::span<const token_id>(tokens).subspan(i * layout.block_size, layout.block_size);
      out[i].kv = contiguous_block_cview(kv.data() + i * layout.block_bytes_all_layers(), layout);
    }
    return out;
  }
  [[nodiscard]] std::size_t bytes() const { return kv.size(); }
};

// Views of pool blocks [first, first + n) of a host storage.
template <class T>
std::vector<kv_block_view> pool_views(host_storage<T>& s, std::size_t first, std::size_t n) {
  std::vector<kv_block_view> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = block_view(s, static_cast<block_id>(first + i));
  return v;
}

}  // namespace kvkit::bench
