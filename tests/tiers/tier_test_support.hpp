// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Helpers for the tier tests: chains of blocks with known tokens, keys and K/V bytes.
#pragma once

#include <kvkit/hashing.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/tier.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

namespace kvkit::test {

// A small layout: 2 layers, 2 KV heads, head dim 8, 4 tokens per block, fp16 (256 B per block).
inline kv_layout small_layout() {
  kv_layout l;
  l.num_layers = 2;
  l.num_kv_heads = 2;
  l.head_dim = 8;
  l.block_size = 4;
  l.num_blocks = 1;
  l.type = dtype::fp16;
  return l;
}

// The K/V bytes a block of content key `key` holds in these tests: a function of the key, so a
// loaded block can be checked without remembering what was stored.
inline std::vector<std::byte> kv_bytes_for(std::uint64_t key, const kv_layout& l) {
  std::vector<std::byte> out(l.block_bytes_all_layers());
  std::uint64_t x = key ^ 0x9E3779B97F4A7C15ULL;
  for (auto& b : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<std::byte>(x & 0xFF);
  }
  return out;
}

// One prompt cut into blocks, with the keys a cache of seed `seed` gives them.
struct test_chain {
  kv_layout layout;
  std::vector<std::uint64_t> extra;
  tier_namespace ns;
  std::vector<token_id> tokens;
  std::vector<std::uint64_t> keys;
  std::vector<std::vector<std::byte>> kv;  // per block, contiguous [layer][K|V]
  std::uint32_t request_class = 0;

  test_chain(const kv_layout& l, std::uint64_t seed, std::uint64_t salt, std::uint64_t session,
             std::vector<std::uint64_t> extra_keys, std::vector<token_id> prompt)
      : layout(l), extra(std::move(extra_keys)), tokens(std::move(prompt)) {
    const xxh3_hasher h(seed);
    ns.key = h.root(salt, session, extra);
    ns.tenant_salt = salt;
    ns.session_id = session;
    ns.extra_keys = extra;
    std::uint64_t parent = ns.key;
    for (std::size_t i = 0; i + l.block_size <= tokens.size(); i += l.block_size) {
      parent = h.chain(parent, std::span<const token_id>(tokens).subspan(i, l.block_size));
      keys.push_back(parent);
      kv.push_back(kv_bytes_for(parent, l));
    }
  }
  test_chain(const test_chain& o)
      : layout(o.layout),
        extra(o.extra),
        ns(o.ns),
        tokens(o.tokens),
        keys(o.keys),
        kv(o.kv),
        request_class(o.request_class) {
    ns.extra_keys = extra;
  }
  test_chain& operator=(const test_chain&) = delete;

  [[nodiscard]] std::size_t size() const { return keys.size(); }
  [[nodiscard]] std::uint64_t parent_of(std::size_t i) const {
    return i == 0 ? ns.key : keys[i - 1];
  }
  [[nodiscard]] std::span<const token_id> block_tokens(std::size_t i) const {
    return std::span<const token_id>(tokens).subspan(i * layout.block_size, layout.block_size);
  }
  [[nodiscard]] tier_block block(std::size_t i) const {
    tier_block b;
    b.ns = ns;
    b.key = keys[i];
    b.parent = parent_of(i);
    b.tokens = block_tokens(i);
    b.kv = contiguous_block_cview(kv[i].data(), layout);
    b.request_class = request_class;
    return b;
  }
  // Blocks [from, to), in the given order.
  [[nodiscard]] std::vector<tier_block> blocks(std::size_t from, std::size_t to,
                                               bool tail_first = false) const {
    std::vector<tier_block> out;
    for (std::size_t i = from; i < to; ++i)
      out.push_back(block(i));
    if (tail_first)
      std::reverse(out.begin(), out.end());
    return out;
  }
  // The chain of blocks [from, to).
  [[nodiscard]] tier_chain chain(std::size_t from, std::size_t to) const {
    tier_chain c;
    c.ns = ns;
    c.parent = parent_of(from);
    c.keys = std::span<const std::uint64_t>(keys).subspan(from, to - from);
    c.tokens = std::span<const token_id>(tokens).subspan(from * layout.block_size,
                                                         (to - from) * layout.block_size);
    c.request_class = request_class;
    return c;
  }
  [[nodiscard]] tier_chain chain() const { return chain(0, size()); }
};

// Destination buffers for `n` blocks, and their views.
struct block_buffers {
  kv_layout layout;
  std::vector<std::byte> bytes;
  std::vector<kv_block_view> views;

  block_buffers(const kv_layout& l, std::size_t n)
      : layout(l), bytes(n * l.block_bytes_all_layers(), std::byte{0xEE}), views(n) {
    for (std::size_t i = 0; i < n; ++i)
      views[i] = contiguous_block_view(bytes.data() + i * l.block_bytes_all_layers(), l);
  }
  [[nodiscard]] std::span<const std::byte> block(std::size_t i) const {
    return std::span<const std::byte>(bytes).subspan(i * layout.block_bytes_all_layers(),
                                                     layout.block_bytes_all_layers());
  }
  // Whether block i holds exactly `expected`.
  [[nodiscard]] bool holds(std::size_t i, std::span<const std::byte> expected) const {
    const auto b = block(i);
    return b.size() == expected.size() && std::memcmp(b.data(), expected.data(), b.size()) == 0;
  }
  // Whether block i was left untouched.
  [[nodiscard]] bool untouched(std::size_t i) const {
    for (const std::byte x : block(i)) {
      if (x != std::byte{0xEE})
        return false;
    }
    return true;
  }
};

// Tokens 0..n-1 shifted by `base`.
inline std::vector<token_id> iota_tokens(std::size_t n, token_id base) {
  std::vector<token_id> t(n);
  for (std::size_t i = 0; i < n; ++i)
    t[i] = base + static_cast<token_id>(i);
  return t;
}

}  // namespace kvkit::test
