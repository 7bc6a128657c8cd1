// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kv_layout validation and offsets, host_storage and no_storage.

#include <kvkit/layout.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "support/text.hpp"

namespace kvkit {
namespace {

kv_layout valid_layout() {
  kv_layout l;
  l.num_layers = 2;
  l.num_kv_heads = 3;
  l.head_dim = 5;
  l.block_size = 4;
  l.num_blocks = 3;
  l.type = dtype::bf16;
  return l;
}

// Expects validate() to fail with invalid_config and a message naming `field`, the accepted
// values and the value given.
void expect_invalid(const kv_layout& l, const std::string& field, const std::string& accepted,
                    const std::string& got) {
  const status s = l.validate();
  ASSERT_FALSE(s.ok()) << field;
  EXPECT_EQ(s.code(), errc::invalid_config);
  KVKIT_EXPECT_SUBSTR(s.message(), "kv_layout." + field + " must be ");
  KVKIT_EXPECT_SUBSTR(s.message(), accepted);
  KVKIT_EXPECT_SUBSTR(s.message(), "got " + got);
}

TEST(KvLayout, ValidLayoutPasses) {
  EXPECT_TRUE(valid_layout().validate().ok());
  kv_layout l = valid_layout();
  for (std::uint32_t bs : {1u, 2u, 16u, 256u, 1u << 31}) {
    l.block_size = bs;
    EXPECT_TRUE(l.validate().ok()) << bs;
  }
  l = valid_layout();
  l.type = dtype::fp32;
  l.order = kv_order::hnd;
  EXPECT_TRUE(l.validate().ok());
}

TEST(KvLayout, DefaultLayoutHasNoBlocks) {
  expect_invalid(kv_layout{}, "num_blocks", ">= 1", "0");
}

TEST(KvLayout, EveryFieldIsChecked) {
  kv_layout l = valid_layout();
  l.num_layers = 0;
  expect_invalid(l, "num_layers", ">= 1", "0");
  l = valid_layout();
  l.num_kv_heads = 0;
  expect_invalid(l, "num_kv_heads", ">= 1", "0");
  l = valid_layout();
  l.head_dim = 0;
  expect_invalid(l, "head_dim", ">= 1", "0");
  l = valid_layout();
  l.num_blocks = 0;
  expect_invalid(l, "num_blocks", ">= 1", "0");
  l = valid_layout();
  l.num_blocks = (1u << 31) + 1;
  expect_invalid(l, "num_blocks", "<= 2^31", "2147483649");
  l = valid_layout();
  l.num_blocks = std::numeric_limits<std::uint32_t>::max();
  expect_invalid(l, "num_blocks", "<= 2^31", "4294967295");
  l = valid_layout();
  l.type = static_cast<dtype>(7);
  expect_invalid(l, "type", "fp16, bf16 or fp32", "7");
  l = valid_layout();
  l.order = static_cast<kv_order>(5);
  expect_invalid(l, "order", "nhd or hnd", "5");
}

TEST(KvLayout, BlockSizeMustBeAPowerOfTwo) {
  kv_layout l = valid_layout();
  for (std::uint32_t bs : {0u, 3u, 6u, 12u, 24u, 100u, (1u << 31) + 1}) {
    l.block_size = bs;
    expect_invalid(l, "block_size", "a power of two", std::to_string(bs));
  }
}

TEST(KvLayout, NumBlocksBoundIsExactAndNamedInTheMessage) {
  kv_layout l = valid_layout();
  l.head_dim = 1;
  l.num_kv_heads = 1;
  l.block_size = 1;
  l.num_blocks = (1u << 31) - 1;
  EXPECT_TRUE(l.validate().ok()) << l.validate().message();
  l.num_blocks = 1u << 31;
  EXPECT_TRUE(l.validate().ok()) << l.validate().message();
  l.num_blocks = (1u << 31) + 1;
  const status s = l.validate();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), errc::invalid_config);
  KVKIT_EXPECT_SUBSTR(s.message(), "num_blocks");
  KVKIT_EXPECT_SUBSTR(s.message(), "<= 2^31");
  KVKIT_EXPECT_SUBSTR(s.message(), "2147483649");
}

TEST(KvLayout, ValidateRejectsALayoutWhoseSizeOverflows) {
  // Every field is in range, but 2 * 2^15 layers * 2^16 blocks * (1 * 2^16 * 2^16) elements is
  // 2^64: total_elements() wraps to 0. Such a layout cannot be allocated; accepting it makes
  // host_storage allocate nothing and index far out of bounds.
  kv_layout l;
  l.num_layers = 1u << 15;
  l.num_kv_heads = 1u << 16;
  l.head_dim = 1u << 16;
  l.block_size = 1;
  l.num_blocks = 1u << 16;
  l.type = dtype::fp32;
  ASSERT_EQ(l.total_elements(), 0u);  // the wrap this test is about
  const status s = l.validate();
  EXPECT_FALSE(s.ok()) << "a layout of 2^64 elements validated";
  EXPECT_EQ(s.code(), errc::invalid_config);
  const auto st = host_storage<float>::create(l);
  EXPECT_FALSE(st.ok()) << "host_storage of 2^64 elements was created";
}

TEST(KvLayout, Sizes) {
  const kv_layout l = valid_layout();  // 2 layers, 3 heads, dim 5, block 4, 3 blocks, bf16
  EXPECT_EQ(l.block_elements(), 4u * 3 * 5);
  EXPECT_EQ(l.block_bytes_all_layers(), 2u * 2 * 60 * 2);
  EXPECT_EQ(l.total_elements(), 2u * 2 * 3 * 60);
  EXPECT_EQ(l.total_bytes(), 2u * 2 * 3 * 60 * 2);
  kv_layout f = l;
  f.type = dtype::fp32;
  EXPECT_EQ(f.total_bytes(), 2u * 2 * 3 * 60 * 4);
  EXPECT_EQ(to_string(kv_order::nhd), "NHD");
  EXPECT_EQ(to_string(kv_order::hnd), "HND");
}

void check_offsets(kv_order order) {
  kv_layout l = valid_layout();
  l.order = order;
  const std::size_t L = l.num_layers, B = l.num_blocks, T = l.block_size, H = l.num_kv_heads,
                    D = l.head_dim;
  std::vector<int> hits(l.total_elements(), 0);
  for (std::size_t layer = 0; layer < L; ++layer)
    for (std::size_t kv = 0; kv < 2; ++kv)
      for (std::size_t b = 0; b < B; ++b)
        for (std::size_t t = 0; t < T; ++t)
          for (std::size_t h = 0; h < H; ++h)
            for (std::size_t d = 0; d < D; ++d) {
              const std::size_t pool = (layer * 2 + kv) * B + b;
              const std::size_t want = order == kv_order::nhd ? ((pool * T + t) * H + h) * D + d
                                                              : ((pool * H + h) * T + t) * D + d;
              const std::size_t got =
                  l.offset(static_cast<std::uint32_t>(layer), static_cast<std::uint32_t>(kv),
                           static_cast<block_id>(b), static_cast<std::uint32_t>(t),
                           static_cast<std::uint32_t>(h), static_cast<std::uint32_t>(d));
              ASSERT_EQ(got, want) << to_string(order);
              ASSERT_LT(got, l.total_elements());
              ++hits[got];
            }
  for (std::size_t i = 0; i < hits.size(); ++i) {
    ASSERT_EQ(hits[i], 1) << to_string(order) << " offset " << i;  // distinct and complete
  }
}

TEST(KvLayout, OffsetNhd) {
  check_offsets(kv_order::nhd);
}
TEST(KvLayout, OffsetHnd) {
  check_offsets(kv_order::hnd);
}

TEST(HostStorage, DtypeMismatchIsLayoutMismatch) {
  kv_layout l = valid_layout();  // bf16
  const auto f = host_storage<float>::create(l);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.code(), errc::layout_mismatch);
  KVKIT_EXPECT_SUBSTR(f.error().message(), "host_storage<fp32>");
  KVKIT_EXPECT_SUBSTR(f.error().message(), "kv_layout.type = fp32");
  KVKIT_EXPECT_SUBSTR(f.error().message(), "got bf16");
  const auto h = host_storage<fp16>::create(l);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.code(), errc::layout_mismatch);
  KVKIT_EXPECT_SUBSTR(h.error().message(), "got bf16");
  l.type = dtype::fp16;
  const auto b = host_storage<bf16>::create(l);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.code(), errc::layout_mismatch);
  KVKIT_EXPECT_SUBSTR(b.error().message(), "got fp16");
}

TEST(HostStorage, InvalidLayoutIsInvalidConfig) {
  kv_layout l = valid_layout();
  l.block_size = 12;
  const auto s = host_storage<bf16>::create(l);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), errc::invalid_config);
  KVKIT_EXPECT_SUBSTR(s.error().message(), "block_size");
  KVKIT_EXPECT_SUBSTR(s.error().message(), "got 12");
}

TEST(HostStorage, ZeroFilledAndAddressedByLayout) {
  kv_layout l = valid_layout();
  l.type = dtype::fp32;
  l.order = kv_order::hnd;
  auto r = host_storage<float>::create(l);
  ASSERT_TRUE(r.ok()) << r.status().message();
  host_storage<float>& s = *r;
  EXPECT_EQ(s.bytes(), l.total_bytes());
  ASSERT_EQ(s.data().size(), l.total_elements());
  for (float v : s.data())
    ASSERT_EQ(v, 0.0f);
  const auto blk = s.block(1, 1, 2);
  EXPECT_EQ(blk.size(), l.block_elements());
  EXPECT_EQ(blk.data(), s.data().data() + l.offset(1, 1, 2, 0, 0, 0));
  s.at(1, 0, 2, 3, 2, 4) = 6.5f;
  EXPECT_EQ(s.data()[l.offset(1, 0, 2, 3, 2, 4)], 6.5f);
  const host_storage<float>& cs = s;
  EXPECT_EQ(cs.block(1, 0, 2)[(2 * 4 + 3) * 5 + 4], 6.5f);  // HND: [head][token][dim]
}

template <class T>
void check_copy_block(kv_order order) {
  kv_layout l = valid_layout();
  l.type = dtype_of<T>;
  l.order = order;
  auto r = host_storage<T>::create(l);
  ASSERT_TRUE(r.ok()) << r.status().message();
  host_storage<T>& s = *r;
  const auto data = s.data();
  const auto tag = [](std::size_t i) {
    if constexpr (std::is_same_v<T, float>) {
      return static_cast<float>(i + 1);
    } else {
      return T{static_cast<std::uint16_t>(i + 1)};
    }
  };
  const auto raw = [](const T& v) {
    if constexpr (std::is_same_v<T, float>) {
      return static_cast<std::size_t>(v);
    } else {
      return static_cast<std::size_t>(v.bits);
    }
  };
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = tag(i);
  s.copy_block(2, 0);
  std::size_t changed = 0;
  for (std::uint32_t layer = 0; layer < l.num_layers; ++layer)
    for (std::uint32_t kv = 0; kv < 2; ++kv)
      for (block_id b = 0; b < l.num_blocks; ++b)
        for (std::uint32_t t = 0; t < l.block_size; ++t)
          for (std::uint32_t h = 0; h < l.num_kv_heads; ++h)
            for (std::uint32_t d = 0; d < l.head_dim; ++d) {
              const std::size_t at = l.offset(layer, kv, b, t, h, d);
              const std::size_t from = b == 0 ? l.offset(layer, kv, 2, t, h, d) : at;
              ASSERT_EQ(raw(data[at]), from + 1)
                  << to_string(order) << " layer " << layer << " kv " << kv << " block " << b;
              changed += at != from ? 1 : 0;
            }
  EXPECT_EQ(changed, 2u * l.num_layers * l.block_elements());  // all of block 0, K and V
}

TEST(HostStorage, CopyBlockCopiesAllLayersKAndVAndNothingElse) {
  check_copy_block<float>(kv_order::nhd);
  check_copy_block<float>(kv_order::hnd);
  check_copy_block<bf16>(kv_order::nhd);
  check_copy_block<fp16>(kv_order::hnd);
}

TEST(NoStorage, HoldsOnlyTheLayout) {
  auto r = no_storage::create(8, 5);
  ASSERT_TRUE(r.ok()) << r.status().message();
  no_storage s = std::move(r).value();
  EXPECT_EQ(s.layout().block_size, 8u);
  EXPECT_EQ(s.layout().num_blocks, 5u);
  EXPECT_EQ(s.bytes(), 0u);
  s.copy_block(0, 4);
  EXPECT_EQ(s.bytes(), 0u);

  kv_layout l = valid_layout();
  l.order = kv_order::hnd;
  auto full = no_storage::create(l);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->layout().num_kv_heads, 3u);
  EXPECT_EQ(full->layout().order, kv_order::hnd);
  EXPECT_EQ(full->bytes(), 0u);
}

TEST(NoStorage, RejectsInvalidShapes) {
  const auto a = no_storage::create(12, 5);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.code(), errc::invalid_config);
  KVKIT_EXPECT_SUBSTR(a.error().message(), "block_size");
  KVKIT_EXPECT_SUBSTR(a.error().message(), "power of two");
  const auto b = no_storage::create(16, 0);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.code(), errc::invalid_config);
  KVKIT_EXPECT_SUBSTR(b.error().message(), "num_blocks");
}

}  // namespace
}  // namespace kvkit
