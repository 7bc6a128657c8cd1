// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
//
// Coverage-guided differential fuzzer of prefix_cache over every shipped composition.
//
// The compositions are compiled in cache_fuzzer/ (fuzz_one.hpp, one file per matcher); this file
// holds the options, the counters and libFuzzer's entry points.
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
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "cache_fuzzer/state.hpp"

namespace kvkit::fuzz {

fuzz_options settings;
std::size_t current_combination = 0;

namespace {

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

}  // namespace

operation_counter::~operation_counter() {
  std::fprintf(stderr, "kvkit-fuzz: %llu operations\n",
               static_cast<unsigned long long>(operations));
  if (!settings.stats)
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
               static_cast<unsigned long long>(settings.check_every), seconds,
               seconds > 0 ? static_cast<double>(operations) / seconds : 0.0);
}
operation_counter counter;

void report(const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "%s:%d: %s\n", file, line, message.c_str());
}

}  // namespace kvkit::fuzz

using kvkit::fuzz::kCombinations;
using kvkit::fuzz::parse_count;
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
    kvkit::fuzz::settings.check_every =
        parse_count("kvkit_check_every", values[0], specs[0].min, specs[0].max);
  if (values[1] != nullptr) {
    kvkit::fuzz::settings.combination =
        static_cast<long>(parse_count("kvkit_combination", values[1], specs[1].min, specs[1].max));
  }
  if (values[2] != nullptr)
    kvkit::fuzz::settings.stats =
        parse_count("kvkit_stats", values[2], specs[2].min, specs[2].max) == 1;
  if (kvkit::fuzz::settings.combination >= 0) {
    std::fprintf(
        stderr, "kvkit-fuzz: only combination %ld (%s)\n", kvkit::fuzz::settings.combination,
        kvkit::fuzz::combination_name(static_cast<std::size_t>(kvkit::fuzz::settings.combination))
            .c_str());
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fz = kvkit::fuzz;
  fz::byte_choices choices(data, size);
  std::size_t combination = choices.next(kCombinations);
  if (fz::settings.combination >= 0)
    combination = static_cast<std::size_t>(fz::settings.combination);
  fz::current_combination = combination;
  ++fz::counter.inputs[combination];
  kvkit::test::with_combination(combination, [&]<class A, class M, class E>() {
    fz::fuzz_with_matcher<M>(combination, choices);
  });
  return 0;
}
