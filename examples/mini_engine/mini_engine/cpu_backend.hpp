// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The mini engine's CPU backend: OpenBLAS matmuls (a plain loop where OpenBLAS is
/// absent) and kvkit's CPU reference attention over the cache's paged host storage.
#pragma once

#include <kvkit/index_math.hpp>
#include <kvkit/paged_kv.hpp>
#include <kvkit/reference_attention.hpp>
#include <kvkit/storage.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model.hpp"

#if defined(MINI_ENGINE_HAVE_OPENBLAS)
#include <cblas.h>
#endif

namespace mini_engine {

/// @brief `y[n][out] = x[n][in] W[in][out]` (y overwritten), single precision.
inline void matmul(const float* x, const float* w, float* y, std::size_t n, std::size_t in,
                   std::size_t out) {
#if defined(MINI_ENGINE_HAVE_OPENBLAS)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(out), int(in), 1.0f, x,
              int(in), w, int(out), 0.0f, y, int(out));
#else
  for (std::size_t r = 0; r < n; ++r) {
    float* yr = y + r * out;
    std::fill(yr, yr + out, 0.0f);
    for (std::size_t k = 0; k < in; ++k) {
      const float a = x[r * in + k];
      const float* wk = w + k * out;
      for (std::size_t c = 0; c < out; ++c)
        yr[c] += a * wk[c];
    }
  }
#endif
}

/// @brief Name of the matmul implementation compiled in ("OpenBLAS" or "builtin loop").
inline const char* matmul_backend_name() noexcept {
#if defined(MINI_ENGINE_HAVE_OPENBLAS)
  return "OpenBLAS";
#else
  return "builtin loop";
#endif
}

/// @brief `out[r] = x[r] / rms(x[r]) * gain`, row by row.
inline void rmsnorm(const float* x, const float* gain, float* out, std::size_t n, std::size_t h,
                    float eps) {
  for (std::size_t r = 0; r < n; ++r) {
    double ss = 0.0;
    for (std::size_t i = 0; i < h; ++i)
      ss += double(x[r * h + i]) * x[r * h + i];
    const float inv = float(1.0 / std::sqrt(ss / double(h) + eps));
    for (std::size_t i = 0; i < h; ++i)
      out[r * h + i] = x[r * h + i] * inv * gain[i];
  }
}

/// @brief Rotary embedding in place on `[n][heads][head_dim]` rows (pairs `(2i, 2i+1)`), token
/// `r` at position `positions[r]`.
inline void rope(float* x, const std::uint32_t* positions, std::size_t n, std::size_t heads,
                 std::size_t head_dim, float theta) {
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t i = 0; i < head_dim / 2; ++i) {
      const double freq = std::pow(double(theta), -2.0 * double(i) / double(head_dim));
      const double angle = double(positions[r]) * freq;
      const float c = float(std::cos(angle));
      const float s = float(std::sin(angle));
      for (std::size_t hd = 0; hd < heads; ++hd) {
        float* p = x + (r * heads + hd) * head_dim + 2 * i;
        const float a = p[0];
        const float b = p[1];
        p[0] = a * c - b * s;
        p[1] = a * s + b * c;
      }
    }
  }
}

/// @brief CPU backend over a cache whose storage is `kvkit::host_storage<T>`.
/// @tparam T K/V element type of the storage (`kvkit::bf16`, `kvkit::fp16` or `float`).
template <class T>
class cpu_backend {
 public:
  /// @brief The storage type the cache must use.
  using storage_type = kvkit::host_storage<T>;

  /// @brief A backend over @p weights (kept by value).
  explicit cpu_backend(model_weights weights) : w_(std::move(weights)) {}

  /// @brief The model.
  [[nodiscard]] const model_config& config() const noexcept { return w_.config; }

  /// @brief Backend name for reports.
  [[nodiscard]] std::string name() const {
    return std::string("cpu (") + matmul_backend_name() + " + kvkit reference attention)";
  }

  /// @brief Runs the model over @p batch: writes the new tokens' K/V into @p kv at their pages,
  /// attends over each sequence's pages, and writes the logits of each sequence's last new token.
  /// @param batch The batch (page tables include the new tokens).
  /// @param kv The cache's storage (its layout must match the model).
  /// @param logits `[batch][vocab]` output.
  /// @return Ok, or the attention's error.
  kvkit::status forward(const forward_batch& batch, storage_type& kv, std::span<float> logits) {
    const model_config& c = w_.config;
    const std::size_t n = batch.num_tokens;
    const std::size_t h = c.hidden;
    resize(n);
    for (std::size_t r = 0; r < n; ++r) {
      const float* e = w_.embed.data() + std::size_t{batch.tokens[r] % c.vocab_size} * h;
      std::copy(e, e + h, x_.begin() + std::ptrdiff_t(r * h));
    }
    const kvkit::kv_layout& layout = kv.layout();
    for (std::uint32_t layer = 0; layer < c.num_layers; ++layer) {
      const layer_weights& l = w_.layers[layer];
      rmsnorm(x_.data(), l.attn_norm.data(), t_.data(), n, h, c.norm_eps);
      matmul(t_.data(), l.wq.data(), q_.data(), n, h, c.q_width());
      matmul(t_.data(), l.wk.data(), k_.data(), n, h, c.kv_width());
      matmul(t_.data(), l.wv.data(), v_.data(), n, h, c.kv_width());
      rope(q_.data(), batch.positions, n, c.num_qo_heads, c.head_dim, c.rope_theta);
      rope(k_.data(), batch.positions, n, c.num_kv_heads, c.head_dim, c.rope_theta);
      // Append: the new tokens' K/V go to their slots in the sequences' pages.
      for (std::uint32_t b = 0; b < batch.batch; ++b) {
        for (std::uint32_t r = batch.qo_indptr[b]; r < batch.qo_indptr[b + 1]; ++r) {
          const kvkit::token_slot ts = kvkit::token_slot_of(batch.positions[r], layout.block_size);
          const kvkit::block_id page = batch.kv_indices[batch.kv_indptr[b] + ts.page_index];
          const std::uint32_t slot = ts.position;
          for (std::uint32_t kh = 0; kh < c.num_kv_heads; ++kh) {
            for (std::uint32_t d = 0; d < c.head_dim; ++d) {
              const std::size_t src = kvkit::qo_row(r, kh, c.num_kv_heads) * c.head_dim + d;
              kv.at(layer, 0, page, slot, kh, d) = convert(k_[src]);
              kv.at(layer, 1, page, slot, kh, d) = convert(v_[src]);
            }
          }
        }
      }
      kvkit::paged_kv<const T> view = kvkit::make_paged_kv<T>(kv.data().data(), layout, layer);
      view.indptr = batch.kv_indptr;
      view.indices = batch.kv_indices;
      view.kv_len = batch.kv_len;
      view.batch = batch.batch;
      kvkit::attention_problem problem;
      problem.qo_indptr = batch.qo_indptr;
      problem.num_qo_heads = c.num_qo_heads;
      problem.causal = true;
      if (auto s = kvkit::reference_prefill(view, problem, q_.data(), a_.data(), nullptr); !s)
        return s;
      matmul(a_.data(), l.wo.data(), t_.data(), n, c.q_width(), h);
      for (std::size_t i = 0; i < n * h; ++i)
        x_[i] += t_[i];
      rmsnorm(x_.data(), l.mlp_norm.data(), t_.data(), n, h, c.norm_eps);
      matmul(t_.data(), l.w_gate.data(), g_.data(), n, h, c.ffn);
      matmul(t_.data(), l.w_up.data(), u_.data(), n, h, c.ffn);
      for (std::size_t i = 0; i < n * c.ffn; ++i)
        g_[i] = g_[i] / (1.0f + std::exp(-g_[i])) * u_[i];
      matmul(g_.data(), l.w_down.data(), t_.data(), n, c.ffn, h);
      for (std::size_t i = 0; i < n * h; ++i)
        x_[i] += t_[i];
    }
    // Logits of each sequence's last new token.
    last_.resize(std::size_t{batch.batch} * h);
    for (std::uint32_t b = 0; b < batch.batch; ++b) {
      const std::size_t r = batch.qo_indptr[b + 1] - 1;
      std::copy(x_.begin() + std::ptrdiff_t(r * h), x_.begin() + std::ptrdiff_t((r + 1) * h),
                last_.begin() + std::ptrdiff_t(b * h));
    }
    normed_.resize(last_.size());
    rmsnorm(last_.data(), w_.final_norm.data(), normed_.data(), batch.batch, h, c.norm_eps);
    matmul(normed_.data(), w_.lm_head.data(), logits.data(), batch.batch, h, c.vocab_size);
    return {};
  }

 private:
  static T convert(float f) noexcept {
    if constexpr (std::is_same_v<T, float>)
      return f;
    else if constexpr (std::is_same_v<T, kvkit::bf16>)
      return kvkit::to_bf16(f);
    else
      return kvkit::to_fp16(f);
  }

  void resize(std::size_t n) {
    const model_config& c = w_.config;
    x_.resize(n * c.hidden);
    t_.resize(n * std::max<std::size_t>(c.hidden, 1));
    q_.resize(n * c.q_width());
    a_.resize(n * c.q_width());
    k_.resize(n * c.kv_width());
    v_.resize(n * c.kv_width());
    g_.resize(n * c.ffn);
    u_.resize(n * c.ffn);
  }

  model_weights w_;
  std::vector<float> x_, t_, q_, a_, k_, v_, g_, u_, last_, normed_;
};

}  // namespace mini_engine
