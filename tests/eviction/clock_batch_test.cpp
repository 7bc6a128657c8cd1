// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The time-based policies read their clock once per cache operation (begin_batch/end_batch),
// not once per block touched, and keep their semantics: a policy used on its own reads the clock
// on every call, and batches nest.

#include <kvkit/eviction/priority.hpp>
#include <kvkit/eviction/ttl.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "support/eviction_testing.hpp"

namespace kvkit::test {
namespace {

// A clock that counts its reads and moves only when told.
struct counting_clock {
  std::shared_ptr<std::int64_t> now = std::make_shared<std::int64_t>(1'000'000'000);
  std::shared_ptr<std::uint64_t> reads = std::make_shared<std::uint64_t>(0);
  std::function<std::chrono::nanoseconds()> fn() const {
    return [n = now, r = reads] {
      ++*r;
      return std::chrono::nanoseconds(*n);
    };
  }
};

std::vector<token_id> prompt_of(std::size_t n) {
  std::vector<token_id> p(n);
  for (std::size_t i = 0; i < n; ++i)
    p[i] = static_cast<token_id>(i * 7 + 1);
  return p;
}

template <class E>
void expect_one_read_per_operation(const policy_options_t<E>& options, const counting_clock& c) {
  auto cache = make_cache_with<E>(256, 16, options);
  const auto prompt = prompt_of(64 * 16 + 1);  // 64 full blocks
  auto a = cache.admit(prompt);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(cache.commit(a->id).ok());
  ASSERT_TRUE(cache.finish(a->id).ok());
  // A hit on 64 cached blocks: each is verified (expired?), touched and referenced.
  const std::uint64_t before = *c.reads;
  auto b = cache.admit(prompt);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->request.cached_tokens, 64u * 16);
  EXPECT_EQ(*c.reads - before, 1u) << "admit of a 64-block hit";
  const std::uint64_t mid = *c.reads;
  ASSERT_TRUE(cache.finish(b->id).ok());  // 65 blocks become candidates
  EXPECT_EQ(*c.reads - mid, 1u) << "finish releasing 65 blocks";
  const std::uint64_t m2 = *c.reads;
  EXPECT_EQ(cache.match(prompt), 64u * 16);
  EXPECT_EQ(*c.reads - m2, 1u) << "match over 64 blocks";
  EXPECT_TRUE(cache.check_invariants().ok());
}

TEST(ClockBatch, TtlReadsItsClockOncePerCacheOperation) {
  counting_clock c;
  ttl_options o;
  o.ttl = std::chrono::seconds(10);
  o.now = c.fn();
  expect_one_read_per_operation<ttl_eviction>(o, c);
}

TEST(ClockBatch, PriorityReadsItsClockOncePerCacheOperation) {
  counting_clock c;
  priority_options o;
  o.classes = {{.priority = 2, .retention = std::chrono::seconds(5)}};
  o.now = c.fn();
  expect_one_read_per_operation<priority_eviction>(o, c);
}

TEST(ClockBatch, OnItsOwnAPolicyReadsTheClockOnEveryCallAndBatchesNest) {
  counting_clock c;
  ttl_options o;
  o.ttl = std::chrono::seconds(10);
  o.now = c.fn();
  ttl_eviction e(8, o);
  e.insert(1);
  *c.now += 11'000'000'000;  // 11 s later: expired, seen at once outside a batch
  EXPECT_TRUE(e.expired(1));
  e.begin_batch();
  e.begin_batch();  // nested: keeps the outer batch's time
  *c.now += 1;
  e.end_batch();
  const std::uint64_t reads = *c.reads;
  e.insert(2);  // still in the outer batch: no read, time of the batch start
  EXPECT_EQ(*c.reads, reads);
  e.end_batch();
  // Block 2 was inserted at the batch's start time T (the clock then read T + 1).
  *c.now += 10'000'000'000 - 1;  // now T + ttl: exactly the ttl, not past it
  EXPECT_FALSE(e.expired(2));
  *c.now += 1;  // T + ttl + 1: past it (had insert read the clock, it would not be yet)
  EXPECT_TRUE(e.expired(2));
}

TEST(ClockBatch, ExpiredBlocksStillNeverHitInsideAnOperation) {
  counting_clock c;
  ttl_options o;
  o.ttl = std::chrono::seconds(10);
  o.now = c.fn();
  auto cache = make_cache_with<ttl_eviction>(64, 16, o);
  const auto prompt = prompt_of(4 * 16 + 1);
  auto a = cache.admit(prompt);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(cache.commit(a->id).ok());
  ASSERT_TRUE(cache.finish(a->id).ok());
  *c.now += 11'000'000'000;
  auto b = cache.admit(prompt);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->request.cached_tokens, 0u);
  ASSERT_TRUE(cache.finish(b->id).ok());
  EXPECT_TRUE(cache.check_invariants().ok());
}

}  // namespace
}  // namespace kvkit::test
