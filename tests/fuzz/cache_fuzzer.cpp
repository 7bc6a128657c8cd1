// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
//
// Coverage-guided differential fuzzer of prefix_cache over every shipped composition.
//
// The first bytes of the input choose the composition (every allocator x matcher x eviction
// policy), the block size (1, 2, 4 or 16), the pool size (4 to 64 blocks), the hash seed and the
// settings of policies that have some (ttl, priority: times on a manual clock). The rest drive
// operations through one of two drivers:
// - hash_matcher + lru_eviction (any allocator; allocators change only block ids), half of the
//   inputs: the differential driver (tests/support/differential_driver.hpp) compares every
//   result, counter, gauge, block table and K/V slot against the reference model;
// - every composition: the property driver (tests/support/property_driver.hpp) runs every
//   operation (fork, pin, invalidation, expiry, clock included) and checks the properties every
//   composition must have.
// A failed check prints what failed and the operation, then aborts (a libFuzzer crash). The
// number of operations run is printed at exit: "kvkit-fuzz: N operations".
//
//   cache_fuzzer -max_total_time=60 corpus/       fuzz
//   cache_fuzzer crash-<sha1>                     replay one input (KVKIT_DIFF_TRACE=1 traces it)
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "support/choice_source.hpp"
#include "support/differential_driver.hpp"
#include "support/policy_catalogue.hpp"
#include "support/property_driver.hpp"

namespace {

using kvkit::test::byte_choices;
using kvkit::test::manual_clock;

constexpr std::uint32_t kBlockSizes[] = {1, 2, 4, 16};
constexpr std::uint32_t kMinBlocks = 4;
constexpr std::uint32_t kMaxBlocks = 64;
constexpr std::uint64_t kMaxOperations = 4096;  // per input

/// Operations run by this process, printed when it exits.
struct operation_counter {
  std::uint64_t operations = 0;
  ~operation_counter() {
    std::fprintf(stderr, "kvkit-fuzz: %llu operations\n",
                 static_cast<unsigned long long>(operations));
  }
};
operation_counter counter;

void report(const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "%s:%d: %s\n", file, line, message.c_str());
}

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
    std::abort();
  };
  if constexpr (std::is_same_v<Matcher, kvkit::hash_matcher> &&
                std::is_same_v<Eviction, kvkit::lru_eviction>) {
    if (choices.next(2) == 0) {
      kvkit::test::differential_run<cache, byte_choices> run(choices, report, seed, block_size,
                                                             num_blocks);
      counter.operations += run.run(kMaxOperations).operations;
      if (run.failed())
        fail();
      return;
    }
  }
  manual_clock clock;
  const auto options = eviction_options<Eviction>(choices, clock);
  kvkit::test::property_run<cache, byte_choices> run(choices, report, clock, seed, block_size,
                                                     num_blocks, options);
  counter.operations += run.run(kMaxOperations).operations;
  if (run.failed())
    fail();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  byte_choices choices(data, size);
  const std::size_t combination = choices.next(kvkit::test::combination_count<>);
  kvkit::test::with_combination(combination,
                                [&]<class A, class M, class E>() { fuzz_one<A, M, E>(choices); });
  return 0;
}
