// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Element types: bf16 / fp16 conversions (round to nearest even, subnormals, inf, NaN), dtype
// helpers.

#include <kvkit/types.hpp>

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace kvkit {
namespace {

float from_bits(std::uint32_t u) {
  return std::bit_cast<float>(u);
}
std::uint32_t bits_of(float f) {
  return std::bit_cast<std::uint32_t>(f);
}

bool is_fp16_nan(std::uint16_t h) {
  return (h & 0x7C00u) == 0x7C00u && (h & 0x03FFu) != 0;
}
bool is_bf16_nan(std::uint16_t h) {
  return (h & 0x7F80u) == 0x7F80u && (h & 0x007Fu) != 0;
}

// Value of an fp16 bit pattern computed independently of the library (finite patterns only).
double fp16_reference(std::uint16_t h) {
  const int sign = (h >> 15) != 0 ? -1 : 1;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  const double mag = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
  return sign * mag;
}

// ---- dtype helpers ---------------------------------------------------------------------------

TEST(Dtype, SizeAndName) {
  static_assert(dtype_size(dtype::fp16) == 2);
  static_assert(dtype_size(dtype::bf16) == 2);
  static_assert(dtype_size(dtype::fp32) == 4);
  EXPECT_EQ(to_string(dtype::fp16), "fp16");
  EXPECT_EQ(to_string(dtype::bf16), "bf16");
  EXPECT_EQ(to_string(dtype::fp32), "fp32");
  EXPECT_EQ(to_string(static_cast<dtype>(9)), "unknown");
  static_assert(dtype_of<fp16> == dtype::fp16);
  static_assert(dtype_of<bf16> == dtype::bf16);
  static_assert(dtype_of<float> == dtype::fp32);
  static_assert(sizeof(fp16) == 2 && sizeof(bf16) == 2);
  EXPECT_EQ(to_float(2.5f), 2.5f);
}

// ---- bf16 ------------------------------------------------------------------------------------

TEST(Bf16, ExactValues) {
  EXPECT_EQ(to_bf16(0.0f).bits, 0x0000u);
  EXPECT_EQ(to_bf16(-0.0f).bits, 0x8000u);
  EXPECT_EQ(to_bf16(1.0f).bits, 0x3F80u);
  EXPECT_EQ(to_bf16(-1.5f).bits, 0xBFC0u);
  EXPECT_EQ(to_bf16(2.0f).bits, 0x4000u);
  EXPECT_EQ(to_float(bf16{0x3F80}), 1.0f);
  EXPECT_EQ(to_float(bf16{0xC040}), -3.0f);
  EXPECT_EQ(bits_of(to_float(bf16{0x8000})), 0x80000000u);
}

TEST(Bf16, RoundsToNearestEven) {
  // 1 + 2^-8 lies halfway between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81): even wins.
  EXPECT_EQ(to_bf16(from_bits(0x3F808000)).bits, 0x3F80u);
  // 1 + 3 * 2^-8: halfway between 0x3F81 (odd) and 0x3F82 (even).
  EXPECT_EQ(to_bf16(from_bits(0x3F818000)).bits, 0x3F82u);
  // Just above / below halfway.
  EXPECT_EQ(to_bf16(from_bits(0x3F808001)).bits, 0x3F81u);
  EXPECT_EQ(to_bf16(from_bits(0x3F807FFF)).bits, 0x3F80u);
  // Negative numbers round on magnitude.
  EXPECT_EQ(to_bf16(from_bits(0xBF818000)).bits, 0xBF82u);
  EXPECT_EQ(to_bf16(from_bits(0xBF808000)).bits, 0xBF80u);
  // Carry into the exponent: halfway between 0x3FFF (odd) and 0x4000 = 2.0.
  EXPECT_EQ(to_bf16(from_bits(0x3FFF8000)).bits, 0x4000u);
}

TEST(Bf16, SubnormalsInfAndNan) {
  EXPECT_EQ(to_bf16(from_bits(0x00010000)).bits, 0x0001u);  // smallest subnormal, exact
  EXPECT_EQ(to_bf16(from_bits(0x00008000)).bits, 0x0000u);  // halfway to it: even (zero)
  EXPECT_EQ(to_bf16(from_bits(0x00018000)).bits, 0x0002u);  // halfway 1..2: even (2)
  EXPECT_EQ(to_bf16(from_bits(0x00008001)).bits, 0x0001u);
  EXPECT_EQ(to_bf16(from_bits(0x80010000)).bits, 0x8001u);
  EXPECT_EQ(bits_of(to_float(bf16{0x0001})), 0x00010000u);
  EXPECT_EQ(bits_of(to_float(bf16{0x807F})), 0x807F0000u);

  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(to_bf16(inf).bits, 0x7F80u);
  EXPECT_EQ(to_bf16(-inf).bits, 0xFF80u);
  EXPECT_EQ(to_float(bf16{0x7F80}), inf);
  EXPECT_EQ(to_float(bf16{0xFF80}), -inf);
  // Largest finite float is above the halfway point to bf16 infinity.
  EXPECT_EQ(to_bf16(std::numeric_limits<float>::max()).bits, 0x7F80u);
  EXPECT_EQ(to_bf16(-std::numeric_limits<float>::max()).bits, 0xFF80u);
  // Largest finite bf16 and just below its halfway point.
  EXPECT_EQ(to_bf16(from_bits(0x7F7F0000)).bits, 0x7F7Fu);
  EXPECT_EQ(to_bf16(from_bits(0x7F7F7FFF)).bits, 0x7F7Fu);

  // NaN stays NaN, even when its payload sits only in the low 16 bits (truncation would give inf).
  for (std::uint32_t nan : {0x7FC00000u, 0x7F800001u, 0x7F80FFFFu, 0x7FFFFFFFu}) {
    const bf16 h = to_bf16(from_bits(nan));
    EXPECT_TRUE(is_bf16_nan(h.bits)) << std::hex << nan << " -> " << h.bits;
    EXPECT_EQ(h.bits & 0x8000u, 0u);
    const bf16 n = to_bf16(from_bits(nan | 0x80000000u));
    EXPECT_TRUE(is_bf16_nan(n.bits)) << std::hex << nan << " -> " << n.bits;
    EXPECT_EQ(n.bits & 0x8000u, 0x8000u);
  }
  EXPECT_TRUE(std::isnan(to_float(bf16{0x7FC0})));
  EXPECT_TRUE(std::isnan(to_float(bf16{0xFF81})));
}

TEST(Bf16, EveryNonNanPatternRoundTrips) {
  for (std::uint32_t i = 0; i < 0x10000; ++i) {
    const auto bits = static_cast<std::uint16_t>(i);
    if (is_bf16_nan(bits))
      continue;
    const float f = to_float(bf16{bits});
    ASSERT_EQ(bits_of(f), i << 16);  // bf16 is the top half of a float
    ASSERT_EQ(to_bf16(f).bits, bits) << std::hex << i;
  }
}

TEST(Bf16, EveryHalfwayPointRoundsToEven) {
  // For every pair of adjacent non-negative bf16 values (up to the max -> inf pair), the float
  // halfway between them goes to the one with an even mantissa; one float ulp either side goes
  // to the nearer one.
  for (std::uint32_t lo = 0; lo < 0x7F80; ++lo) {
    const std::uint32_t hi = lo + 1;
    const std::uint32_t mid = (lo << 16) | 0x8000u;  // exactly halfway, a float
    const std::uint32_t even = (lo & 1u) == 0 ? lo : hi;
    ASSERT_EQ(to_bf16(from_bits(mid)).bits, even) << std::hex << lo;
    ASSERT_EQ(to_bf16(from_bits(mid - 1)).bits, lo) << std::hex << lo;
    ASSERT_EQ(to_bf16(from_bits(mid + 1)).bits, hi) << std::hex << lo;
    ASSERT_EQ(to_bf16(-from_bits(mid)).bits, even | 0x8000u) << std::hex << lo;
  }
}

// ---- fp16 ------------------------------------------------------------------------------------

TEST(Fp16, ExactValues) {
  EXPECT_EQ(to_fp16(0.0f).bits, 0x0000u);
  EXPECT_EQ(to_fp16(-0.0f).bits, 0x8000u);
  EXPECT_EQ(to_fp16(1.0f).bits, 0x3C00u);
  EXPECT_EQ(to_fp16(-2.0f).bits, 0xC000u);
  EXPECT_EQ(to_fp16(0.5f).bits, 0x3800u);
  EXPECT_EQ(to_fp16(65504.0f).bits, 0x7BFFu);               // largest finite
  EXPECT_EQ(to_fp16(std::ldexp(1.0f, -14)).bits, 0x0400u);  // smallest normal
  EXPECT_EQ(to_float(fp16{0x3555}), 0.333251953125f);
  EXPECT_EQ(bits_of(to_float(fp16{0x8000})), 0x80000000u);
}

TEST(Fp16, RoundsToNearestEven) {
  const float ulp = std::ldexp(1.0f, -10);               // spacing of fp16 in [1, 2)
  EXPECT_EQ(to_fp16(1.0f + ulp / 2).bits, 0x3C00u);      // tie: 0x3C00 even
  EXPECT_EQ(to_fp16(1.0f + 3 * ulp / 2).bits, 0x3C02u);  // tie: 0x3C02 even
  EXPECT_EQ(to_fp16(1.0f + ulp / 2 + std::ldexp(1.0f, -23)).bits, 0x3C01u);
  EXPECT_EQ(to_fp16(1.0f + ulp / 2 - std::ldexp(1.0f, -23)).bits, 0x3C00u);
  EXPECT_EQ(to_fp16(-(1.0f + 3 * ulp / 2)).bits, 0xBC02u);
  // Carry into the exponent: 2047.5 is halfway between 2047 (0x67FF, odd) and 2048 (0x6800).
  EXPECT_EQ(to_fp16(2047.5f).bits, 0x6800u);
  EXPECT_EQ(to_fp16(2046.5f).bits, 0x67FEu);
}

TEST(Fp16, OverflowInfAndNan) {
  const float inf = std::numeric_limits<float>::infinity();
  // 65520 is halfway between 65504 (0x7BFF, odd) and 65536 (would be 0x7C00): rounds to inf.
  EXPECT_EQ(to_fp16(65519.996f).bits, 0x7BFFu);
  EXPECT_EQ(to_fp16(65520.0f).bits, 0x7C00u);
  EXPECT_EQ(to_fp16(-65520.0f).bits, 0xFC00u);
  EXPECT_EQ(to_fp16(1e10f).bits, 0x7C00u);
  EXPECT_EQ(to_fp16(std::numeric_limits<float>::max()).bits, 0x7C00u);
  EXPECT_EQ(to_fp16(inf).bits, 0x7C00u);
  EXPECT_EQ(to_fp16(-inf).bits, 0xFC00u);
  EXPECT_EQ(to_float(fp16{0x7C00}), inf);
  EXPECT_EQ(to_float(fp16{0xFC00}), -inf);
  for (std::uint32_t nan : {0x7FC00000u, 0x7F800001u, 0x7F801FFFu, 0x7FFFFFFFu}) {
    const fp16 h = to_fp16(from_bits(nan));
    EXPECT_TRUE(is_fp16_nan(h.bits)) << std::hex << nan << " -> " << h.bits;
    EXPECT_EQ(h.bits & 0x8000u, 0u);
    const fp16 n = to_fp16(from_bits(nan | 0x80000000u));
    EXPECT_TRUE(is_fp16_nan(n.bits)) << std::hex << nan << " -> " << n.bits;
    EXPECT_EQ(n.bits & 0x8000u, 0x8000u);
  }
  EXPECT_TRUE(std::isnan(to_float(fp16{0x7E00})));
  EXPECT_TRUE(std::isnan(to_float(fp16{0xFC01})));
}

TEST(Fp16, Subnormals) {
  const auto p2 = [](int e) {
    return std::ldexp(1.0f, e);
  };
  EXPECT_EQ(to_fp16(p2(-24)).bits, 0x0001u);  // smallest subnormal
  EXPECT_EQ(to_fp16(-p2(-24)).bits, 0x8001u);
  EXPECT_EQ(to_fp16(p2(-25)).bits, 0x0000u);            // tie with 0: even (0)
  EXPECT_EQ(to_fp16(p2(-25) + p2(-40)).bits, 0x0001u);  // above the tie
  EXPECT_EQ(to_fp16(3 * p2(-25)).bits, 0x0002u);        // tie 1|2: even (2)
  EXPECT_EQ(to_fp16(5 * p2(-25)).bits, 0x0002u);        // tie 2|3: even (2)
  EXPECT_EQ(to_fp16(p2(-26)).bits, 0x0000u);
  EXPECT_EQ(to_fp16(-p2(-30)).bits, 0x8000u);               // underflow keeps the sign
  EXPECT_EQ(to_fp16(1023 * p2(-24)).bits, 0x03FFu);         // largest subnormal
  EXPECT_EQ(to_fp16(1023.5f * p2(-24)).bits, 0x0400u);      // tie 0x3FF|0x400: even (normal)
  EXPECT_EQ(to_fp16(from_bits(0x00000001)).bits, 0x0000u);  // float subnormal
  EXPECT_EQ(to_float(fp16{0x0001}), p2(-24));
  EXPECT_EQ(to_float(fp16{0x03FF}), 1023 * p2(-24));
  EXPECT_EQ(to_float(fp16{0x8200}), -512 * p2(-24));
}

TEST(Fp16, EveryNonNanPatternMatchesReferenceAndRoundTrips) {
  int checked = 0;
  for (std::uint32_t i = 0; i < 0x10000; ++i) {
    const auto bits = static_cast<std::uint16_t>(i);
    if (is_fp16_nan(bits))
      continue;
    const float f = to_float(fp16{bits});
    if ((bits & 0x7C00u) == 0x7C00u) {
      ASSERT_TRUE(std::isinf(f)) << std::hex << i;
    } else {
      ASSERT_EQ(static_cast<double>(f), fp16_reference(bits)) << std::hex << i;
    }
    ASSERT_EQ(std::signbit(f), (bits & 0x8000u) != 0) << std::hex << i;
    ASSERT_EQ(to_fp16(f).bits, bits) << std::hex << i;
    ++checked;
  }
  EXPECT_EQ(checked, 65536 - 2 * 1023);  // every pattern but the 2046 NaNs
}

TEST(Fp16, EveryHalfwayPointRoundsToEven) {
  for (std::uint16_t lo = 0; lo < 0x7C00; ++lo) {
    const auto hi = static_cast<std::uint16_t>(lo + 1);
    const double dlo = fp16_reference(lo);
    const double dhi = hi == 0x7C00 ? 65536.0 : fp16_reference(hi);
    const auto mid = static_cast<float>((dlo + dhi) / 2);  // exact: 12 significant bits
    ASSERT_EQ(static_cast<double>(mid), (dlo + dhi) / 2);
    const std::uint16_t even = (lo & 1u) == 0 ? lo : hi;
    ASSERT_EQ(to_fp16(mid).bits, even) << std::hex << lo;
    ASSERT_EQ(to_fp16(std::nextafter(mid, 0.0f)).bits, lo) << std::hex << lo;
    ASSERT_EQ(to_fp16(std::nextafter(mid, 1e30f)).bits, hi) << std::hex << lo;
    ASSERT_EQ(to_fp16(-mid).bits, even | 0x8000u) << std::hex << lo;
  }
}

}  // namespace
}  // namespace kvkit
