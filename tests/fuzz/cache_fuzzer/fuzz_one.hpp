// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The cache fuzzer's per-composition driver (see cache_fuzzer.cpp): fuzz_one<A, M, E> runs one
// input through one composition; fuzz_with_matcher<M> picks the composition of matcher M.
// Included only by cache_fuzzer/<matcher>.cpp, each of which instantiates it for its matcher.
#pragma once

#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "state.hpp"
#include "support/differential_driver.hpp"
#include "support/property_driver.hpp"

namespace kvkit::fuzz {

using kvkit::test::manual_clock;

/// Settings of eviction policy @p E: times in units of 1 microsecond on @p clock.
template <class E>
kvkit::policy_options_t<E> eviction_options(byte_choices& choices, const manual_clock& clock) {
  if constexpr (std::is_same_v<E, kvkit::ttl_eviction>) {
    kvkit::ttl_options o;
    o.ttl = std::chrono::microseconds(1 + choices.next(8));
    o.now = clock.reader();
    return o;
  } else if constexpr (std::is_same_v<E, kvkit::priority_eviction>) {
    kvkit::priority_options o;
    for (int c = 0; c < 5; ++c) {
      o.classes.push_back(
          {static_cast<std::uint8_t>(choices.next(kvkit::priority_eviction::max_levels)),
           std::chrono::microseconds(choices.next(4) * 2)});
    }
    o.default_priority =
        static_cast<std::uint8_t>(choices.next(4));  // priorities are below max_levels
    o.now = clock.reader();
    return o;
  } else {
    static_assert(std::is_same_v<kvkit::policy_options_t<E>, kvkit::no_options>,
                  "cache_fuzzer: give this policy's options a fuzzed value");
    (void)choices;
    (void)clock;
    return {};
  }
}

template <class Allocator, class Matcher, class Eviction>
void fuzz_one(byte_choices& choices) {
  using cache = kvkit::prefix_cache<Allocator, Matcher, Eviction, kvkit::host_storage<float>>;
  const std::uint32_t block_size = kBlockSizes[choices.next(std::size(kBlockSizes))];
  const auto num_blocks =
      kMinBlocks + static_cast<std::uint32_t>(choices.next(kMaxBlocks - kMinBlocks + 1));
  const std::uint64_t seed = choices.next(1u << 16);
  const auto fail = [&] {
    std::fprintf(stderr, "composition: %s + %s + %s, block_size %u, %u blocks\n",
                 std::string(kvkit::policy_traits<Allocator>::name()).c_str(),
                 std::string(kvkit::policy_traits<Matcher>::name()).c_str(),
                 std::string(kvkit::policy_traits<Eviction>::name()).c_str(), block_size,
                 num_blocks);
    std::fprintf(stderr, "kvkit-fuzz: %llu operations\n",
                 static_cast<unsigned long long>(counter.operations));
    std::abort();
  };
  if constexpr (std::is_same_v<Matcher, kvkit::hash_matcher> &&
                std::is_same_v<Eviction, kvkit::lru_eviction>) {
    if (choices.next(2) == 0) {
      kvkit::test::differential_run<cache, byte_choices> run(choices, report, seed, block_size,
                                                             num_blocks);
      const std::uint64_t done = run.run(kMaxOperations, settings.check_every).operations;
      counter.operations += done;
      counter.per_combination[current_combination] += done;
      if (run.failed())
        fail();
      return;
    }
  }
  manual_clock clock;
  const auto options = eviction_options<Eviction>(choices, clock);
  kvkit::test::property_run<cache, byte_choices> run(choices, report, clock, seed, block_size,
                                                     num_blocks, options);
  const std::uint64_t done = run.run(kMaxOperations, settings.check_every).operations;
  counter.operations += done;
  counter.per_combination[current_combination] += done;
  if (run.failed())
    fail();
}

template <class Matcher>
void fuzz_with_matcher(std::size_t combination, byte_choices& choices) {
  kvkit::test::with_combination(combination, [&]<class A, class M, class E>() {
    if constexpr (std::is_same_v<M, Matcher>)
      fuzz_one<A, M, E>(choices);
  });
}

}  // namespace kvkit::fuzz
