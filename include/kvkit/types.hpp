// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Basic vocabulary types: block and token ids, element types of KV storage.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace kvkit {

/// @brief Index of one KV block in a cache's pool, in `[0, num_blocks)`.
using block_id = std::uint32_t;

/// @brief A token id as produced by a tokenizer.
using token_id = std::int32_t;

/// @brief The block id that stands for "no block".
inline constexpr block_id invalid_block = 0xFFFFFFFFu;

/// @brief Element type of stored keys and values.
enum class dtype : std::uint8_t {
  fp16,  ///< IEEE 754 binary16.
  bf16,  ///< bfloat16 (8-bit exponent, 7-bit mantissa).
  fp32,  ///< IEEE 754 binary32.
};

/// @brief Size in bytes of one element of type @p t.
/// @param t The element type.
/// @return 2 for `dtype::fp16` and `dtype::bf16`, 4 for `dtype::fp32`.
constexpr std::size_t dtype_size(dtype t) noexcept {
  return t == dtype::fp32 ? 4 : 2;
}

/// @brief Name of an element type, as used in configuration strings ("fp16", "bf16", "fp32").
/// @param t The element type.
/// @return A static string.
constexpr std::string_view to_string(dtype t) noexcept {
  switch (t) {
    case dtype::fp16:
      return "fp16";
    case dtype::bf16:
      return "bf16";
    case dtype::fp32:
      return "fp32";
  }
  return "unknown";
}

/// @brief A 16-bit IEEE half-precision value, stored as raw bits (host-side storage type).
struct fp16 {
  std::uint16_t bits = 0;  ///< Raw binary16 bits.
};

/// @brief A bfloat16 value, stored as raw bits (host-side storage type).
struct bf16 {
  std::uint16_t bits = 0;  ///< Raw bfloat16 bits.
};

/// @brief Converts a float to bfloat16 with round-to-nearest-even (NaN stays NaN).
/// @param f The value to convert.
/// @return The nearest bfloat16.
inline bf16 to_bf16(float f) noexcept {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu) != 0) {
    return bf16{static_cast<std::uint16_t>((u >> 16) | 0x0040u)};
  }
  u += 0x7FFFu + ((u >> 16) & 1u);
  return bf16{static_cast<std::uint16_t>(u >> 16)};
}

/// @brief Converts a bfloat16 to float (exact).
/// @param h The value to convert.
/// @return The same value as float.
inline float to_float(bf16 h) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h.bits) << 16);
}

/// @brief Converts a float to IEEE half precision with round-to-nearest-even.
/// @param f The value to convert.
/// @return The nearest fp16 (overflow gives infinity, NaN stays NaN).
inline fp16 to_fp16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t abs = u & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // inf or nan
    return fp16{static_cast<std::uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u))};
  }
  if (abs >= 0x477FF000u) {  // rounds to >= 65520: overflow to inf
    return fp16{static_cast<std::uint16_t>(sign | 0x7C00u)};
  }
  if (abs < 0x38800000u) {  // subnormal or zero in half
    // Value = abs_float; half subnormal unit is 2^-24.
    const float a = std::bit_cast<float>(abs);
    const float scaled = a * 16777216.0f;  // 2^24, exact
    // round to nearest even integer
    auto r = static_cast<std::uint32_t>(scaled);
    const float frac = scaled - static_cast<float>(r);
    if (frac > 0.5f || (frac == 0.5f && (r & 1u)))
      ++r;
    return fp16{static_cast<std::uint16_t>(sign | r)};
  }
  std::uint32_t mant = abs & 0x007FFFFFu;
  std::uint32_t exp = (abs >> 23) - 127 + 15;
  std::uint32_t h = (exp << 10) | (mant >> 13);
  const std::uint32_t rest = mant & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    ++h;  // may carry into exponent: correct
  return fp16{static_cast<std::uint16_t>(sign | h)};
}

/// @brief Converts an IEEE half to float (exact).
/// @param h The value to convert.
/// @return The same value as float.
inline float to_float(fp16 h) noexcept {
  const std::uint32_t sign = (static_cast<std::uint32_t>(h.bits) & 0x8000u) << 16;
  const std::uint32_t exp = (h.bits >> 10) & 0x1Fu;
  const std::uint32_t mant = h.bits & 0x3FFu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exp == 31) {
    return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));
  }
  return std::bit_cast<float>(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

/// @brief Identity conversion, so generic code can call `to_float` on every element type.
/// @param f The value.
/// @return @p f.
constexpr float to_float(float f) noexcept {
  return f;
}

namespace detail {
template <class T>
struct dtype_of_impl;
template <>
struct dtype_of_impl<fp16> {
  static constexpr dtype value = dtype::fp16;
};
template <>
struct dtype_of_impl<bf16> {
  static constexpr dtype value = dtype::bf16;
};
template <>
struct dtype_of_impl<float> {
  static constexpr dtype value = dtype::fp32;
};
}  // namespace detail

/// @brief The @ref dtype tag of a host element type (`fp16`, `bf16` or `float`).
/// @tparam T The element type.
template <class T>
inline constexpr dtype dtype_of = detail::dtype_of_impl<T>::value;

}  // namespace kvkit
