// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief CPU reference attention over paged K/V: decode, prefill over a cached prefix (causal,
/// bottom-right aligned), and the merge of partial results by log-sum-exp.
///
/// Written for clarity and exactness (double accumulation), not speed: it is what kvkit's kernels
/// are proven against, and what a CPU-only engine can run.
#pragma once

#include <kvkit/attention_merge.hpp>
#include <kvkit/error.hpp>
#include <kvkit/index_math.hpp>
#include <kvkit/paged_kv.hpp>
#include <kvkit/types.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace kvkit {

/// @brief Shape of the queries of a batch for reference_prefill().
struct attention_problem {
  const std::uint32_t* qo_indptr = nullptr;  ///< `batch + 1` offsets of each sequence's queries.
  std::uint32_t num_qo_heads = 1;  ///< Query heads (a multiple of the K/V heads: GQA groups).
  float scale = 0.0f;              ///< Softmax scale; 0 means `1 / sqrt(head_dim)`.
  bool causal = true;              ///< Bottom-right aligned causal mask.
};

/// @brief Reference attention of new query tokens over each sequence's paged K/V.
///
/// Query `i` of sequence `b` (with `n = qo_indptr[b+1] - qo_indptr[b]` queries) is the token at
/// position `kv_len[b] - n + i`: the queries are the last `n` tokens of the sequence, whose K/V is
/// already in the pages (a prefill of an uncached suffix over a cached prefix, or a decode step
/// when `n == 1`). With `causal`, it attends to positions `<= kv_len[b] - n + i`; otherwise to all
/// `kv_len[b]`. Query head `h` reads K/V head `h / (num_qo_heads / num_kv_heads)`.
/// @tparam T K/V element type.
/// @param kv The paged K/V of the batch.
/// @param problem Query offsets, heads, scale, mask.
/// @param q Queries, `[total_q][num_qo_heads][head_dim]` floats.
/// @param out Output, same shape as @p q.
/// @param lse Natural-log sum of exp of the scaled scores, `[total_q][num_qo_heads]` (may be null).
/// @return Ok, or `errc::invalid_argument` naming the inconsistent field.
template <class T>
status reference_prefill(const paged_kv<const T>& kv, const attention_problem& problem,
                         const float* q, float* out, float* lse) {
  if (kv.num_kv_heads == 0 || problem.num_qo_heads % kv.num_kv_heads != 0) {
    return error{
        errc::invalid_argument,
        "kvkit: reference_prefill: num_qo_heads = " + std::to_string(problem.num_qo_heads) +
            " must be a multiple of num_kv_heads = " + std::to_string(kv.num_kv_heads)};
  }
  const std::uint32_t group = gqa_group(problem.num_qo_heads, kv.num_kv_heads);
  const std::uint32_t d = kv.head_dim;
  const double scale = problem.scale != 0.0f ? problem.scale : 1.0 / std::sqrt(double(d));
  std::vector<double> scores;
  std::vector<double> acc(d);
  for (std::uint32_t b = 0; b < kv.batch; ++b) {
    const std::uint32_t q_begin = problem.qo_indptr[b];
    const std::uint32_t n = problem.qo_indptr[b + 1] - q_begin;
    if (n > kv.kv_len[b]) {
      return error{errc::invalid_argument,
                   "kvkit: reference_prefill: sequence " + std::to_string(b) + " has " +
                       std::to_string(n) + " queries but only " + std::to_string(kv.kv_len[b]) +
                       " K/V tokens; queries must be the last tokens of the sequence"};
    }
    const std::uint32_t pages = kv.indptr[b + 1] - kv.indptr[b];
    if (pages < pages_for(kv.kv_len[b], kv.block_size)) {
      return error{errc::invalid_argument, "kvkit: reference_prefill: sequence " +
                                               std::to_string(b) + " has too few pages for " +
                                               std::to_string(kv.kv_len[b]) + " tokens"};
    }
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint32_t visible = key_limit(kv.kv_len[b], n, i, problem.causal);
      for (std::uint32_t h = 0; h < problem.num_qo_heads; ++h) {
        const std::uint64_t row = qo_row(q_begin + i, h, problem.num_qo_heads);
        const float* qv = q + row * d;
        const std::uint32_t kvh = kv_head_of(h, group);
        scores.assign(visible, 0.0);
        double max_score = -std::numeric_limits<double>::infinity();
        for (std::uint32_t t = 0; t < visible; ++t) {
          const T* kt = kv.key(b, t, kvh);
          // Four independent double sums (then combined): the same exactness, without one
          // long chain of dependent additions.
          double s4[4] = {0.0, 0.0, 0.0, 0.0};
          std::uint32_t x = 0;
          for (; x + 4 <= d; x += 4) {
            for (std::uint32_t j = 0; j < 4; ++j)
              s4[j] += double(qv[x + j]) * double(to_float(kt[x + j]));
          }
          for (; x < d; ++x)
            s4[0] += double(qv[x]) * double(to_float(kt[x]));
          const double s = (s4[0] + s4[1]) + (s4[2] + s4[3]);
          scores[t] = s * scale;
          max_score = std::max(max_score, scores[t]);
        }
        double sum = 0.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (std::uint32_t t = 0; t < visible; ++t) {
          const double p = std::exp(scores[t] - max_score);
          sum += p;
          const T* vt = kv.value(b, t, kvh);
          for (std::uint32_t x = 0; x < d; ++x)
            acc[x] += p * double(to_float(vt[x]));
        }
        float* o = out + row * d;
        for (std::uint32_t x = 0; x < d; ++x)
          o[x] = visible ? float(acc[x] / sum) : 0.0f;
        if (lse != nullptr) {
          lse[row] =
              visible ? float(max_score + std::log(sum)) : -std::numeric_limits<float>::infinity();
        }
      }
    }
  }
  return {};
}

/// @brief Reference decode: one query token per sequence (the last token of each).
/// @tparam T K/V element type.
/// @param kv The paged K/V of the batch (each sequence's last token included).
/// @param num_qo_heads Query heads.
/// @param q Queries, `[batch][num_qo_heads][head_dim]`.
/// @param out Output, same shape.
/// @param lse Log-sum-exp, `[batch][num_qo_heads]` (may be null).
/// @param scale Softmax scale; 0 means `1 / sqrt(head_dim)`.
/// @return As reference_prefill().
template <class T>
status reference_decode(const paged_kv<const T>& kv, std::uint32_t num_qo_heads, const float* q,
                        float* out, float* lse, float scale = 0.0f) {
  std::vector<std::uint32_t> qo_indptr(kv.batch + 1);
  for (std::uint32_t b = 0; b <= kv.batch; ++b)
    qo_indptr[b] = b;
  attention_problem p;
  p.qo_indptr = qo_indptr.data();
  p.num_qo_heads = num_qo_heads;
  p.scale = scale;
  p.causal = true;
  return reference_prefill(kv, p, q, out, lse);
}

/// @brief Merges two partial attention results over disjoint K/V ranges into the result over
/// their union: `o = (e^{lse_a} o_a + e^{lse_b} o_b) / (e^{lse_a} + e^{lse_b})`.
/// @param o_a First output, `[rows][head_dim]`.
/// @param lse_a Its log-sum-exp, `[rows]` (`-inf` for an empty range).
/// @param o_b Second output.
/// @param lse_b Its log-sum-exp.
/// @param rows Rows (tokens x heads).
/// @param head_dim Elements per row.
/// @param out Merged output (may alias @p o_a).
/// @param lse Merged log-sum-exp (may alias @p lse_a; may be null).
inline void reference_merge_states(const float* o_a, const float* lse_a, const float* o_b,
                                   const float* lse_b, std::size_t rows, std::uint32_t head_dim,
                                   float* out, float* lse) {
  for (std::size_t r = 0; r < rows; ++r) {
    // Each input is the normalised state (lse * log2(e), 1, o); see <kvkit/attention_merge.hpp>.
    const merge_scales<double> f =
        merge_factors<double>(double(lse_a[r]) * log2_e, double(lse_b[r]) * log2_e);
    const double d = f.scale_a + f.scale_b;
    for (std::uint32_t x = 0; x < head_dim; ++x) {
      const double acc = f.scale_a * o_a[r * head_dim + x] + f.scale_b * o_b[r * head_dim + x];
      out[r * head_dim + x] = d > 0.0 ? float(acc / d) : 0.0f;
    }
    if (lse != nullptr)
      lse[r] = float(state_lse2(f.max, d) * ln_2);
  }
}

}  // namespace kvkit
