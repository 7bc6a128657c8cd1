// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Conformance suite for `kvkit::block_allocator` policies (part of the test kit, see
/// docs/testing.md; needs GoogleTest).
///
/// Instantiate it for a new allocator, inside `namespace kvkit::testing`, with
/// `INSTANTIATE_TYPED_TEST_SUITE_P(my_name, allocator_conformance, ::testing::Types<my_alloc>);`
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/types.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace kvkit::testing {

template <class A>
class allocator_conformance : public ::testing::Test {};

TYPED_TEST_SUITE_P(allocator_conformance);

TYPED_TEST_P(allocator_conformance, SatisfiesConcept) {
  static_assert(kvkit::block_allocator<TypeParam>);
}

TYPED_TEST_P(allocator_conformance, HandsOutEveryIdExactlyOnceThenInvalid) {
  for (std::uint32_t capacity : {1u, 2u, 7u, 64u}) {
    TypeParam a(capacity);
    EXPECT_EQ(a.free_count(), capacity);
    std::vector<bool> seen(capacity, false);
    for (std::uint32_t i = 0; i < capacity; ++i) {
      const block_id b = a.allocate();
      ASSERT_LT(b, capacity) << "capacity " << capacity << ", allocation " << i;
      EXPECT_FALSE(seen[b]) << "block " << b << " handed out twice";
      seen[b] = true;
      EXPECT_EQ(a.free_count(), capacity - i - 1);
    }
    EXPECT_EQ(a.allocate(), invalid_block);
    EXPECT_EQ(a.allocate(), invalid_block);
    EXPECT_EQ(a.free_count(), 0u);
  }
}

TYPED_TEST_P(allocator_conformance, DeallocateThenAllocateReuses) {
  constexpr std::uint32_t capacity = 8;
  TypeParam a(capacity);
  std::vector<block_id> held;
  for (std::uint32_t i = 0; i < capacity; ++i)
    held.push_back(a.allocate());
  ASSERT_EQ(a.allocate(), invalid_block);
  // With the pool exhausted, the only block a policy can hand out is the one just returned.
  for (block_id b : {held[3], held[0], held[7]}) {
    a.deallocate(b);
    EXPECT_EQ(a.free_count(), 1u);
    EXPECT_EQ(a.allocate(), b);
    EXPECT_EQ(a.free_count(), 0u);
    EXPECT_EQ(a.allocate(), invalid_block);
  }
  // Return everything: all blocks come back, each once.
  for (block_id b : held)
    a.deallocate(b);
  EXPECT_EQ(a.free_count(), capacity);
  std::set<block_id> again;
  for (std::uint32_t i = 0; i < capacity; ++i)
    again.insert(a.allocate());
  EXPECT_EQ(again, std::set<block_id>(held.begin(), held.end()));
  EXPECT_EQ(a.allocate(), invalid_block);
}

TYPED_TEST_P(allocator_conformance, RandomSequencesNeverHandOutAHeldId) {
  constexpr std::uint32_t capacity = 37;
  TypeParam a(capacity);
  std::mt19937 rng(12345);
  std::vector<block_id> held;
  std::vector<bool> is_held(capacity, false);
  for (int step = 0; step < 20000; ++step) {
    const bool alloc = held.empty() || (held.size() < capacity && rng() % 100 < 55);
    if (alloc) {
      const block_id b = a.allocate();
      ASSERT_LT(b, capacity) << "step " << step << ": no block although " << capacity - held.size()
                             << " are free";
      ASSERT_FALSE(is_held[b]) << "step " << step << ": block " << b << " is already held";
      is_held[b] = true;
      held.push_back(b);
    } else {
      const std::size_t i = rng() % held.size();
      const block_id b = held[i];
      held[i] = held.back();
      held.pop_back();
      is_held[b] = false;
      a.deallocate(b);
    }
    ASSERT_EQ(a.free_count(), capacity - held.size()) << "step " << step;
    if (held.size() == capacity) {
      ASSERT_EQ(a.allocate(), invalid_block) << "step " << step;
    }
  }
}

REGISTER_TYPED_TEST_SUITE_P(allocator_conformance, SatisfiesConcept,
                            HandsOutEveryIdExactlyOnceThenInvalid, DeallocateThenAllocateReuses,
                            RandomSequencesNeverHandOutAHeldId);
// A project may include this header and instantiate only some of its suites.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(allocator_conformance);

}  // namespace kvkit::testing
