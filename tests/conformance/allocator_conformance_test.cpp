// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The allocator conformance suite over every allocator policy, plus policy-specific order checks.

#include <kvkit/allocator/fifo_free.hpp>
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/allocator/lowest_index.hpp>
#include <kvkit/testing/allocator_conformance.hpp>

#include <gtest/gtest.h>

namespace kvkit::testing {
namespace {

using allocator_policies =
    ::testing::Types<free_list_allocator, lowest_index_allocator, fifo_free_allocator>;
INSTANTIATE_TYPED_TEST_SUITE_P(all, allocator_conformance, allocator_policies);

TEST(FreeListAllocator, HandsOutBlockZeroFirstThenAscending) {
  free_list_allocator a(4);
  EXPECT_EQ(a.capacity(), 4u);
  EXPECT_EQ(a.allocate(), 0u);
  EXPECT_EQ(a.allocate(), 1u);
  EXPECT_EQ(a.allocate(), 2u);
  EXPECT_EQ(a.allocate(), 3u);
  EXPECT_EQ(a.allocate(), invalid_block);
}

TEST(FreeListAllocator, MostRecentlyFreedComesFirst) {
  free_list_allocator a(4);
  for (int i = 0; i < 4; ++i)
    (void)a.allocate();
  a.deallocate(2);
  a.deallocate(0);
  a.deallocate(3);
  EXPECT_EQ(a.allocate(), 3u);
  EXPECT_EQ(a.allocate(), 0u);
  EXPECT_EQ(a.allocate(), 2u);
  EXPECT_EQ(a.allocate(), invalid_block);
}

TEST(FreeListAllocator, MetadataIsFourBytesPerBlock) {
  EXPECT_EQ(free_list_allocator(100).metadata_bytes(), 400u);
  EXPECT_EQ(policy_traits<free_list_allocator>::name(), "free_list");
}

}  // namespace
}  // namespace kvkit::testing
