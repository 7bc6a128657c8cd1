// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief K/V contents for `prefix_cache` tests over host storage: what a pretend runtime writes
/// for each computed token, and checks that a sequence's blocks hold exactly that.
///
/// The K/V of position `pos` depends on the namespace and on every token up to `pos`, as in a
/// model, so a hit (whole block or partial copy) is right only if it came from the same prefix.
#pragma once

#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace kvkit::test {

/// @brief A code for the prefix `tokens[0..pos]` in namespace @p ns (18 bits).
inline std::uint32_t prefix_code(std::span<const token_id> tokens, std::size_t pos,
                                 std::uint64_t ns) {
  std::uint64_t h = 0xCBF29CE484222325ull ^ (ns * 0x9E3779B97F4A7C15ull);
  for (std::size_t i = 0; i <= pos; ++i) {
    h ^= static_cast<std::uint32_t>(tokens[i]);
    h *= 0x100000001B3ull;
    h ^= h >> 29;
  }
  return static_cast<std::uint32_t>(h >> 46);  // 18 bits
}

/// @brief One K/V element of a position with prefix code @p code: exact in float.
inline float kv_value(std::uint32_t code, std::uint32_t layer, std::uint32_t kv, std::uint32_t head,
                      std::uint32_t dim) {
  return static_cast<float>(code * 32u + layer * 16u + kv * 8u + head * 4u + dim);
}

/// @brief Calls @p f(layer, kv, head, dim) for every element of one token slot.
template <class Cache>
void for_each_element(const Cache& c, auto&& f) {
  const kv_layout& l = c.storage().layout();
  for (std::uint32_t layer = 0; layer < l.num_layers; ++layer)
    for (std::uint32_t kv = 0; kv < 2; ++kv)
      for (std::uint32_t h = 0; h < l.num_kv_heads; ++h)
        for (std::uint32_t d = 0; d < l.head_dim; ++d)
          f(layer, kv, h, d);
}

/// @brief Writes the K/V of positions [@p from, @p to) of sequence @p id into its blocks (what
/// prefill or decode does for the uncached tokens); @p ns is the namespace's code (tenant salt).
template <class Cache>
void write_kv(Cache& c, sequence_id id, std::size_t from, std::size_t to, std::uint64_t ns = 0) {
  const auto v = c.sequence(id);
  ASSERT_TRUE(v.ok()) << v.status().message();
  ASSERT_LE(to, v->tokens.size());
  for (std::size_t pos = from; pos < to; ++pos) {
    const block_id b = v->blocks[pos / c.block_size()];
    const auto slot = static_cast<std::uint32_t>(pos % c.block_size());
    const std::uint32_t code = prefix_code(v->tokens, pos, ns);
    for_each_element(c,
                     [&](std::uint32_t layer, std::uint32_t kv, std::uint32_t h, std::uint32_t d) {
                       c.storage().at(layer, kv, b, slot, h, d) = kv_value(code, layer, kv, h, d);
                     });
  }
}

/// @brief The number of wrong K/V elements among positions [@p from, @p to) of sequence @p id.
template <class Cache>
std::size_t kv_errors(Cache& c, sequence_id id, std::size_t from, std::size_t to,
                      std::uint64_t ns = 0) {
  const auto v = c.sequence(id);
  EXPECT_TRUE(v.ok()) << v.status().message();
  if (!v.ok())
    return 1;
  std::size_t errors = 0;
  for (std::size_t pos = from; pos < to; ++pos) {
    const block_id b = v->blocks[pos / c.block_size()];
    const auto slot = static_cast<std::uint32_t>(pos % c.block_size());
    const std::uint32_t code = prefix_code(v->tokens, pos, ns);
    for_each_element(c, [&](std::uint32_t layer, std::uint32_t kv, std::uint32_t h,
                            std::uint32_t d) {
      errors += c.storage().at(layer, kv, b, slot, h, d) != kv_value(code, layer, kv, h, d) ? 1 : 0;
    });
  }
  return errors;
}

}  // namespace kvkit::test
