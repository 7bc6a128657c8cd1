// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Miss reasons with the hash, radix and session matchers (the suite:
// support/miss_reasons_suite.hpp; the vLLM-hash matcher: tests/events/vllm_miss_reasons_test.cpp).

#include <kvkit/matcher/hash.hpp>
#include <kvkit/matcher/radix.hpp>
#include <kvkit/matcher/session.hpp>

#include <bit>
#include <map>
#include <random>

#include "support/miss_reasons_suite.hpp"

namespace kvkit::test {
namespace {
using matchers = ::testing::Types<hash_matcher, radix_matcher, session_matcher>;
INSTANTIATE_TYPED_TEST_SUITE_P(MissReasons, MissReasons, matchers);
}  // namespace
}  // namespace kvkit::test

namespace kvkit::test {
namespace {

// The record's two generations against a naive model of them (two sets of keys): every lookup
// agrees, on random keys with repeats, for record sizes 1 to 9.
TEST(RemovedBlockRecord, MatchesTwoGenerationsOfKeys) {
  for (std::uint32_t n = 1; n <= 9; ++n) {
    std::mt19937_64 rng(n);
    detail::removed_block_record record(n);
    std::map<std::uint64_t, std::uint64_t> newer, older;  // key -> tick
    for (std::uint64_t tick = 1; tick <= 3000; ++tick) {
      const std::uint64_t key = (rng() % 24) * 0x9E3779B97F4A7C15ull + 2;
      record.add(key, tick % 2 ? miss_reason::evicted : miss_reason::expired, tick);
      newer[key] = tick;
      if (newer.size() == (n + 1) / 2) {
        older = std::move(newer);
        newer.clear();
      }
      for (std::uint64_t q = 0; q < 24; ++q) {
        const std::uint64_t k = q * 0x9E3779B97F4A7C15ull + 2;
        const detail::removed_entry* e = record.find(k);
        const auto in_newer = newer.find(k);
        const auto in_older = older.find(k);
        const std::uint64_t want = in_newer != newer.end()   ? in_newer->second
                                   : in_older != older.end() ? in_older->second
                                                             : 0;
        ASSERT_EQ(e == nullptr ? 0 : e->when(), want) << "n " << n << " tick " << tick;
        if (e != nullptr) {
          ASSERT_EQ(e->reason(), want % 2 ? miss_reason::evicted : miss_reason::expired);
        }
      }
    }
    EXPECT_EQ(record.bytes(), 2 * std::bit_ceil(std::size_t{(n + 1) / 2} * 2) * 16);
  }
  EXPECT_EQ(detail::removed_block_record(0).bytes(), 0u);
  EXPECT_EQ(detail::removed_block_record(0).find(5), nullptr);
}

}  // namespace
}  // namespace kvkit::test
