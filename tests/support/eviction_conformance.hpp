// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Conformance suite for `kvkit::eviction_policy` policies.
///
/// It checks only what every policy promises (victims are evictable blocks, each once; erase and
/// size behave); the order of victims is policy specific and tested beside each policy.
/// Instantiate with
/// `INSTANTIATE_TYPED_TEST_SUITE_P(my_name, eviction_conformance, ::testing::Types<my_policy>);`
#pragma once

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include <kvkit/concepts.hpp>
#include <kvkit/types.hpp>

namespace kvkit::test {

/// @brief Calls the optional `touch` member when the policy has one, as a cache would.
template <class E>
void touch_if_supported(E& e, block_id b, std::uint64_t tick) {
  if constexpr (requires(access_info a) { e.touch(b, a); }) {
    e.touch(b, access_info{tick, static_cast<std::uint32_t>(tick % 3)});
  }
  (void)e;
  (void)b;
  (void)tick;
}

template <class E>
class eviction_conformance : public ::testing::Test {};

TYPED_TEST_SUITE_P(eviction_conformance);

TYPED_TEST_P(eviction_conformance, SatisfiesConcept) {
  static_assert(kvkit::eviction_policy<TypeParam>);
}

TYPED_TEST_P(eviction_conformance, EmptyHasNoVictim) {
  TypeParam e(16);
  EXPECT_EQ(e.size(), 0u);
  EXPECT_EQ(e.victim(), invalid_block);
  EXPECT_EQ(e.size(), 0u);
}

TYPED_TEST_P(eviction_conformance, SizeTracksInsertEraseVictim) {
  TypeParam e(16);
  for (block_id b = 0; b < 10; ++b) {
    e.insert(b);
    EXPECT_EQ(e.size(), b + 1);
  }
  e.erase(4);
  EXPECT_EQ(e.size(), 9u);
  e.erase(0);
  EXPECT_EQ(e.size(), 8u);
  const block_id v = e.victim();
  EXPECT_NE(v, invalid_block);
  EXPECT_EQ(e.size(), 7u);
  e.insert(4);  // an erased block can come back
  EXPECT_EQ(e.size(), 8u);
}

TYPED_TEST_P(eviction_conformance, VictimsAreTheInsertedNotErasedBlocksEachOnce) {
  constexpr std::uint32_t capacity = 32;
  TypeParam e(capacity);
  std::set<block_id> expected;
  for (block_id b = 0; b < capacity; b += 2) {  // even blocks only; odd ones never inserted
    e.insert(b);
    touch_if_supported(e, b, b);
    expected.insert(b);
  }
  for (block_id b : {0u, 6u, 30u}) {
    e.erase(b);
    expected.erase(b);
  }
  std::set<block_id> victims;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const block_id v = e.victim();
    ASSERT_NE(v, invalid_block) << "ran out after " << i << " victims";
    EXPECT_TRUE(expected.count(v)) << "victim " << v << " was never inserted or was erased";
    EXPECT_TRUE(victims.insert(v).second) << "victim " << v << " returned twice";
  }
  EXPECT_EQ(victims, expected);
  EXPECT_EQ(e.size(), 0u);
  EXPECT_EQ(e.victim(), invalid_block);
}

TYPED_TEST_P(eviction_conformance, EraseRemovesEveryBlock) {
  TypeParam e(8);
  for (block_id b = 0; b < 8; ++b) e.insert(b);
  for (block_id b : {7u, 0u, 3u, 5u, 1u, 2u, 6u, 4u}) e.erase(b);
  EXPECT_EQ(e.size(), 0u);
  EXPECT_EQ(e.victim(), invalid_block);
  e.insert(3);
  EXPECT_EQ(e.victim(), 3u);
  EXPECT_EQ(e.victim(), invalid_block);
}

TYPED_TEST_P(eviction_conformance, RandomSequencesMatchASetModel) {
  constexpr std::uint32_t capacity = 50;
  TypeParam e(capacity);
  std::set<block_id> model;
  std::mt19937 rng(777);
  for (std::uint64_t step = 0; step < 30000; ++step) {
    const unsigned op = rng() % 10;
    if (op < 4) {  // insert a block that is not evictable
      if (model.size() == capacity) continue;
      block_id b;
      do {
        b = rng() % capacity;
      } while (model.count(b));
      e.insert(b);
      touch_if_supported(e, b, step);
      model.insert(b);
    } else if (op < 6) {  // erase an evictable block
      if (model.empty()) continue;
      auto it = model.begin();
      std::advance(it, rng() % model.size());
      e.erase(*it);
      model.erase(it);
    } else if (op < 8) {
      const block_id v = e.victim();
      if (model.empty()) {
        ASSERT_EQ(v, invalid_block) << "step " << step;
      } else {
        ASSERT_NE(v, invalid_block) << "step " << step;
        ASSERT_EQ(model.erase(v), 1u) << "step " << step << ": victim " << v
                                      << " is not evictable";
      }
    } else if (!model.empty()) {  // touch (for policies that care) an evictable block
      auto it = model.begin();
      std::advance(it, rng() % model.size());
      touch_if_supported(e, *it, step);
    }
    ASSERT_EQ(e.size(), model.size()) << "step " << step;
  }
}

REGISTER_TYPED_TEST_SUITE_P(eviction_conformance, SatisfiesConcept, EmptyHasNoVictim,
                            SizeTracksInsertEraseVictim,
                            VictimsAreTheInsertedNotErasedBlocksEachOnce, EraseRemovesEveryBlock,
                            RandomSequencesMatchASetModel);

}  // namespace kvkit::test
