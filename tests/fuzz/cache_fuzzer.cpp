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
//
// Options (given like libFuzzer's own, or as environment variables; the flag wins):
//   -kvkit_check_every=N        KVKIT_FUZZ_CHECK_EVERY=N   whole-cache checks (check_invariants,
//       every live sequence, counters, K/V) after every N operations instead of after each one;
//       always after an input's last operation and after an operation whose own checks failed.
//       Each operation's own results are still checked as it runs. Default 1.
//   -kvkit_combination=K        KVKIT_FUZZ_COMBINATION=K   fuzz only composition K (0 to 53, in
//       kvkit::for_each_combination order); the input byte that chooses it is read and ignored,
//       so a corpus stays valid. Default: the input chooses.
//   -kvkit_stats=1              KVKIT_FUZZ_STATS=1   at exit (not after a crash), also print
//       the operations and inputs of each composition, the wall time and the rate.
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
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

constexpr std::size_t kCombinations = kvkit::test::combination_count<>;

/// The fuzzer's own options (see the top of this file).
struct fuzz_options {
  std::uint64_t check_every = 1;
  long combination = -1;  // -1: the input chooses
  bool stats = false;
};
fuzz_options fuzz_settings;

/// The name of combination @p index, "allocator + matcher + eviction".
std::string combination_name(std::size_t index) {
  std::string name;
  kvkit::test::with_combination(index, [&]<class A, class M, class E>() {
    name = std::string(kvkit::policy_traits<A>::name()) + " + " +
           std::string(kvkit::policy_traits<M>::name()) + " + " +
           std::string(kvkit::policy_traits<E>::name());
  });
  return name;
}

/// Operations run by this process, printed when it exits.
struct operation_counter {
  std::uint64_t operations = 0;
  std::array<std::uint64_t, kCombinations> per_combination{};
  std::array<std::uint64_t, kCombinations> inputs{};
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  ~operation_counter() {
    std::fprintf(stderr, "kvkit-fuzz: %llu operations\n",
                 static_cast<unsigned long long>(operations));
    if (!fuzz_settings.stats)
      return;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::uint64_t total_inputs = 0;
    std::size_t covered = 0;
    for (std::size_t c = 0; c < kCombinations; ++c) {
      total_inputs += inputs[c];
      covered += per_combination[c] > 0 ? 1 : 0;
      std::fprintf(stderr, "kvkit-fuzz: combination %2zu %-40s %12llu operations %9llu inputs\n", c,
                   combination_name(c).c_str(), static_cast<unsigned long long>(per_combination[c]),
                   static_cast<unsigned long long>(inputs[c]));
    }
    std::fprintf(stderr,
                 "kvkit-fuzz: total %llu operations, %llu inputs, %zu of %zu combinations, "
                 "check every %llu, %.1f s, %.0f operations/s\n",
                 static_cast<unsigned long long>(operations),
                 static_cast<unsigned long long>(total_inputs), covered, kCombinations,
                 static_cast<unsigned long long>(fuzz_settings.check_every), seconds,
                 seconds > 0 ? static_cast<double>(operations) / seconds : 0.0);
  }
};
operation_counter counter;
std::size_t current_combination = 0;

/// Parses a non-negative integer option; exits with a message naming the accepted values.
std::uint64_t parse_count(std::string_view what, const char* text, std::uint64_t min,
                          std::uint64_t max) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || v < min || v > max) {
    std::fprintf(stderr, "kvkit-fuzz: %.*s = '%s' is invalid; accepted: %llu to %llu\n",
                 static_cast<int>(what.size()), what.data(), text,
                 static_cast<unsigned long long>(min), static_cast<unsigned long long>(max));
    std::exit(2);
  }
  return v;
}

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
    std::fprintf(stderr, "kvkit-fuzz: %llu operations\n",
                 static_cast<unsigned long long>(counter.operations));
    std::abort();
  };
  if constexpr (std::is_same_v<Matcher, kvkit::hash_matcher> &&
                std::is_same_v<Eviction, kvkit::lru_eviction>) {
    if (choices.next(2) == 0) {
      kvkit::test::differential_run<cache, byte_choices> run(choices, report, seed, block_size,
                                                             num_blocks);
      const std::uint64_t done = run.run(kMaxOperations, fuzz_settings.check_every).operations;
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
  const std::uint64_t done = run.run(kMaxOperations, fuzz_settings.check_every).operations;
  counter.operations += done;
  counter.per_combination[current_combination] += done;
  if (run.failed())
    fail();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  struct option_spec {
    const char* flag;
    const char* env;
    std::uint64_t min;
    std::uint64_t max;
  };
  const option_spec specs[] = {
      {"-kvkit_check_every=", "KVKIT_FUZZ_CHECK_EVERY", 1, 1u << 30},
      {"-kvkit_combination=", "KVKIT_FUZZ_COMBINATION", 0, kCombinations - 1},
      {"-kvkit_stats=", "KVKIT_FUZZ_STATS", 0, 1},
  };
  const char* values[std::size(specs)] = {};
  for (std::size_t o = 0; o < std::size(specs); ++o)
    values[o] = std::getenv(specs[o].env);
  // Take our flags out of argv, so that libFuzzer does not warn about them.
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const char* arg = (*argv)[i];
    bool ours = false;
    for (std::size_t o = 0; o < std::size(specs); ++o) {
      const std::size_t n = std::strlen(specs[o].flag);
      if (std::strncmp(arg, specs[o].flag, n) == 0) {
        values[o] = arg + n;
        ours = true;
      }
    }
    if (!ours)
      (*argv)[kept++] = (*argv)[i];
  }
  *argc = kept;
  if (values[0] != nullptr)
    fuzz_settings.check_every =
        parse_count("kvkit_check_every", values[0], specs[0].min, specs[0].max);
  if (values[1] != nullptr) {
    fuzz_settings.combination =
        static_cast<long>(parse_count("kvkit_combination", values[1], specs[1].min, specs[1].max));
  }
  if (values[2] != nullptr)
    fuzz_settings.stats = parse_count("kvkit_stats", values[2], specs[2].min, specs[2].max) == 1;
  if (fuzz_settings.combination >= 0) {
    std::fprintf(stderr, "kvkit-fuzz: only combination %ld (%s)\n", fuzz_settings.combination,
                 combination_name(static_cast<std::size_t>(fuzz_settings.combination)).c_str());
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  byte_choices choices(data, size);
  std::size_t combination = choices.next(kCombinations);
  if (fuzz_settings.combination >= 0)
    combination = static_cast<std::size_t>(fuzz_settings.combination);
  current_combination = combination;
  ++counter.inputs[combination];
  kvkit::test::with_combination(combination,
                                [&]<class A, class M, class E>() { fuzz_one<A, M, E>(choices); });
  return 0;
}
