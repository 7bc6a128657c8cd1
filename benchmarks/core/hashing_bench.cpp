// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Chained block hashing of a 2,048-token prompt (8 KiB of token ids), the work a hash matcher does
// per prompt, beside the limits measured in the same process:
//
//   BM_Hashing_Chain/xxh3/block_tokens:{16,64,256}  xxh3_hasher::chain over every block, each
//                                                   block's hash seeding the next (serial)
//   BM_Baseline_Xxh3Whole                           one unchained XXH3 over the whole 8 KiB
//   BM_Baseline_ReadSum                             summing the same bytes (read bandwidth, L1)
//
// items_per_second counts tokens.
#include <kvkit/hashing.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <vector>

namespace {

constexpr std::uint32_t kPromptTokens = 2048;
constexpr std::uint64_t kSeed = 0x6b766b6974ull;

std::vector<kvkit::token_id> make_prompt() {
  std::mt19937_64 rng(42);
  std::vector<kvkit::token_id> p(kPromptTokens);
  for (auto& t : p)
    t = static_cast<kvkit::token_id>(rng() % 128000);
  return p;
}

void BM_Hashing_Chain(benchmark::State& state) {
  const auto block = static_cast<std::size_t>(state.range(0));
  const auto prompt = make_prompt();
  const std::span<const kvkit::token_id> all(prompt);
  const kvkit::xxh3_hasher hasher(kSeed);
  const std::uint64_t root = hasher.root(0, {});
  for (auto _ : state) {
    benchmark::DoNotOptimize(prompt.data());
    std::uint64_t h = root;
    for (std::size_t off = 0; off < all.size(); off += block)
      h = hasher.chain(h, all.subspan(off, block));
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kPromptTokens);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * kPromptTokens *
                          static_cast<std::int64_t>(sizeof(kvkit::token_id)));
}
BENCHMARK(BM_Hashing_Chain)
    ->Name("BM_Hashing_Chain/xxh3")
    ->ArgName("block_tokens")
    ->Arg(16)
    ->Arg(64)
    ->Arg(256);

void BM_Baseline_Xxh3Whole(benchmark::State& state) {
  const auto prompt = make_prompt();
  for (auto _ : state) {
    benchmark::DoNotOptimize(prompt.data());
    std::uint64_t h =
        XXH3_64bits_withSeed(prompt.data(), prompt.size() * sizeof(kvkit::token_id), kSeed);
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kPromptTokens);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * kPromptTokens *
                          static_cast<std::int64_t>(sizeof(kvkit::token_id)));
}
BENCHMARK(BM_Baseline_Xxh3Whole);

void BM_Baseline_ReadSum(benchmark::State& state) {
  const auto prompt = make_prompt();
  constexpr std::size_t words = kPromptTokens * sizeof(kvkit::token_id) / sizeof(std::uint64_t);
  std::vector<std::uint64_t> w(words);
  std::memcpy(w.data(), prompt.data(), words * sizeof(std::uint64_t));
  for (auto _ : state) {
    benchmark::DoNotOptimize(w.data());
    std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (std::size_t i = 0; i < words; i += 4) {
      s0 += w[i];
      s1 += w[i + 1];
      s2 += w[i + 2];
      s3 += w[i + 3];
    }
    std::uint64_t s = s0 + s1 + s2 + s3;
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kPromptTokens);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * kPromptTokens *
                          static_cast<std::int64_t>(sizeof(kvkit::token_id)));
}
BENCHMARK(BM_Baseline_ReadSum);

}  // namespace
