// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Chaining one block (16 tokens) with vLLM-compatible SHA-256/CBOR hashes, beside the default
// keyed xxHash3 chain and a memcpy of the block's tokens:
//   BM_Hashing_MemcpyBaseline/16   copy 16 tokens
//   BM_Hashing_Xxh3Chain/16        xxh3_hasher::chain (hash_matcher's default)
//   BM_Hashing_VllmChain/16        vllm_hasher::chain (CBOR preimage + SHA-256)
#include <kvkit/hashing.hpp>
#include <kvkit/vllm_hashing.hpp>

#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

namespace {

std::vector<kvkit::token_id> tokens(std::size_t n) {
  std::mt19937_64 rng(2);
  std::vector<kvkit::token_id> t(n);
  for (auto& x : t)
    x = static_cast<kvkit::token_id>(rng() % 152064);
  return t;
}

void BM_Hashing_MemcpyBaseline(benchmark::State& state) {
  const auto t = tokens(static_cast<std::size_t>(state.range(0)));
  std::vector<kvkit::token_id> out(t.size());
  for (auto _ : state) {
    std::memcpy(out.data(), t.data(), t.size() * sizeof(kvkit::token_id));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Hashing_MemcpyBaseline)->Arg(16)->Arg(64);

void BM_Hashing_Xxh3Chain(benchmark::State& state) {
  const auto t = tokens(static_cast<std::size_t>(state.range(0)));
  const kvkit::xxh3_hasher h(42);
  std::uint64_t parent = 7;
  for (auto _ : state) {
    parent = h.chain(parent, t);
    benchmark::DoNotOptimize(parent);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Hashing_Xxh3Chain)->Arg(16)->Arg(64);

void BM_Hashing_VllmChain(benchmark::State& state) {
  const auto t = tokens(static_cast<std::size_t>(state.range(0)));
  const kvkit::vllm_hasher h(42);
  auto d = h.root_digest(kvkit::xxh3_hasher(42).root(0, {}));
  d = h.chain(d, t);
  for (auto _ : state) {
    d = h.chain(d, t);
    benchmark::DoNotOptimize(d.hash.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Hashing_VllmChain)->Arg(16)->Arg(64);

}  // namespace
