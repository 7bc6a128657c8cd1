// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief A seeded random request workload over a `prefix_cache` (admit, commit, append, fork,
/// finish; shared prefixes so that blocks hit, and a small pool so that blocks are evicted), for
/// tests of policies used inside a cache.
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/prefix_cache.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace kvkit::test {

/// @brief What run_random_cache_workload() did.
struct workload_summary {
  std::uint32_t admitted = 0;       ///< Successful admissions.
  std::uint32_t out_of_blocks = 0;  ///< Admissions or appends refused with `out_of_blocks`.
  std::uint32_t peak_in_use = 0;    ///< Most blocks not free at once (owned or cached).
};

/// @brief Runs @p steps random operations on @p cache, checking its invariants after each one;
/// calls `on_step(cache, peak_in_use)` after each operation. Finishes every live sequence at the
/// end. Prompts are one of 4 shared prefixes (0-3 blocks) followed by a random suffix.
/// @return Counts of what happened.
template <class Cache, class OnStep>
workload_summary run_random_cache_workload(Cache& cache, std::uint64_t seed, int steps,
                                           OnStep&& on_step) {
  std::mt19937_64 rng(seed);
  const std::uint32_t bs = cache.block_size();
  std::vector<std::vector<token_id>> prefixes;
  for (std::uint32_t p = 0; p < 4; ++p) {
    std::vector<token_id> t(p * bs);
    for (auto& x : t)
      x = static_cast<token_id>(rng() % 50);
    prefixes.push_back(std::move(t));
  }
  std::vector<sequence_id> live;
  workload_summary sum;
  auto note_usage = [&] {
    const cache_stats st = cache.stats();
    const std::uint32_t in_use = st.blocks_total - st.blocks_free;
    if (in_use > sum.peak_in_use)
      sum.peak_in_use = in_use;
  };
  auto drop = [&](std::size_t i) {
    const status s = cache.finish(live[i]);
    EXPECT_TRUE(s.ok()) << s.message();
    live[i] = live.back();
    live.pop_back();
  };
  for (int step = 0; step < steps; ++step) {
    const std::uint64_t op = rng() % 100;
    if (live.empty() || op < 40) {  // admit + commit
      std::vector<token_id> prompt = prefixes[rng() % prefixes.size()];
      const std::uint64_t extra = 1 + rng() % (3 * bs);
      for (std::uint64_t i = 0; i < extra; ++i)
        prompt.push_back(static_cast<token_id>(rng() % 50));
      auto a = cache.admit(prompt);
      if (!a.ok()) {
        EXPECT_EQ(a.status().code(), errc::out_of_blocks) << a.status().message();
        ++sum.out_of_blocks;
      } else {
        ++sum.admitted;
        auto c = cache.commit(a->id);
        EXPECT_TRUE(c.ok()) << c.status().message();
        live.push_back(a->id);
      }
    } else if (op < 70) {  // decode: append a few tokens, then commit them
      const sequence_id id = live[rng() % live.size()];
      std::vector<token_id> t(1 + rng() % bs);
      for (auto& x : t)
        x = static_cast<token_id>(rng() % 50);
      const status s = cache.append(id, t);
      if (!s.ok()) {
        EXPECT_EQ(s.code(), errc::out_of_blocks) << s.message();
        ++sum.out_of_blocks;
      } else {
        auto c = cache.commit(id);
        EXPECT_TRUE(c.ok()) << c.status().message();
      }
    } else if (op < 75) {  // fork (every token is committed)
      auto f = cache.fork(live[rng() % live.size()]);
      EXPECT_TRUE(f.ok()) << f.status().message();
      if (f.ok())
        live.push_back(*f);
    } else {
      drop(rng() % live.size());
    }
    note_usage();
    const status inv = cache.check_invariants();
    EXPECT_TRUE(inv.ok()) << "step " << step << ": " << inv.message();
    if (!inv.ok())
      return sum;
    on_step(cache, sum.peak_in_use);
  }
  while (!live.empty())
    drop(live.size() - 1);
  note_usage();
  const status inv = cache.check_invariants();
  EXPECT_TRUE(inv.ok()) << "after finishing every sequence: " << inv.message();
  on_step(cache, sum.peak_in_use);
  return sum;
}

}  // namespace kvkit::test
