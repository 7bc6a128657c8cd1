// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Conformance suite for `kvkit::eviction_policy` policies (part of the test kit, see
/// docs/testing.md; needs GoogleTest).
///
/// It checks only what every policy promises (victims are evictable blocks, each once; erase and
/// size behave); the order of victims is policy specific and tested beside each policy.
/// The optional members (touch, forget, expiry) are called through `kvkit::policy_traits`, as the
/// cache calls them. Instantiate, inside `namespace kvkit::testing`, with
/// `INSTANTIATE_TYPED_TEST_SUITE_P(my_name, eviction_conformance, ::testing::Types<my_policy>);`
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/types.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace kvkit::testing {

/// @brief Calls the optional `touch` member as a cache would (nothing when there is none).
template <class E>
void touch_if_supported(E& e, block_id b, std::uint64_t tick) {
  policy_traits<E>::touch(e, b, access_info{tick, static_cast<std::uint32_t>(tick % 3)});
}

/// @brief Calls the optional `forget` member as a cache would after it frees a block.
template <class E>
void forget_if_supported(E& e, block_id b) {
  policy_traits<E>::forget(e, b);
}

/// @brief Calls the optional `pop_expired` member.
/// @return Its result, or `invalid_block` for a policy without expiry.
template <class E>
block_id pop_expired_if_supported(E& e) {
  return policy_traits<E>::pop_expired(e);
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
  for (block_id b = 0; b < 8; ++b)
    e.insert(b);
  for (block_id b : {7u, 0u, 3u, 5u, 1u, 2u, 6u, 4u})
    e.erase(b);
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
      if (model.size() == capacity)
        continue;
      block_id b;
      do {
        b = rng() % capacity;
      } while (model.count(b));
      e.insert(b);
      touch_if_supported(e, b, step);
      model.insert(b);
    } else if (op < 6) {  // erase an evictable block
      if (model.empty())
        continue;
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
        ASSERT_EQ(model.erase(v), 1u) << "step " << step << ": victim " << v << " is not evictable";
      }
    } else if (!model.empty()) {  // touch (for policies that care) an evictable block
      auto it = model.begin();
      std::advance(it, rng() % model.size());
      touch_if_supported(e, *it, step);
    }
    ASSERT_EQ(e.size(), model.size()) << "step " << step;
  }
}

// The order a cache uses: a block is touched when it is registered (before it is ever a
// candidate), touched again on each hit (after it stopped being a candidate), and forgotten after
// it is freed, before its id is reused.
TYPED_TEST_P(eviction_conformance, TouchBeforeInsertAndForgetAfterVictim) {
  constexpr std::uint32_t capacity = 16;
  TypeParam e(capacity);
  std::uint64_t tick = 0;
  for (block_id b = 0; b < capacity; ++b) {
    touch_if_supported(e, b, ++tick);
    e.insert(b);
  }
  for (block_id b : {3u, 9u}) {  // hits: out, touched, back in
    e.erase(b);
    touch_if_supported(e, b, ++tick);
    e.insert(b);
  }
  std::set<block_id> victims;
  for (std::uint32_t i = 0; i < capacity / 2; ++i) {
    const block_id v = e.victim();
    ASSERT_LT(v, capacity);
    EXPECT_TRUE(victims.insert(v).second) << "victim " << v << " returned twice";
    forget_if_supported(e, v);
  }
  EXPECT_EQ(e.size(), capacity / 2);
  for (block_id v : victims) {  // the ids come back with new content
    touch_if_supported(e, v, ++tick);
    e.insert(v);
  }
  EXPECT_EQ(e.size(), capacity);
  std::set<block_id> all;
  for (block_id v = e.victim(); v != invalid_block; v = e.victim()) {
    EXPECT_TRUE(all.insert(v).second) << "victim " << v << " returned twice";
    forget_if_supported(e, v);
  }
  EXPECT_EQ(all.size(), capacity);
  EXPECT_EQ(e.size(), 0u);
}

// Random sequences of what a cache does (register, hit, release, evict, expire, forget) against a
// model of which blocks are candidates.
TYPED_TEST_P(eviction_conformance, RandomCacheLikeSequencesMatchASetModel) {
  constexpr std::uint32_t capacity = 64;
  TypeParam e(capacity);
  enum class st : std::uint8_t { free, held, candidate };
  std::vector<st> state(capacity, st::free);
  std::uint32_t candidates = 0;
  std::mt19937 rng(4242);
  for (std::uint64_t step = 0; step < 40000; ++step) {
    const block_id b = rng() % capacity;
    switch (rng() % 5) {
      case 0:  // register a free block (touch while referenced)
        if (state[b] == st::free) {
          touch_if_supported(e, b, step);
          state[b] = st::held;
        }
        break;
      case 1:  // release a held block: it becomes a candidate
        if (state[b] == st::held) {
          e.insert(b);
          state[b] = st::candidate;
          ++candidates;
        }
        break;
      case 2:  // hit a candidate: it is taken out and touched
        if (state[b] == st::candidate) {
          e.erase(b);
          touch_if_supported(e, b, step);
          state[b] = st::held;
          --candidates;
        } else if (state[b] == st::held) {
          touch_if_supported(e, b, step);
        }
        break;
      default: {  // evict (or expire) one block and forget it
        const block_id expired = pop_expired_if_supported(e);
        const block_id v = expired != invalid_block ? expired : e.victim();
        if (candidates == 0) {
          ASSERT_EQ(v, invalid_block) << "step " << step;
          break;
        }
        ASSERT_LT(v, capacity) << "step " << step;
        ASSERT_EQ(state[v], st::candidate) << "step " << step << ": victim " << v;
        state[v] = st::free;
        --candidates;
        forget_if_supported(e, v);
        break;
      }
    }
    ASSERT_EQ(e.size(), candidates) << "step " << step;
  }
}

REGISTER_TYPED_TEST_SUITE_P(eviction_conformance, SatisfiesConcept, EmptyHasNoVictim,
                            SizeTracksInsertEraseVictim,
                            VictimsAreTheInsertedNotErasedBlocksEachOnce, EraseRemovesEveryBlock,
                            RandomSequencesMatchASetModel, TouchBeforeInsertAndForgetAfterVictim,
                            RandomCacheLikeSequencesMatchASetModel);
// A project may include this header and instantiate only some of its suites.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(eviction_conformance);

}  // namespace kvkit::testing
