// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
//
// Randomized differential test of prefix_cache<free_list_allocator, hash matcher, lru_eviction,
// host_storage<float>> against the naive model in tests/support/reference_cache.hpp.
//
// The workload and its checks live in tests/support/differential_driver.hpp (shared with the
// fuzzer, tests/fuzz/cache_fuzzer.cpp): after every operation the driver compares every result,
// error code, counter and gauge, the live sequences, the block tables, the set of cached prefixes
// and K/V content, and calls check_invariants(). The same workload runs with the keyed xxHash3
// matcher and with a hasher that makes nearly every lookup collide.
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "support/choice_source.hpp"
#include "support/differential_driver.hpp"

namespace kvkit {
// Readable error codes in failure messages.
inline void PrintTo(errc e, std::ostream* os) {
  *os << to_string(e);
}
}  // namespace kvkit

namespace {

using kvkit::token_id;
using kvkit::test::coverage;

// ---- a hasher that makes every lookup collide ---------------------------------------------------

/// Ignores the parent hash and the seed; maps every block to one of two values, so in the hash
/// matcher every block of every namespace and depth shares a probe run with every other.
class colliding_hasher {
 public:
  explicit colliding_hasher(std::uint64_t seed) noexcept : seed_(seed) {}
  [[nodiscard]] std::uint64_t root(std::uint64_t salt,
                                   std::span<const std::uint64_t> /*extra_keys*/) const noexcept {
    return salt & 1u;
  }
  [[nodiscard]] std::uint64_t chain(std::uint64_t /*parent*/,
                                    std::span<const token_id> tokens) const noexcept {
    return static_cast<std::uint64_t>(tokens.front() & 1) * 0x10u;
  }
  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

 private:
  std::uint64_t seed_;
};

using colliding_matcher = kvkit::basic_hash_matcher<colliding_hasher>;

template <class Matcher>
using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, Matcher, kvkit::lru_eviction,
                                    kvkit::host_storage<float>>;

// ---- configuration ------------------------------------------------------------------------------

constexpr std::uint32_t kPoolSizes[] = {4, 5, 6, 8, 12, 16, 24, 32, 48, 64};

/// Environment: KVKIT_DIFF_TRACE=1 prints every run and operation to stderr; KVKIT_DIFF_SEED=<n>
/// runs only seed n in every configuration (with --gtest_filter, one failing run replays alone);
/// KVKIT_DIFF_SEEDS=<n> sets the seeds per configuration.
std::optional<std::uint64_t> only_seed() {
  const char* s = std::getenv("KVKIT_DIFF_SEED");
  if (s == nullptr)
    return std::nullopt;
  return std::strtoull(s, nullptr, 10);
}

/// Reports the driver's failed checks as GoogleTest failures.
void add_gtest_failure(const char* file, int line, const std::string& message) {
  ADD_FAILURE_AT(file, line) << message;
}

// ---- the tests
// -----------------------------------------------------------------------------------

// Seeds per (matcher, block size). An unoptimized build (the Debug + sanitizer preset) runs
// about four times slower, so it runs fewer; KVKIT_DIFF_SEEDS=<n> asks for more (or fewer).
#if defined(__OPTIMIZE__)
constexpr int kDefaultSeedsPerConfig = 120;
#else
constexpr int kDefaultSeedsPerConfig = 40;
#endif

int seeds_per_config() {
  const char* s = std::getenv("KVKIT_DIFF_SEEDS");
  return s != nullptr ? std::atoi(s) : kDefaultSeedsPerConfig;
}

constexpr int kOpsPerSeed = 500;
constexpr std::uint64_t kFirstSeed = 1000;
constexpr std::uint64_t kCoverageFirstSeed = 900000;  // other seeds than the main runs

template <class Matcher>
coverage run_seeds(std::uint32_t block_size, std::uint64_t first_seed, int seeds, int ops,
                   const char* matcher_name) {
  coverage total;
  if (const auto only = only_seed()) {
    first_seed = *only;
    seeds = 1;
  }
  for (int i = 0; i < seeds; ++i) {
    const std::uint64_t seed = first_seed + static_cast<std::uint64_t>(i);
    std::mt19937_64 pick(seed * 0x9E3779B97F4A7C15ull);
    const std::uint32_t num_blocks = kPoolSizes[pick() % std::size(kPoolSizes)];
    SCOPED_TRACE(::testing::Message()
                 << "matcher=" << matcher_name << " seed=" << seed << " block_size=" << block_size
                 << " num_blocks=" << num_blocks << " ops=" << ops);
    if (kvkit::test::trace_enabled()) {
      std::fprintf(stderr, "run matcher=%s seed=%llu block_size=%u num_blocks=%u\n", matcher_name,
                   static_cast<unsigned long long>(seed), block_size, num_blocks);
    }
    kvkit::test::rng_choices choices(seed);
    kvkit::test::differential_run<cache_t<Matcher>, kvkit::test::rng_choices> run(
        choices, add_gtest_failure, seed, block_size, num_blocks);
    total += run.run(static_cast<std::uint64_t>(ops));
    if (::testing::Test::HasFailure())
      break;
  }
  return total;
}

class PrefixCacheDifferential : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(PrefixCacheDifferential, XxHashMatcherAgreesWithModel) {
  const coverage c = run_seeds<kvkit::hash_matcher>(GetParam(), kFirstSeed, seeds_per_config(),
                                                    kOpsPerSeed, "xxh3");
  RecordProperty("operations", std::to_string(c.operations));
}

TEST_P(PrefixCacheDifferential, CollidingHashMatcherAgreesWithModel) {
  const coverage c = run_seeds<colliding_matcher>(GetParam(), kFirstSeed, seeds_per_config(),
                                                  kOpsPerSeed, "colliding");
  RecordProperty("operations", std::to_string(c.operations));
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, PrefixCacheDifferential, ::testing::Values(1u, 2u, 4u, 16u),
                         [](const ::testing::TestParamInfo<std::uint32_t>& info) {
                           return "B" + std::to_string(info.param);
                         });

// The workload keeps exercising every feature in every configuration: a generator change that
// stopped producing hits, partial hits, deduplication, evictions or out-of-blocks would
// otherwise leave the differential tests passing while testing less.
TEST(PrefixCacheDifferentialCoverage, WorkloadExercisesEveryFeature) {
  if (only_seed()) {
    GTEST_SKIP() << "KVKIT_DIFF_SEED replays one seed; coverage needs the whole set";
  }
  constexpr int kSeeds = 12;
  for (std::uint32_t block_size : {1u, 2u, 4u, 16u}) {
    for (int matcher = 0; matcher < 2; ++matcher) {
      const coverage c = matcher == 0
                             ? run_seeds<kvkit::hash_matcher>(block_size, kCoverageFirstSeed,
                                                              kSeeds, kOpsPerSeed, "xxh3")
                             : run_seeds<colliding_matcher>(block_size, kCoverageFirstSeed, kSeeds,
                                                            kOpsPerSeed, "colliding");
      SCOPED_TRACE(::testing::Message() << "block_size=" << block_size << " matcher="
                                        << (matcher == 0 ? "xxh3" : "colliding") << ": " << c);
      EXPECT_GT(c.hits, 0u);
      EXPECT_GT(c.full_hits, 0u);
      EXPECT_GT(c.partial_hits, 0u);
      EXPECT_GT(c.short_queries, 0u);
      EXPECT_GT(c.registered, 0u);
      EXPECT_GT(c.deduplicated, 0u);
      EXPECT_GT(c.evictions, 0u);
      EXPECT_GT(c.out_of_blocks, 0u);
      EXPECT_GT(c.invalid_calls, 0u);
      EXPECT_GT(c.probe_hits, 0u);
      EXPECT_GT(c.appends, 0u);
      EXPECT_GT(c.finishes, 0u);
      EXPECT_GT(c.kv_blocks_checked, 0u);
      std::ostringstream os;
      os << c;
      RecordProperty(
          "coverage_B" + std::to_string(block_size) + (matcher == 0 ? "_xxh3" : "_colliding"),
          os.str());
    }
  }
}

}  // namespace
