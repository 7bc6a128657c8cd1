// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The mini engine on the CPU backend: its logits against an independent dense transformer
// (no paging, no BLAS, double accumulation), cache hits against full recomputes, chunked and
// batched runs against single ones, the scheduler's cap and shared-prefix admission, failures.
#include <kvkit/kvkit.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <vector>

#include "support/engine_testing.hpp"
#include <mini_engine/cpu_backend.hpp>
#include <mini_engine/engine.hpp>

namespace {

using kvkit::test::concat;
using kvkit::test::max_abs;
using kvkit::test::max_diff;
using mini_engine::engine_options;
using mini_engine::model_config;
using mini_engine::model_weights;
using mini_engine::request;
using backend_t = mini_engine::cpu_backend<kvkit::bf16>;
using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                    kvkit::lru_eviction, backend_t::storage_type>;
using engine_t = mini_engine::engine<cache_t, backend_t>;
using tokens = std::vector<kvkit::token_id>;

const model_weights& weights() {
  static const model_weights w = *model_weights::random(model_config::tiny());
  return w;
}

tokens random_tokens(std::size_t n, std::uint64_t seed) {
  return kvkit::test::random_tokens(n, seed, weights().config.vocab_size);
}

engine_t make_engine(engine_options o, std::uint32_t block_size = 16,
                     std::uint32_t num_blocks = 256) {
  const model_config& c = weights().config;
  const kvkit::kv_layout layout{.num_layers = c.num_layers,
                                .num_kv_heads = c.num_kv_heads,
                                .head_dim = c.head_dim,
                                .block_size = block_size,
                                .num_blocks = num_blocks};
  auto cache = cache_t::create({}, *backend_t::storage_type::create(layout));
  return engine_t(std::move(*cache), backend_t(weights()), o);
}

// --- independent dense reference: full prompt, no pages, plain loops, double sums ------------
std::vector<double> dense_matmul(const std::vector<double>& x, const std::vector<float>& w,
                                 std::size_t n, std::size_t in, std::size_t out) {
  std::vector<double> y(n * out, 0.0);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t k = 0; k < in; ++k)
      for (std::size_t c = 0; c < out; ++c)
        y[r * out + c] += x[r * in + k] * w[k * out + c];
  return y;
}

std::vector<double> dense_rmsnorm(const std::vector<double>& x, const std::vector<float>& g,
                                  std::size_t n, std::size_t h, double eps) {
  std::vector<double> y(n * h);
  for (std::size_t r = 0; r < n; ++r) {
    double ss = 0;
    for (std::size_t i = 0; i < h; ++i)
      ss += x[r * h + i] * x[r * h + i];
    const double inv = 1.0 / std::sqrt(ss / double(h) + eps);
    for (std::size_t i = 0; i < h; ++i)
      y[r * h + i] = x[r * h + i] * inv * g[i];
  }
  return y;
}

void dense_rope(std::vector<double>& x, std::size_t n, std::size_t heads, std::size_t d,
                double theta) {
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t hd = 0; hd < heads; ++hd)
      for (std::size_t i = 0; i < d / 2; ++i) {
        const double a = double(r) * std::pow(theta, -2.0 * double(i) / double(d));
        double* p = &x[(r * heads + hd) * d + 2 * i];
        const double x0 = p[0], x1 = p[1];
        p[0] = x0 * std::cos(a) - x1 * std::sin(a);
        p[1] = x0 * std::sin(a) + x1 * std::cos(a);
      }
}

// Logits after the last prompt token; K/V rounded to bf16 as the paged storage holds them.
std::vector<double> dense_logits(const tokens& prompt) {
  const model_weights& w = weights();
  const model_config& c = w.config;
  const std::size_t n = prompt.size(), h = c.hidden, d = c.head_dim;
  std::vector<double> x(n * h);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t i = 0; i < h; ++i)
      x[r * h + i] = w.embed[static_cast<std::size_t>(prompt[r]) * h + i];
  for (const auto& l : w.layers) {
    auto t = dense_rmsnorm(x, l.attn_norm, n, h, c.norm_eps);
    auto q = dense_matmul(t, l.wq, n, h, c.q_width());
    auto k = dense_matmul(t, l.wk, n, h, c.kv_width());
    auto v = dense_matmul(t, l.wv, n, h, c.kv_width());
    dense_rope(q, n, c.num_qo_heads, d, c.rope_theta);
    dense_rope(k, n, c.num_kv_heads, d, c.rope_theta);
    for (auto* m : {&k, &v})
      for (double& e : *m)
        e = kvkit::to_float(kvkit::to_bf16(float(e)));
    // The engine's queries are float: round them as it does.
    for (double& e : q)
      e = float(e);
    std::vector<double> a(n * c.q_width(), 0.0);
    const std::size_t group = c.num_qo_heads / c.num_kv_heads;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t hd = 0; hd < c.num_qo_heads; ++hd) {
        const std::size_t kh = hd / group;
        std::vector<double> s(i + 1);
        double m = -1e300;
        for (std::size_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (std::size_t e = 0; e < d; ++e)
            dot += q[(i * c.num_qo_heads + hd) * d + e] * k[(j * c.num_kv_heads + kh) * d + e];
          s[j] = dot / std::sqrt(double(d));
          m = std::max(m, s[j]);
        }
        double sum = 0;
        for (auto& e : s)
          sum += (e = std::exp(e - m));
        for (std::size_t j = 0; j <= i; ++j)
          for (std::size_t e = 0; e < d; ++e)
            a[(i * c.num_qo_heads + hd) * d + e] +=
                s[j] / sum * v[(j * c.num_kv_heads + kh) * d + e];
      }
    auto o = dense_matmul(a, l.wo, n, c.q_width(), h);
    for (std::size_t i = 0; i < n * h; ++i)
      x[i] += o[i];
    t = dense_rmsnorm(x, l.mlp_norm, n, h, c.norm_eps);
    auto g = dense_matmul(t, l.w_gate, n, h, c.ffn);
    auto u = dense_matmul(t, l.w_up, n, h, c.ffn);
    for (std::size_t i = 0; i < g.size(); ++i)
      g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
    auto dn = dense_matmul(g, l.w_down, n, c.ffn, h);
    for (std::size_t i = 0; i < n * h; ++i)
      x[i] += dn[i];
  }
  std::vector<double> last(x.end() - std::ptrdiff_t(h), x.end());
  last = dense_rmsnorm(last, w.final_norm, 1, h, c.norm_eps);
  return dense_matmul(last, w.lm_head, 1, h, c.vocab_size);
}

// Runs `prompts` one after another (or all at once) and returns each request's logits before
// its first token, by request id.
struct captured {
  std::map<std::uint64_t, std::vector<std::vector<float>>> logits;  // per sampled token
  std::vector<mini_engine::request_record> records;                 // by id
};

captured run(engine_t& e, const std::vector<tokens>& prompts, bool sequential,
             std::uint32_t new_tokens = 4) {
  captured out;
  e.on_logits = [&out](const mini_engine::request_record& r, std::span<const float> l) {
    out.logits[r.id].emplace_back(l.begin(), l.end());
  };
  for (const auto& p : prompts) {
    e.submit(request{.prompt = p, .max_new_tokens = new_tokens, .options = {}});
    if (sequential) {
      EXPECT_TRUE(e.run_until_idle().ok());
    }
  }
  EXPECT_TRUE(e.run_until_idle().ok());
  out.records = e.finished();
  std::sort(out.records.begin(), out.records.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

TEST(MiniEngine, LogitsMatchAnIndependentDenseTransformer) {
  for (std::size_t len : {1u, 17u, 100u}) {
    engine_t e = make_engine({.prefix_caching = false});
    const tokens prompt = random_tokens(len, len);
    captured c = run(e, {prompt}, true, 1);
    const auto ref = dense_logits(prompt);
    const auto& got = c.logits.at(0).at(0);
    double scale = 0, diff = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      scale = std::max(scale, std::fabs(ref[i]));
      diff = std::max(diff, std::fabs(ref[i] - got[i]));
    }
    // Float activations against double ones: agreement to ~1e-5 of the logit scale is
    // expected; 1e-3 leaves room for the order of float sums in BLAS.
    EXPECT_LE(diff, 1e-3 * scale) << "prompt length " << len << ", max |logit| " << scale;
  }
}

TEST(MiniEngine, CacheHitGivesTheLogitsOfAFullRecompute) {
  for (std::uint32_t block_size : {1u, 16u, 64u}) {
    const tokens prefix = random_tokens(200, 7);
    const tokens a = concat(prefix, random_tokens(37, 8));
    const tokens b = concat(prefix, random_tokens(50, 9));
    ASSERT_NE(a[200], b[200]);
    engine_t warm = make_engine({.prefix_caching = true}, block_size, 1024);
    captured hit = run(warm, {a, b}, true);
    engine_t cold = make_engine({.prefix_caching = false}, block_size, 1024);
    captured miss = run(cold, {b}, true);
    EXPECT_EQ(hit.records[1].cached_tokens, 200 / block_size * block_size);
    EXPECT_EQ(miss.records[0].cached_tokens, 0u);
    EXPECT_EQ(hit.records[1].output, miss.records[0].output);
    // Every logit row of b (first token and the decode steps after it): with the hit, the
    // prefix K/V came from a's prefill, in a batch of other rows; BLAS blocks its sums by the
    // number of rows, so a K/V element may round to the neighbouring bf16 value. Observed
    // differences are ~5e-5 of the largest logit; the bound is 1e-3 of it (a wrong position, a
    // wrong page or stale K/V gives differences of the order of the logits themselves).
    const auto& h = hit.logits.at(1);
    const auto& m = miss.logits.at(0);
    ASSERT_EQ(h.size(), m.size());
    for (std::size_t t = 0; t < h.size(); ++t)
      EXPECT_LE(max_diff(h[t], m[t]), 1e-3 * max_abs(m[t])) << "block_size " << block_size;
  }
}

TEST(MiniEngine, ChunkedAndBatchedRunsMatchSingleRuns) {
  std::vector<tokens> prompts;
  const tokens prefix = random_tokens(90, 11);
  for (int i = 0; i < 6; ++i)
    prompts.push_back(concat(prefix, random_tokens(5 + 13 * i, 100 + i)));
  engine_t single =
      make_engine({.max_running = 1, .max_batch_tokens = 4096, .prefix_caching = false});
  captured ref = run(single, prompts, true, 6);
  engine_t batched = make_engine({.max_running = 6, .max_batch_tokens = 7, .prefix_caching = true});
  captured got = run(batched, prompts, false, 6);
  for (std::uint64_t id = 0; id < prompts.size(); ++id) {
    EXPECT_EQ(got.records[id].output, ref.records[id].output) << "request " << id;
    for (std::size_t t = 0; t < ref.logits.at(id).size(); ++t)
      EXPECT_LE(max_diff(got.logits.at(id)[t], ref.logits.at(id)[t]),
                1e-3 * max_abs(ref.logits.at(id)[t]));  // as in CacheHitGivesTheLogits...
  }
}

TEST(MiniEngine, ConcurrencyCapHolds) {
  engine_t e = make_engine({.max_running = 3, .max_batch_tokens = 64});
  std::size_t most = 0;
  e.on_token = [&](const mini_engine::request_record&, kvkit::token_id) {
    most = std::max(most, e.running());
  };
  for (int i = 0; i < 10; ++i)
    e.submit(request{.prompt = random_tokens(40, 200 + i), .max_new_tokens = 5, .options = {}});
  ASSERT_TRUE(e.run_until_idle().ok());
  EXPECT_EQ(most, 3u);
  ASSERT_EQ(e.finished().size(), 10u);
  for (const auto& r : e.finished()) {
    EXPECT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(r.output.size(), 5u);
    EXPECT_EQ(r.prompt_tokens, 40u);
    EXPECT_LE(r.arrival_s, r.admitted_s);
    EXPECT_LT(r.admitted_s, r.first_token_s);
    EXPECT_LE(r.first_token_s, r.finish_s);
  }
}

TEST(MiniEngine, ConcurrentRequestsWaitForASharedPrefixInsteadOfRecomputingIt) {
  const tokens prefix = random_tokens(256, 5);
  std::vector<tokens> prompts;
  for (int i = 0; i < 8; ++i)
    prompts.push_back(concat(prefix, random_tokens(30, 300 + i)));
  for (bool wait : {true, false}) {
    engine_t e = make_engine(
        {.max_running = 8, .max_batch_tokens = 128, .wait_for_shared_prefix = wait}, 16, 512);
    captured c = run(e, prompts, false);
    std::uint32_t hits = 0;
    for (const auto& r : c.records)
      hits += r.cached_tokens == 256 ? 1 : 0;
    if (wait) {
      EXPECT_EQ(hits, 7u);
      EXPECT_GT(e.stats().deferred, 0u);
      EXPECT_EQ(e.stats().prefill_tokens, 256u + 8 * 30);
    } else {
      EXPECT_EQ(hits, 0u);  // all admitted at once, before anything was committed
      EXPECT_EQ(e.stats().prefill_tokens, 8u * 286);
    }
  }
}

TEST(MiniEngine, CachingOffLeavesNoCachedBlocks) {
  engine_t e = make_engine({.prefix_caching = false});
  const tokens p = random_tokens(100, 3);
  captured c = run(e, {p, p, p}, true);
  for (const auto& r : c.records)
    EXPECT_EQ(r.cached_tokens, 0u);
  const kvkit::cache_stats s = e.cache().stats();
  EXPECT_EQ(s.blocks_cached, 0u);
  EXPECT_EQ(s.blocks_in_use(), 0u);
  EXPECT_TRUE(e.cache().check_invariants().ok());
}

TEST(MiniEngine, RequestsThatCannotBeServedFailAloneAndNameTheReason) {
  engine_t e = make_engine({}, 16, 8);  // 128 tokens of K/V in all
  e.submit(request{.prompt = random_tokens(300, 1), .max_new_tokens = 2, .options = {}});
  e.submit(request{.prompt = {}, .max_new_tokens = 2, .options = {}});
  e.submit(request{.prompt = random_tokens(20, 2), .max_new_tokens = 0, .options = {}});
  e.submit(request{.prompt = random_tokens(30, 3), .max_new_tokens = 2, .options = {}});
  e.submit(request{.prompt = random_tokens(120, 4), .max_new_tokens = 40, .options = {}});
  ASSERT_TRUE(e.run_until_idle().ok());
  std::map<std::uint64_t, mini_engine::request_record> by_id;
  for (const auto& r : e.finished())
    by_id[r.id] = r;
  ASSERT_EQ(by_id.size(), 5u);
  EXPECT_NE(by_id[0].error.find("out of blocks"), std::string::npos) << by_id[0].error;
  EXPECT_NE(by_id[1].error.find("max_new_tokens >= 1"), std::string::npos) << by_id[1].error;
  EXPECT_NE(by_id[2].error.find("max_new_tokens >= 1"), std::string::npos) << by_id[2].error;
  EXPECT_TRUE(by_id[3].error.empty()) << by_id[3].error;
  EXPECT_EQ(by_id[3].output.size(), 2u);
  // 120 prompt tokens + 40 generated need 10 blocks: it stops when the pool runs out.
  EXPECT_NE(by_id[4].error.find("stopped after"), std::string::npos) << by_id[4].error;
  EXPECT_FALSE(by_id[4].output.empty());
  EXPECT_TRUE(e.cache().check_invariants().ok());
  EXPECT_EQ(e.cache().stats().blocks_referenced, 0u);
}

TEST(MiniEngine, CheckRejectsAMismatchedCache) {
  const kvkit::kv_layout layout{
      .num_layers = 3, .num_kv_heads = 2, .head_dim = 32, .block_size = 16, .num_blocks = 8};
  auto cache = cache_t::create({}, *backend_t::storage_type::create(layout));
  engine_t e(std::move(*cache), backend_t(weights()), {});
  const kvkit::status s = e.check();
  EXPECT_EQ(s.code(), kvkit::errc::invalid_config);
  EXPECT_NE(s.message().find("must match the model's (2, 2, 32)"), std::string::npos)
      << s.message();
  engine_t z = make_engine({.max_running = 0});
  EXPECT_EQ(z.check().code(), kvkit::errc::invalid_config);
  model_config bad = model_config::tiny();
  bad.num_kv_heads = 3;
  EXPECT_NE(model_weights::random(bad).error().message().find("multiple of num_kv_heads"),
            std::string::npos);
}

}  // namespace
