// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The log-sum-exp merge of attention states, written once for the CUDA kernels (online
/// softmax, split-KV merge, `merge_states`) and the CPU reference (`reference_merge_states`).
///
/// An attention state over a set of keys is a reference exponent `m` (base 2), a denominator
/// `d = sum_j 2^(s_j - m)` and an accumulator `a = sum_j 2^(s_j - m) v_j`; its output is `a / d`
/// and its log-sum-exp (base 2) `m + log2(d)`. A normalised result `(o, lse)` is the state
/// `(lse * log2(e), 1, o)`. Two states over disjoint key sets merge by rescaling both to the
/// larger exponent: merge_factors() returns that exponent and the two factors, and every
/// merge in kvkit (a new tile into a running state, split partials into one output, two partial
/// results into one) is `d = d_a * scale_a + d_b * scale_b`, `a = a_a * scale_a + a_b * scale_b`.
/// A state over no keys has `m = -inf` and weighs nothing, also when both are empty.
#pragma once

#include <kvkit/index_math.hpp>

#if !defined(__CUDA_ARCH__)
#include <cmath>
#endif

namespace kvkit {

/// @brief How to rescale two attention states to merge them (see the file description).
/// @tparam F `float` or `double`.
template <class F>
struct merge_scales {
  /// @brief Larger of the two exponents: the merged state's `m` (`-inf` when both are empty).
  F max;
  /// @brief Finite exponent that scores are taken relative to: #max, or 0 when #max is `-inf`
  /// (so that `2^(s - ref)` is 0, never NaN, for a score `s = -inf`).
  F ref;
  /// @brief `2^(m_a - ref)`: factor of the first state (0 when it is empty).
  F scale_a;
  /// @brief `2^(m_b - ref)`: factor of the second state (0 when it is empty).
  F scale_b;
};

/// @brief `2^x` in the precision of @p x, on host and device.
/// @tparam F `float` or `double`.
/// @param x The exponent.
/// @return `2^x` (0 for `-inf`).
template <class F>
KVKIT_HOST_DEVICE inline F exp2_of(F x) noexcept {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(F) == sizeof(float))
    return exp2f(x);
  else
    return exp2(x);
#else
  return std::exp2(x);
#endif
}

/// @brief `log2(x)` in the precision of @p x, on host and device.
/// @tparam F `float` or `double`.
/// @param x A positive value.
/// @return `log2(x)`.
template <class F>
KVKIT_HOST_DEVICE inline F log2_of(F x) noexcept {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(F) == sizeof(float))
    return log2f(x);
  else
    return log2(x);
#else
  return std::log2(x);
#endif
}

/// @brief The common exponent and the two factors that merge states with base-2 exponents
/// @p m_a and @p m_b.
/// @tparam F `float` or `double`.
/// @param m_a Exponent of the first state (`-inf` for an empty one).
/// @param m_b Exponent of the second state.
/// @return The merge's scales.
template <class F>
KVKIT_HOST_DEVICE inline merge_scales<F> merge_factors(F m_a, F m_b) noexcept {
  const F m = m_a > m_b ? m_a : m_b;
  const F ref = m == -F(__builtin_huge_val()) ? F(0) : m;
  return {m, ref, exp2_of(m_a - ref), exp2_of(m_b - ref)};
}

/// @brief Base-2 log-sum-exp of a state with exponent @p m and denominator @p d.
/// @tparam F `float` or `double`.
/// @param m Exponent.
/// @param d Denominator (0 for a state over no keys).
/// @return `m + log2(d)`, or `-inf` when `d` is 0.
template <class F>
KVKIT_HOST_DEVICE inline F state_lse2(F m, F d) noexcept {
  return d > F(0) ? m + log2_of(d) : -F(__builtin_huge_val());
}

/// @brief log2(e): converts natural-log LSEs to base-2 exponents.
inline constexpr double log2_e = 1.4426950408889634;
/// @brief ln(2): converts base-2 LSEs back to natural logarithms.
inline constexpr double ln_2 = 0.6931471805599453;

}  // namespace kvkit
