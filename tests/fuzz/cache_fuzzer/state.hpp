// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The cache fuzzer's shared state (see cache_fuzzer.cpp): options, counters, and the entry point
// into the compositions of one matcher, fuzz_with_matcher<M>, declared here and compiled in
// cache_fuzzer/<matcher>.cpp (fuzz_one.hpp), so that the three files build in parallel and
// cache_fuzzer.cpp compiles none of them.
#pragma once

#include <kvkit/catalogue.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "support/choice_source.hpp"
#include "support/policy_catalogue.hpp"

namespace kvkit::fuzz {

using kvkit::test::byte_choices;

inline constexpr std::uint32_t kBlockSizes[] = {1, 2, 4, 16};
inline constexpr std::uint32_t kMinBlocks = 4;
inline constexpr std::uint32_t kMaxBlocks = 64;
inline constexpr std::uint64_t kMaxOperations = 4096;  // per input

inline constexpr std::size_t kCombinations = kvkit::test::combination_count<>;

/// The fuzzer's own options (see the top of cache_fuzzer.cpp).
struct fuzz_options {
  std::uint64_t check_every = 1;
  long combination = -1;  // -1: the input chooses
  bool stats = false;
};

/// Operations run by this process, printed when it exits (cache_fuzzer.cpp).
struct operation_counter {
  std::uint64_t operations = 0;
  std::array<std::uint64_t, kCombinations> per_combination{};
  std::array<std::uint64_t, kCombinations> inputs{};
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  ~operation_counter();
};

extern fuzz_options settings;            ///< The options given (cache_fuzzer.cpp).
extern operation_counter counter;        ///< Operations run so far.
extern std::size_t current_combination;  ///< The composition of the input being run.

/// Prints a failed check (the drivers' report function).
void report(const char* file, int line, const std::string& message);

/// Runs the input in @p choices through composition @p combination, whose matcher is @p Matcher.
/// Instantiated in cache_fuzzer/<matcher>.cpp.
template <class Matcher>
void fuzz_with_matcher(std::size_t combination, byte_choices& choices);

}  // namespace kvkit::fuzz
