// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Helpers for `prefix_cache` tests: making caches over any storage, token sequences, and
/// snapshots of everything a caller can observe (to prove that a failed call changed nothing).
#pragma once

#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace kvkit::test {

/// @brief A storage policy that reports whatever layout it was given, checked by nobody: the only
/// way to hand a cache a bad shape (the shipped storages validate their layouts).
class raw_layout_storage {
 public:
  explicit raw_layout_storage(const kv_layout& l) : layout_(l) {}
  [[nodiscard]] const kv_layout& layout() const noexcept { return layout_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return 0; }
  void copy_block(block_id, block_id) noexcept {}

 private:
  kv_layout layout_;
};
static_assert(kv_storage<raw_layout_storage>);

/// @brief A layout of @p num_blocks blocks of @p block_size tokens, fields unchecked.
inline kv_layout raw_layout(std::uint32_t block_size, std::uint32_t num_blocks) {
  kv_layout l;
  l.block_size = block_size;
  l.num_blocks = num_blocks;
  return l;
}

/// @brief Storage of @p num_blocks blocks of @p block_size tokens for a cache over @p Storage:
/// 2 layers, 2 KV heads of 4 elements for host storage.
template <class Storage>
result<Storage> make_storage(std::uint32_t block_size, std::uint32_t num_blocks) {
  if constexpr (std::is_same_v<Storage, no_storage>) {
    return no_storage::create(block_size, num_blocks);
  } else {
    kv_layout l;
    l.num_layers = 2;
    l.num_kv_heads = 2;
    l.head_dim = 4;
    l.block_size = block_size;
    l.num_blocks = num_blocks;
    l.type = dtype_of<typename Storage::element_type>;
    return Storage::create(l);
  }
}

/// @brief A cache of @p num_blocks blocks of @p block_size tokens with a fixed seed; fails the
/// test when it cannot be made.
/// @p eviction is passed to the eviction policy (policies with `options`).
template <class Cache>
Cache make_cache(std::uint32_t num_blocks, std::uint32_t block_size, std::uint64_t seed = 42,
                 const typename Cache::eviction_options& eviction = {}) {
  auto storage = make_storage<typename Cache::storage_type>(block_size, num_blocks);
  EXPECT_TRUE(storage.ok()) << storage.status().message();
  auto cache = Cache::create(cache_config{.seed = seed}, std::move(storage).value(), eviction);
  EXPECT_TRUE(cache.ok()) << cache.status().message();
  return std::move(cache).value();
}

/// @brief Tokens `start, start + 1, ..., start + n - 1`.
inline std::vector<token_id> iota_tokens(token_id start, std::size_t n) {
  std::vector<token_id> t(n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

/// @brief @p a followed by @p b.
inline std::vector<token_id> concat(std::vector<token_id> a, const std::vector<token_id>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// @brief A copy of a sequence view (or of the error that sequence() returned).
struct sequence_copy {
  errc code = errc::ok;
  std::vector<token_id> tokens;
  std::vector<block_id> blocks;
  std::uint32_t computed_tokens = 0;
  request_stats request;
  friend bool operator==(const sequence_copy&, const sequence_copy&) = default;
};

/// @brief Everything observable about a cache: stats, the given sequences and the matches of the
/// given probe prompts (with their options).
struct cache_snapshot {
  cache_stats stats;
  std::vector<sequence_copy> sequences;
  std::vector<std::uint32_t> matches;
  std::uint32_t available_blocks = 0;
  friend bool operator==(const cache_snapshot&, const cache_snapshot&) = default;
};

/// @brief A probe prompt for snapshots.
struct probe {
  std::vector<token_id> tokens;
  request_options options{};
};

template <class Cache>
cache_snapshot snapshot(const Cache& c, std::span<const sequence_id> ids,
                        std::span<const probe> probes) {
  cache_snapshot s;
  s.stats = c.stats();
  s.available_blocks = c.available_blocks();
  for (sequence_id id : ids) {
    const auto v = c.sequence(id);
    sequence_copy copy;
    copy.code = v.code();
    if (v.ok()) {
      copy.tokens.assign(v->tokens.begin(), v->tokens.end());
      copy.blocks.assign(v->blocks.begin(), v->blocks.end());
      copy.computed_tokens = v->computed_tokens;
      copy.request = v->request;
    }
    s.sequences.push_back(std::move(copy));
  }
  for (const probe& p : probes)
    s.matches.push_back(c.match(p.tokens, p.options));
  return s;
}

/// @brief Every K/V element of a cache over host storage (empty for storage without bytes).
template <class Cache>
auto kv_contents(Cache& c) {
  if constexpr (requires { c.storage().data(); }) {
    const auto d = c.storage().data();
    return std::vector<std::remove_cvref_t<decltype(d[0])>>(d.begin(), d.end());
  } else {
    return std::vector<float>{};
  }
}

/// @brief The status of any call's result (`status` or `result<T>`).
inline status status_of(const status& s) {
  return s;
}
/// @copydoc status_of
template <class T>
status status_of(const result<T>& r) {
  return r.status();
}

/// @brief Expects @p call to fail with @p code, with a message containing every one of
/// @p needles, and to leave everything observable unchanged: stats, available blocks, the
/// sequences @p ids, the matches of @p probes, K/V contents and the invariants.
template <class Cache, class Call>
void expect_rejected_unchanged(Cache& c, const std::vector<sequence_id>& ids,
                               const std::vector<probe>& probes, errc code,
                               std::initializer_list<std::string> needles, Call&& call) {
  {
    const status inv = c.check_invariants();
    EXPECT_TRUE(inv.ok()) << inv.message();
  }
  const cache_snapshot before = snapshot(c, ids, probes);
  const auto kv_before = kv_contents(c);
  const status s = status_of(call());
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), code) << s.message();
  for (const std::string& n : needles) {
    EXPECT_NE(s.message().find(n), std::string::npos)
        << "message \"" << s.message() << "\" lacks \"" << n << "\"";
  }
  const cache_snapshot after = snapshot(c, ids, probes);
  EXPECT_TRUE(after.stats == before.stats) << "stats changed: " << s.message();
  EXPECT_TRUE(after.sequences == before.sequences) << "a sequence changed: " << s.message();
  EXPECT_TRUE(after.matches == before.matches) << "a match changed: " << s.message();
  EXPECT_EQ(after.available_blocks, before.available_blocks) << s.message();
  EXPECT_TRUE(kv_contents(c) == kv_before) << "K/V changed: " << s.message();
  const status inv = c.check_invariants();
  EXPECT_TRUE(inv.ok()) << inv.message();
}

}  // namespace kvkit::test

/// Expects `cache.check_invariants()` to pass, printing the violation otherwise.
#define KVKIT_EXPECT_INVARIANTS(cache)                             \
  do {                                                             \
    const ::kvkit::status kvkit_inv_ = (cache).check_invariants(); \
    EXPECT_TRUE(kvkit_inv_.ok()) << kvkit_inv_.message();          \
  } while (false)
