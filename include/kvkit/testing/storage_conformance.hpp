// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Conformance suite for `kvkit::kv_storage` policies (part of the test kit, see
/// docs/testing.md; needs GoogleTest).
///
/// A storage type is made through `storage_conformance_traits<S>::make(layout)`; the default calls
/// `S::create(layout)` after setting `layout.type` to `dtype_of<S::element_type>` when the storage
/// names an element type. Specialize the traits for a storage that is made differently.
/// Storages with element access (`at()`) get their bytes and copies checked element by element;
/// bookkeeping-only storages must report 0 bytes.
/// Instantiate, inside `namespace kvkit::testing`, with
/// `INSTANTIATE_TYPED_TEST_SUITE_P(my_name, storage_conformance, ::testing::Types<my_storage>);`
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/error.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/types.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

namespace kvkit::testing {

template <class S>
struct storage_conformance_traits {
  static result<S> make(kv_layout layout) {
    if constexpr (requires { typename S::element_type; }) {
      layout.type = dtype_of<typename S::element_type>;
    }
    return S::create(layout);
  }
};

/// @brief Whether @p S gives access to its elements.
template <class S>
concept element_storage = requires(S& s) {
  s.at(0u, 0u, block_id{0}, 0u, 0u, 0u);
};

/// @brief A value that differs for every element coordinate, stored as @p T.
template <class T>
T tagged_value(std::uint32_t tag) {
  if constexpr (std::is_same_v<T, float>) {
    return static_cast<float>(tag);
  } else {
    return T{static_cast<std::uint16_t>(tag)};  // raw bits: exact and distinct below 2^16
  }
}

template <class T>
std::uint32_t raw(const T& v) {
  if constexpr (std::is_same_v<T, float>) {
    return static_cast<std::uint32_t>(v);
  } else {
    return v.bits;
  }
}

template <class S>
class storage_conformance : public ::testing::Test {
 protected:
  static kv_layout small_layout(kv_order order) {
    kv_layout l;
    l.num_layers = 3;
    l.num_kv_heads = 2;
    l.head_dim = 5;
    l.block_size = 4;
    l.num_blocks = 6;
    l.order = order;
    return l;
  }
  static S make(const kv_layout& l) {
    auto r = storage_conformance_traits<S>::make(l);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return std::move(r).value();
  }
};

TYPED_TEST_SUITE_P(storage_conformance);

TYPED_TEST_P(storage_conformance, SatisfiesConcept) {
  static_assert(kvkit::kv_storage<TypeParam>);
}

TYPED_TEST_P(storage_conformance, LayoutIsTheOneItWasMadeWith) {
  for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
    const kv_layout want = this->small_layout(order);
    const TypeParam s = this->make(want);
    const kv_layout& got = s.layout();
    EXPECT_EQ(got.block_size, want.block_size);
    EXPECT_EQ(got.num_blocks, want.num_blocks);
    if constexpr (element_storage<TypeParam>) {
      EXPECT_EQ(got.num_layers, want.num_layers);
      EXPECT_EQ(got.num_kv_heads, want.num_kv_heads);
      EXPECT_EQ(got.head_dim, want.head_dim);
      EXPECT_EQ(got.order, want.order);
    }
    EXPECT_TRUE(got.validate().ok());
  }
}

TYPED_TEST_P(storage_conformance, BytesAreTheLayoutsOrNone) {
  const kv_layout l = this->small_layout(kv_order::nhd);
  const TypeParam s = this->make(l);
  if constexpr (element_storage<TypeParam>) {
    EXPECT_EQ(s.bytes(), s.layout().total_bytes());
    EXPECT_EQ(s.bytes(), 2u * 3 * 6 * (4 * 2 * 5) * dtype_size(s.layout().type));
  } else {
    EXPECT_EQ(s.bytes(), 0u);
  }
}

TYPED_TEST_P(storage_conformance, CopyBlockCopiesEveryLayerKAndVAndNothingElse) {
  for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
    const kv_layout l = this->small_layout(order);
    TypeParam s = this->make(l);
    if constexpr (element_storage<TypeParam>) {
      using T = std::remove_reference_t<decltype(s.at(0, 0, 0, 0, 0, 0))>;
      // Tag every element with its coordinates.
      auto tag = [&](std::uint32_t layer, std::uint32_t kv, block_id b, std::uint32_t t,
                     std::uint32_t h, std::uint32_t d) {
        return 1 + static_cast<std::uint32_t>(l.offset(layer, kv, b, t, h, d));
      };
      auto for_each = [&](auto&& f) {
        for (std::uint32_t layer = 0; layer < l.num_layers; ++layer)
          for (std::uint32_t kv = 0; kv < 2; ++kv)
            for (block_id b = 0; b < l.num_blocks; ++b)
              for (std::uint32_t t = 0; t < l.block_size; ++t)
                for (std::uint32_t h = 0; h < l.num_kv_heads; ++h)
                  for (std::uint32_t d = 0; d < l.head_dim; ++d)
                    f(layer, kv, b, t, h, d);
      };
      for_each([&](auto... i) { s.at(i...) = tagged_value<T>(tag(i...)); });
      s.copy_block(1, 4);
      for_each([&](std::uint32_t layer, std::uint32_t kv, block_id b, std::uint32_t t,
                   std::uint32_t h, std::uint32_t d) {
        const std::uint32_t want = b == 4 ? tag(layer, kv, 1, t, h, d) : tag(layer, kv, b, t, h, d);
        ASSERT_EQ(raw(s.at(layer, kv, b, t, h, d)), want)
            << to_string(order) << " layer " << layer << " kv " << kv << " block " << b << " token "
            << t << " head " << h << " dim " << d;
      });
    } else {
      s.copy_block(1, 4);  // must be callable; there is nothing to observe
      EXPECT_EQ(s.bytes(), 0u);
    }
  }
}

TYPED_TEST_P(storage_conformance, MovePreservesLayoutAndContents) {
  const kv_layout l = this->small_layout(kv_order::hnd);
  TypeParam a = this->make(l);
  if constexpr (element_storage<TypeParam>) {
    using T = std::remove_reference_t<decltype(a.at(0, 0, 0, 0, 0, 0))>;
    a.at(2, 1, 5, 3, 1, 4) = tagged_value<T>(77);
  }
  TypeParam b = std::move(a);
  EXPECT_EQ(b.layout().num_blocks, l.num_blocks);
  EXPECT_EQ(b.layout().block_size, l.block_size);
  if constexpr (element_storage<TypeParam>) {
    EXPECT_EQ(raw(b.at(2, 1, 5, 3, 1, 4)), 77u);
    EXPECT_EQ(b.bytes(), l.total_elements() * dtype_size(b.layout().type));
  }
}

REGISTER_TYPED_TEST_SUITE_P(storage_conformance, SatisfiesConcept, LayoutIsTheOneItWasMadeWith,
                            BytesAreTheLayoutsOrNone, CopyBlockCopiesEveryLayerKAndVAndNothingElse,
                            MovePreservesLayoutAndContents);
// A project may include this header and instantiate only some of its suites.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(storage_conformance);

}  // namespace kvkit::testing
