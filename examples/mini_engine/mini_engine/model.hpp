// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The mini engine's model: a Llama-style decoder (RMSNorm, RoPE, grouped-query
/// attention, SwiGLU MLP) with random weights drawn from a fixed seed, and its FLOP count.
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/types.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mini_engine {

/// @brief Shape of the decoder.
struct model_config {
  std::uint32_t vocab_size = 1024;  ///< Token ids are `[0, vocab_size)`.
  std::uint32_t hidden = 128;       ///< Model width.
  std::uint32_t num_layers = 2;     ///< Decoder layers.
  std::uint32_t num_qo_heads = 4;   ///< Query heads.
  std::uint32_t num_kv_heads = 2;   ///< K/V heads (GQA groups of num_qo_heads / num_kv_heads).
  std::uint32_t head_dim = 32;      ///< Elements per head.
  std::uint32_t ffn = 384;          ///< SwiGLU inner width.
  float rope_theta = 10000.0f;      ///< RoPE base.
  float norm_eps = 1e-5f;           ///< RMSNorm epsilon.
  std::uint64_t seed = 20261123;    ///< Seed of the random weights.
  std::string name = "tiny";        ///< Name printed in reports.

  /// @brief The CPU model of the CI smoke runs and the CPU experiments (about 0.5 M parameters).
  static model_config tiny() { return {}; }

  /// @brief A CPU model with head_dim 128 (the CUDA kernels' configuration in CI), for checking
  /// the CPU and CUDA backends against each other.
  static model_config small128() {
    model_config c;
    c.vocab_size = 2048;
    c.hidden = 256;
    c.num_layers = 2;
    c.num_qo_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 128;
    c.ffn = 512;
    c.name = "small128";
    return c;
  }

  /// @brief A 1.1 B parameter model for the GPU: 22 layers of width 2048, 16 query heads and 4
  /// K/V heads of 128, SwiGLU 5632, vocabulary 32000.
  static model_config gpu_1b() {
    model_config c;
    c.vocab_size = 32000;
    c.hidden = 2048;
    c.num_layers = 22;
    c.num_qo_heads = 16;
    c.num_kv_heads = 4;
    c.head_dim = 128;
    c.ffn = 5632;
    c.name = "1b";
    return c;
  }

  /// @brief Width of all query heads together.
  [[nodiscard]] std::uint32_t q_width() const noexcept { return num_qo_heads * head_dim; }
  /// @brief Width of all K (or V) heads together.
  [[nodiscard]] std::uint32_t kv_width() const noexcept { return num_kv_heads * head_dim; }

  /// @brief Number of parameters.
  [[nodiscard]] std::uint64_t parameters() const noexcept {
    const std::uint64_t h = hidden;
    const std::uint64_t per_layer =
        2 * h + h * q_width() + 2 * h * kv_width() + std::uint64_t{q_width()} * h + 3 * h * ffn;
    return 2 * std::uint64_t{vocab_size} * h + h + num_layers * per_layer;
  }

  /// @brief Multiply-adds of the dense layers (projections, MLP, LM head) for one token.
  [[nodiscard]] double dense_macs_per_token() const noexcept {
    const double h = hidden;
    return num_layers * (h * q_width() + 2 * h * kv_width() + double(q_width()) * h + 3 * h * ffn) +
           h * vocab_size;
  }

  /// @brief Multiply-adds of attention for one query at position @p pos (it sees pos + 1 keys).
  [[nodiscard]] double attention_macs(double pos) const noexcept {
    return 2.0 * num_layers * num_qo_heads * head_dim * (pos + 1);
  }

  /// @brief Multiply-adds to prefill tokens `[cached, total)` over a cached prefix of `cached`.
  /// @param cached Tokens whose K/V is reused.
  /// @param total Prompt tokens.
  /// @return Dense plus attention multiply-adds.
  [[nodiscard]] double prefill_macs(double cached, double total) const noexcept {
    const double n = total - cached;
    // Sum over positions cached .. total-1 of (pos + 1).
    const double keys = (cached + 1 + total) * n / 2.0;
    return n * dense_macs_per_token() + 2.0 * num_layers * num_qo_heads * head_dim * keys;
  }

  /// @brief Checks the shape.
  /// @return Ok, or `errc::invalid_config` naming the bad field and the accepted values.
  [[nodiscard]] kvkit::status validate() const {
    auto bad = [](const std::string& what) {
      return kvkit::status{kvkit::error{kvkit::errc::invalid_config, "mini_engine: " + what}};
    };
    if (vocab_size < 2 || hidden == 0 || num_layers == 0 || ffn == 0 || head_dim == 0)
      return bad("vocab_size >= 2 and hidden, num_layers, ffn, head_dim >= 1 are required");
    if (num_kv_heads == 0 || num_qo_heads % num_kv_heads != 0) {
      return bad("num_qo_heads = " + std::to_string(num_qo_heads) +
                 " must be a positive multiple of num_kv_heads = " + std::to_string(num_kv_heads));
    }
    if (head_dim % 2 != 0)
      return bad("head_dim = " + std::to_string(head_dim) + " must be even (RoPE rotates pairs)");
    return {};
  }
};

/// @brief Weights of one decoder layer, row-major `[in][out]` (y = x W).
struct layer_weights {
  std::vector<float> attn_norm;  ///< `[hidden]` RMSNorm gain before attention.
  std::vector<float> wq;         ///< `[hidden][q_width]`.
  std::vector<float> wk;         ///< `[hidden][kv_width]`.
  std::vector<float> wv;         ///< `[hidden][kv_width]`.
  std::vector<float> wo;         ///< `[q_width][hidden]`.
  std::vector<float> mlp_norm;   ///< `[hidden]` RMSNorm gain before the MLP.
  std::vector<float> w_gate;     ///< `[hidden][ffn]`.
  std::vector<float> w_up;       ///< `[hidden][ffn]`.
  std::vector<float> w_down;     ///< `[ffn][hidden]`.
};

/// @brief All weights of the model, in float32 on the host (backends convert as they need).
struct model_weights {
  model_config config;                ///< The shape.
  std::vector<float> embed;           ///< `[vocab][hidden]`.
  std::vector<layer_weights> layers;  ///< `num_layers` layers.
  std::vector<float> final_norm;      ///< `[hidden]`.
  std::vector<float> lm_head;         ///< `[hidden][vocab]`.

  /// @brief Draws every weight from the config's seed: matrices ~ N(0, 1/in), norm gains near 1.
  /// The same seed gives the same bits on every machine (own generator, no std distributions).
  /// @param config The shape (validated).
  /// @return The weights, or the validation error.
  static kvkit::result<model_weights> random(const model_config& config) {
    if (auto s = config.validate(); !s)
      return kvkit::error{s.code(), s.message()};
    model_weights w;
    w.config = config;
    std::uint64_t state = config.seed;
    auto matrix = [&state](std::size_t in, std::size_t out) {
      std::vector<float> m(in * out);
      const double stddev = 1.0 / std::sqrt(double(in));
      for (float& x : m)
        x = float(stddev * normal(state));
      return m;
    };
    auto gain = [&state](std::size_t n) {
      std::vector<float> g(n);
      for (float& x : g)
        x = float(1.0 + 0.1 * normal(state));
      return g;
    };
    const std::size_t h = config.hidden;
    w.embed = matrix(config.vocab_size, h);
    for (float& x : w.embed)
      x *= float(std::sqrt(double(h)));  // unit-variance embedding rows
    w.layers.resize(config.num_layers);
    for (layer_weights& l : w.layers) {
      l.attn_norm = gain(h);
      l.wq = matrix(h, config.q_width());
      l.wk = matrix(h, config.kv_width());
      l.wv = matrix(h, config.kv_width());
      l.wo = matrix(config.q_width(), h);
      l.mlp_norm = gain(h);
      l.w_gate = matrix(h, config.ffn);
      l.w_up = matrix(h, config.ffn);
      l.w_down = matrix(config.ffn, h);
    }
    w.final_norm = gain(h);
    w.lm_head = matrix(h, config.vocab_size);
    return w;
  }

 private:
  static std::uint64_t splitmix64(std::uint64_t& s) noexcept {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Box-Muller from two uniform doubles in (0, 1].
  static double normal(std::uint64_t& s) noexcept {
    const double u1 = (double(splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = double(splitmix64(s) >> 11) * 0x1.0p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

/// @brief Rates a backend sustains, measured on the machine: what the cost model divides the
/// model's multiply-add counts by.
struct cost_rates {
  double dense_macs_per_s = 0;      ///< Matmuls at the model's shapes.
  double attention_macs_per_s = 0;  ///< Prefill attention over paged K/V.
  std::string how;                  ///< What was timed.
};

/// @brief One forward pass over a ragged batch: every sequence brings its new tokens (a prefill
/// chunk, or one decode token), whose K/V the backend writes into the sequence's pages before
/// attending over everything the pages hold. Views borrow the scheduler's arrays.
struct forward_batch {
  const kvkit::token_id* tokens = nullptr;    ///< New tokens, sequence after sequence.
  const std::uint32_t* positions = nullptr;   ///< Position of each new token in its sequence.
  const std::uint32_t* qo_indptr = nullptr;   ///< `batch + 1` offsets into #tokens.
  const std::uint32_t* kv_indptr = nullptr;   ///< `batch + 1` offsets into #kv_indices.
  const std::uint32_t* kv_indices = nullptr;  ///< Pages of each sequence, in order.
  const std::uint32_t* kv_len = nullptr;      ///< Tokens per sequence, new ones included.
  std::uint32_t batch = 0;                    ///< Sequences.
  std::uint32_t num_tokens = 0;               ///< New tokens in all.
  std::uint32_t max_qo_len = 0;               ///< Largest number of new tokens of one sequence.
};

}  // namespace mini_engine
