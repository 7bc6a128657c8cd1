// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Prefix matchers on their own (no cache around them): cost per block of finding and of
// registering/forgetting chains of 16-token blocks.
//
//   BM_Matcher_Find/<matcher>
//       512 cached chains of 128 blocks (16 random tokens each) under one namespace, 65,536
//       blocks in all. Each iteration walks one chain (chosen at random) from the namespace root:
//       child() + find() (+ bind()) per block, with the verifier a cache passes (parent link and
//       the block's 16 tokens compared). Counter ns_per_block.
//   BM_Matcher_InsertErase/<matcher>
//       Same population; each iteration registers a fresh 128-block chain under the root
//       (child() + insert() per block) and then forgets it, tail first (erase()).
//       Counter ns_per_block (one insert plus one erase per block).
//
// Baseline in the same process, BM_Matcher_Find/unordered_map and
// BM_Matcher_InsertErase/unordered_map: a std::unordered_map<uint64_t, block_id> keyed by the
// same chained xxHash3 of each block (what a Python or naive C++ prefix cache does), the same
// token comparison on a hit.
#include <kvkit/hashing.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/matcher/radix.hpp>
#include <kvkit/matcher/session.hpp>
#include <kvkit/types.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

namespace {

constexpr std::uint32_t kBlockSize = 16;
constexpr std::uint32_t kChainBlocks = 128;
constexpr std::uint32_t kChains = 512;
constexpr std::uint32_t kCached = kChains * kChainBlocks;  // 65,536
constexpr std::uint32_t kCapacity = kCached + kChainBlocks;
constexpr std::uint64_t kSeed = 0x6b766b6974ull;
constexpr std::uint64_t kNsKey = 0x1234;

/// Tokens of every block, and the parent of every registered block: what a cache stores to
/// verify a candidate.
struct block_store {
  std::vector<kvkit::token_id> tokens =
      std::vector<kvkit::token_id>(std::size_t{kCapacity} * kBlockSize);
  std::vector<std::uint32_t> parent = std::vector<std::uint32_t>(kCapacity, kvkit::invalid_block);

  std::span<const kvkit::token_id> of(kvkit::block_id b) const {
    return {tokens.data() + std::size_t{b} * kBlockSize, kBlockSize};
  }
  bool matches(kvkit::block_id b, std::uint32_t par, std::span<const kvkit::token_id> t) const {
    return parent[b] == par && std::equal(t.begin(), t.end(), of(b).begin());
  }
};

/// Chain c's tokens, block k: random, from a fixed generator.
std::vector<kvkit::token_id> make_chains(std::uint32_t chains) {
  std::mt19937_64 rng(7);
  std::vector<kvkit::token_id> t(std::size_t{chains} * kChainBlocks * kBlockSize);
  for (auto& x : t)
    x = static_cast<kvkit::token_id>(rng() % 128000);
  return t;
}

std::span<const kvkit::token_id> chain_block(const std::vector<kvkit::token_id>& all,
                                             std::uint32_t chain, std::uint32_t k) {
  return {all.data() + (std::size_t{chain} * kChainBlocks + k) * kBlockSize, kBlockSize};
}

template <class Matcher>
struct fixture {
  Matcher m{kCapacity, kSeed};
  block_store store;
  std::vector<kvkit::token_id> tokens = make_chains(kChains + 1);
  static constexpr std::uint32_t root_node = kCapacity;  // namespace node ids follow the blocks

  /// Registers chain @p c into blocks [first, first + kChainBlocks).
  void insert_chain(std::uint32_t c, kvkit::block_id first) {
    auto cur = m.root(root_node, kNsKey);
    std::uint32_t parent = root_node;
    for (std::uint32_t k = 0; k < kChainBlocks; ++k) {
      const auto t = chain_block(tokens, c, k);
      auto child = m.child(cur, t);
      const kvkit::block_id b = first + k;
      std::copy(t.begin(), t.end(), store.tokens.begin() + std::size_t{b} * kBlockSize);
      store.parent[b] = parent;
      m.insert(child, b);
      if constexpr (requires { m.bind(child, b); })
        m.bind(child, b);
      cur = child;
      parent = b;
    }
  }

  fixture() {
    for (std::uint32_t c = 0; c < kChains; ++c)
      insert_chain(c, c * kChainBlocks);
  }
};

template <class Matcher>
void BM_Matcher_Find(benchmark::State& state) {
  fixture<Matcher> f;
  std::mt19937 rng(1);
  std::uint64_t found = 0;
  for (auto _ : state) {
    const std::uint32_t c = rng() % kChains;
    auto cur = f.m.root(f.root_node, kNsKey);
    std::uint32_t parent = f.root_node;
    for (std::uint32_t k = 0; k < kChainBlocks; ++k) {
      const auto t = chain_block(f.tokens, c, k);
      auto child = f.m.child(cur, t);
      const kvkit::block_id b =
          f.m.find(child, [&](kvkit::block_id cand) { return f.store.matches(cand, parent, t); });
      if (b == kvkit::invalid_block)
        break;
      if constexpr (requires { f.m.bind(child, b); })
        f.m.bind(child, b);
      cur = child;
      parent = b;
      ++found;
    }
  }
  if (found != static_cast<std::uint64_t>(state.iterations()) * kChainBlocks)
    state.SkipWithError("a cached block was not found");
  state.counters["ns_per_block"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kChainBlocks),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

template <class Matcher>
void BM_Matcher_InsertErase(benchmark::State& state) {
  fixture<Matcher> f;
  const kvkit::block_id first = kCached;
  for (auto _ : state) {
    f.insert_chain(kChains, first);
    for (std::uint32_t k = kChainBlocks; k > 0; --k)
      f.m.erase(first + k - 1);
  }
  state.counters["ns_per_block"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kChainBlocks),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// ---- baseline: std::unordered_map keyed by the chained block hash ----------------------------

struct map_fixture {
  kvkit::xxh3_hasher h{kSeed};
  std::unordered_map<std::uint64_t, kvkit::block_id> map;
  block_store store;
  std::vector<kvkit::token_id> tokens = make_chains(kChains + 1);

  void insert_chain(std::uint32_t c, kvkit::block_id first) {
    std::uint64_t key = kNsKey;
    for (std::uint32_t k = 0; k < kChainBlocks; ++k) {
      const auto t = chain_block(tokens, c, k);
      key = h.chain(key, t);
      const kvkit::block_id b = first + k;
      std::copy(t.begin(), t.end(), store.tokens.begin() + std::size_t{b} * kBlockSize);
      store.parent[b] = k == 0 ? kCapacity : b - 1;
      map.emplace(key, b);
    }
  }
  map_fixture() {
    map.reserve(kCapacity);
    for (std::uint32_t c = 0; c < kChains; ++c)
      insert_chain(c, c * kChainBlocks);
  }
};

void BM_Matcher_Find_unordered_map(benchmark::State& state) {
  map_fixture f;
  std::mt19937 rng(1);
  std::uint64_t found = 0;
  for (auto _ : state) {
    const std::uint32_t c = rng() % kChains;
    std::uint64_t key = kNsKey;
    std::uint32_t parent = kCapacity;
    for (std::uint32_t k = 0; k < kChainBlocks; ++k) {
      const auto t = chain_block(f.tokens, c, k);
      key = f.h.chain(key, t);
      const auto it = f.map.find(key);
      if (it == f.map.end() || !f.store.matches(it->second, parent, t))
        break;
      parent = it->second;
      ++found;
    }
  }
  if (found != static_cast<std::uint64_t>(state.iterations()) * kChainBlocks)
    state.SkipWithError("a cached block was not found");
  state.counters["ns_per_block"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kChainBlocks),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Matcher_InsertErase_unordered_map(benchmark::State& state) {
  map_fixture f;
  std::vector<std::uint64_t> keys(kChainBlocks);
  for (auto _ : state) {
    std::uint64_t key = kNsKey;
    for (std::uint32_t k = 0; k < kChainBlocks; ++k) {
      key = f.h.chain(key, chain_block(f.tokens, kChains, k));
      keys[k] = key;
      f.map.emplace(key, kCached + k);
    }
    for (std::uint32_t k = kChainBlocks; k > 0; --k)
      f.map.erase(keys[k - 1]);
  }
  state.counters["ns_per_block"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kChainBlocks),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace

BENCHMARK(BM_Matcher_Find_unordered_map)->Name("BM_Matcher_Find/unordered_map");
BENCHMARK_TEMPLATE(BM_Matcher_Find, kvkit::hash_matcher)->Name("BM_Matcher_Find/hash");
BENCHMARK_TEMPLATE(BM_Matcher_Find, kvkit::radix_matcher)->Name("BM_Matcher_Find/radix");
BENCHMARK_TEMPLATE(BM_Matcher_Find, kvkit::session_matcher)->Name("BM_Matcher_Find/session");
BENCHMARK(BM_Matcher_InsertErase_unordered_map)->Name("BM_Matcher_InsertErase/unordered_map");
BENCHMARK_TEMPLATE(BM_Matcher_InsertErase, kvkit::hash_matcher)
    ->Name("BM_Matcher_InsertErase/hash");
BENCHMARK_TEMPLATE(BM_Matcher_InsertErase, kvkit::radix_matcher)
    ->Name("BM_Matcher_InsertErase/radix");
BENCHMARK_TEMPLATE(BM_Matcher_InsertErase, kvkit::session_matcher)
    ->Name("BM_Matcher_InsertErase/session");
