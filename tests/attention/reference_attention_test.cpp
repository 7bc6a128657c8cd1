// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The CPU reference attention against an independent dense implementation, over shuffled pages,
// both memory orders, several page sizes and GQA groups; decode, LSE merge, and a prefix hit that
// prefills only the suffix giving the same output as prefilling the whole prompt.
#include <kvkit/kvkit.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace {

using kvkit::kv_order;

struct dense_case {
  std::uint32_t kv_heads, qo_heads, head_dim;
  std::vector<std::uint32_t> kv_len;  // per sequence
  std::vector<std::uint32_t> qo_len;  // per sequence
  // dense[b][t][h][x]
  std::vector<std::vector<float>> k, v;
  std::vector<float> q;  // [total_q][qo_heads][head_dim]
};

dense_case make_case(std::mt19937& rng, std::uint32_t kv_heads, std::uint32_t group,
                     std::uint32_t head_dim, std::vector<std::uint32_t> kv_len,
                     std::vector<std::uint32_t> qo_len) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  dense_case c{kv_heads, kv_heads * group, head_dim, std::move(kv_len), std::move(qo_len), {}, {},
               {}};
  for (std::uint32_t len : c.kv_len) {
    std::vector<float> k(std::size_t{len} * kv_heads * head_dim), v(k.size());
    for (auto& x : k)
      x = n(rng);
    for (auto& x : v)
      x = n(rng);
    c.k.push_back(std::move(k));
    c.v.push_back(std::move(v));
  }
  const std::uint32_t total_q = std::accumulate(c.qo_len.begin(), c.qo_len.end(), 0u);
  c.q.resize(std::size_t{total_q} * c.qo_heads * head_dim);
  for (auto& x : c.q)
    x = n(rng);
  return c;
}

// Independent dense attention: softmax in float with a separate max pass.
std::vector<float> dense_attention(const dense_case& c, bool causal) {
  std::vector<float> out(c.q.size());
  const std::uint32_t group = c.qo_heads / c.kv_heads;
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  std::uint32_t row = 0;
  for (std::size_t b = 0; b < c.kv_len.size(); ++b) {
    for (std::uint32_t i = 0; i < c.qo_len[b]; ++i, ++row) {
      const std::uint32_t pos = c.kv_len[b] - c.qo_len[b] + i;
      const std::uint32_t visible = causal ? pos + 1 : c.kv_len[b];
      for (std::uint32_t h = 0; h < c.qo_heads; ++h) {
        const float* qv = &c.q[(std::size_t{row} * c.qo_heads + h) * c.head_dim];
        const std::uint32_t kh = h / group;
        std::vector<float> s(visible);
        for (std::uint32_t t = 0; t < visible; ++t) {
          const float* kt = &c.k[b][(std::size_t{t} * c.kv_heads + kh) * c.head_dim];
          float dot = 0;
          for (std::uint32_t x = 0; x < c.head_dim; ++x)
            dot += qv[x] * kt[x];
          s[t] = dot * scale;
        }
        const float m = *std::max_element(s.begin(), s.end());
        float z = 0;
        for (auto& x : s)
          z += (x = std::exp(x - m));
        float* o = &out[(std::size_t{row} * c.qo_heads + h) * c.head_dim];
        for (std::uint32_t t = 0; t < visible; ++t) {
          const float* vt = &c.v[b][(std::size_t{t} * c.kv_heads + kh) * c.head_dim];
          for (std::uint32_t x = 0; x < c.head_dim; ++x)
            o[x] += s[t] / z * vt[x];
        }
      }
    }
  }
  return out;
}

// Scatters a dense case into a paged pool with shuffled page ids.
struct paged_pool {
  std::vector<float> k, v;
  std::vector<std::uint32_t> indptr, indices;
  kvkit::paged_kv<const float> view;
};

paged_pool page_case(const dense_case& c, std::uint32_t block_size, kv_order order,
                     std::mt19937& rng) {
  paged_pool p;
  std::uint32_t pages = 0;
  p.indptr.push_back(0);
  for (std::uint32_t len : c.kv_len) {
    pages += (len + block_size - 1) / block_size;
    p.indptr.push_back(pages);
  }
  std::vector<std::uint32_t> ids(pages + 3);  // a few unused pages too
  std::iota(ids.begin(), ids.end(), 0u);
  std::shuffle(ids.begin(), ids.end(), rng);
  p.indices.assign(ids.begin(), ids.begin() + pages);
  const std::size_t page_elems = std::size_t{block_size} * c.kv_heads * c.head_dim;
  p.k.assign(ids.size() * page_elems, std::nanf(""));  // unused slots poison the result
  p.v.assign(p.k.size(), std::nanf(""));
  kvkit::paged_kv<float> w;
  w.k = p.k.data();
  w.v = p.v.data();
  w.indptr = p.indptr.data();
  w.indices = p.indices.data();
  w.kv_len = c.kv_len.data();
  w.batch = static_cast<std::uint32_t>(c.kv_len.size());
  w.block_size = block_size;
  w.num_kv_heads = c.kv_heads;
  w.head_dim = c.head_dim;
  w.order = order;
  for (std::uint32_t b = 0; b < w.batch; ++b) {
    for (std::uint32_t t = 0; t < c.kv_len[b]; ++t) {
      for (std::uint32_t h = 0; h < c.kv_heads; ++h) {
        const std::size_t src = (std::size_t{t} * c.kv_heads + h) * c.head_dim;
        std::copy_n(&c.k[b][src], c.head_dim, w.key(b, t, h));
        std::copy_n(&c.v[b][src], c.head_dim, w.value(b, t, h));
      }
    }
  }
  p.view = {w.k,     w.v,          w.indptr,       w.indices,  w.kv_len,
            w.batch, w.block_size, w.num_kv_heads, w.head_dim, w.order};
  return p;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

std::vector<std::uint32_t> indptr_of(const std::vector<std::uint32_t>& lens) {
  std::vector<std::uint32_t> p{0};
  for (auto l : lens)
    p.push_back(p.back() + l);
  return p;
}

TEST(ReferenceAttention, MatchesDenseAttentionOverShuffledPages) {
  std::mt19937 rng(7);
  int cases = 0;
  for (kv_order order : {kv_order::nhd, kv_order::hnd}) {
    for (std::uint32_t block_size : {1u, 16u, 64u}) {
      for (std::uint32_t group : {1u, 4u, 8u}) {
        for (bool causal : {true, false}) {
          const dense_case c = make_case(rng, 2, group, 32, {1, 37, 130, 64}, {1, 5, 130, 17});
          paged_pool p = page_case(c, block_size, order, rng);
          const auto qo = indptr_of(c.qo_len);
          kvkit::attention_problem prob{qo.data(), c.qo_heads, 0.0f, causal};
          std::vector<float> out(c.q.size());
          std::vector<float> lse(c.q.size() / c.head_dim);
          ASSERT_TRUE(kvkit::reference_prefill(p.view, prob, c.q.data(), out.data(), lse.data()));
          const auto want = dense_attention(c, causal);
          EXPECT_LT(max_abs_diff(out, want), 2e-5f)
              << "order " << to_string(order) << " page " << block_size << " group " << group
              << " causal " << causal;
          for (float x : lse)
            EXPECT_TRUE(std::isfinite(x));
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 36);
}

TEST(ReferenceAttention, DecodeIsTheLastRowOfPrefill) {
  std::mt19937 rng(11);
  const dense_case c = make_case(rng, 2, 4, 16, {3, 50, 17}, {1, 1, 1});
  paged_pool p = page_case(c, 16, kv_order::nhd, rng);
  std::vector<float> out(c.q.size()), lse(c.q.size() / c.head_dim);
  ASSERT_TRUE(kvkit::reference_decode(p.view, c.qo_heads, c.q.data(), out.data(), lse.data()));
  EXPECT_LT(max_abs_diff(out, dense_attention(c, true)), 2e-5f);
}

TEST(ReferenceAttention, MergingTwoHalvesEqualsTheWhole) {
  std::mt19937 rng(3);
  // Non-causal attention of 4 queries over 90 keys, split at 40 keys.
  const dense_case whole = make_case(rng, 1, 2, 16, {90}, {4});
  dense_case first = whole, second = whole;
  first.kv_len = {40};
  first.k[0].resize(40u * 16);
  first.v[0].resize(40u * 16);
  second.kv_len = {50};
  second.k[0].assign(whole.k[0].begin() + 40 * 16, whole.k[0].end());
  second.v[0].assign(whole.v[0].begin() + 40 * 16, whole.v[0].end());
  const auto qo = indptr_of(whole.qo_len);
  kvkit::attention_problem prob{qo.data(), whole.qo_heads, 0.0f, false};
  const std::size_t rows = whole.q.size() / whole.head_dim;
  std::vector<float> oa(whole.q.size()), ob(oa.size()), la(rows), lb(rows), ow(oa.size()), lw(rows),
      om(oa.size()), lm(rows);
  paged_pool pa = page_case(first, 16, kv_order::hnd, rng);
  paged_pool pb = page_case(second, 16, kv_order::hnd, rng);
  paged_pool pw = page_case(whole, 16, kv_order::hnd, rng);
  ASSERT_TRUE(kvkit::reference_prefill(pa.view, prob, whole.q.data(), oa.data(), la.data()));
  ASSERT_TRUE(kvkit::reference_prefill(pb.view, prob, whole.q.data(), ob.data(), lb.data()));
  ASSERT_TRUE(kvkit::reference_prefill(pw.view, prob, whole.q.data(), ow.data(), lw.data()));
  kvkit::reference_merge_states(oa.data(), la.data(), ob.data(), lb.data(), rows, whole.head_dim,
                                om.data(), lm.data());
  EXPECT_LT(max_abs_diff(om, ow), 1e-5f);
  EXPECT_LT(max_abs_diff(lm, lw), 1e-5f);
  // An empty range merges as the identity.
  std::vector<float> empty_lse(rows, -INFINITY), same(oa.size()), same_lse(rows);
  kvkit::reference_merge_states(oa.data(), la.data(), ob.data(), empty_lse.data(), rows,
                                whole.head_dim, same.data(), same_lse.data());
  EXPECT_EQ(same, oa);
  EXPECT_EQ(same_lse, la);
}

TEST(ReferenceAttention, RejectsInconsistentShapes) {
  std::mt19937 rng(5);
  const dense_case c = make_case(rng, 2, 1, 8, {4}, {4});
  paged_pool p = page_case(c, 4, kv_order::nhd, rng);
  std::vector<float> out(c.q.size());
  const std::vector<std::uint32_t> qo{0, 4};
  kvkit::attention_problem bad_heads{qo.data(), 3, 0.0f, true};
  const auto s = kvkit::reference_prefill(p.view, bad_heads, c.q.data(), out.data(), nullptr);
  EXPECT_EQ(s.code(), kvkit::errc::invalid_argument);
  EXPECT_NE(s.message().find("multiple of num_kv_heads"), std::string::npos) << s.message();
  const std::vector<std::uint32_t> too_many{0, 5};
  kvkit::attention_problem bad_q{too_many.data(), 2, 0.0f, true};
  std::vector<float> big(5u * 2 * 8);
  EXPECT_EQ(kvkit::reference_prefill(p.view, bad_q, big.data(), big.data(), nullptr).code(),
            kvkit::errc::invalid_argument);
}

// A prompt whose prefix is cached: prefilling only the suffix over the cached pages gives the
// same output rows as prefilling the whole prompt.
TEST(ReferenceAttention, PrefixHitPrefillEqualsFullPrefill) {
  using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                      kvkit::lru_eviction, kvkit::host_storage<kvkit::bf16>>;
  const std::uint32_t heads = 2, qo_heads = 8, dim = 32, block = 16;
  kvkit::kv_layout layout{.num_layers = 1,
                          .num_kv_heads = heads,
                          .head_dim = dim,
                          .block_size = block,
                          .num_blocks = 64,
                          .type = kvkit::dtype::bf16};
  auto cache =
      cache_t::create({.seed = 1}, std::move(*kvkit::host_storage<kvkit::bf16>::create(layout)))
          .value();
  // K/V and queries of a token are a function of (token, position): what a model computes.
  auto value = [](kvkit::token_id tok, std::uint32_t pos, std::uint32_t i) {
    std::mt19937 g(static_cast<std::uint32_t>(tok * 7919 + pos * 104729 + i));
    return std::normal_distribution<float>(0, 1)(g);
  };
  auto write_kv = [&](kvkit::sequence_id id, std::uint32_t from) {
    auto view = cache.sequence(id).value();
    for (std::uint32_t t = from; t < view.tokens.size(); ++t) {
      for (std::uint32_t h = 0; h < heads; ++h) {
        for (std::uint32_t x = 0; x < dim; ++x) {
          const kvkit::block_id b = view.blocks[t / block];
          cache.storage().at(0, 0, b, t % block, h, x) =
              kvkit::to_bf16(value(view.tokens[t], t, h * dim + x));
          cache.storage().at(0, 1, b, t % block, h, x) =
              kvkit::to_bf16(value(view.tokens[t], t, 9999 + h * dim + x));
        }
      }
    }
  };
  auto attend = [&](kvkit::sequence_id id, std::uint32_t from) {
    auto view = cache.sequence(id).value();
    const auto len = static_cast<std::uint32_t>(view.tokens.size());
    std::vector<float> q(std::size_t{len - from} * qo_heads * dim);
    for (std::uint32_t t = from; t < len; ++t) {
      for (std::uint32_t i = 0; i < qo_heads * dim; ++i) {
        q[(std::size_t{t - from}) * qo_heads * dim + i] = value(view.tokens[t], t, 50000 + i);
      }
    }
    std::vector<std::uint32_t> indices(view.blocks.begin(), view.blocks.end());
    const std::vector<std::uint32_t> indptr{0, static_cast<std::uint32_t>(indices.size())};
    const std::vector<std::uint32_t> kv_len{len};
    const std::vector<std::uint32_t> qo{0, len - from};
    auto kv = kvkit::make_paged_kv(cache.storage().data().data(), layout, 0);
    kv.indptr = indptr.data();
    kv.indices = indices.data();
    kv.kv_len = kv_len.data();
    kv.batch = 1;
    std::vector<float> out(q.size());
    EXPECT_TRUE(kvkit::reference_prefill(kv, {qo.data(), qo_heads, 0.0f, true}, q.data(),
                                         out.data(), nullptr));
    return out;
  };
  std::vector<kvkit::token_id> prompt(200);
  for (std::uint32_t i = 0; i < prompt.size(); ++i)
    prompt[i] = static_cast<kvkit::token_id>(i * 31 % 1000);
  // Full prefill.
  auto first = cache.admit(prompt).value();
  ASSERT_EQ(first.request.cached_tokens, 0u);
  write_kv(first.id, 0);
  const auto full = attend(first.id, 0);
  ASSERT_TRUE(cache.commit(first.id));
  ASSERT_TRUE(cache.finish(first.id));
  // Same prompt again: 192 tokens hit; only the last 8 are computed over cached pages.
  auto second = cache.admit(prompt).value();
  ASSERT_EQ(second.request.cached_tokens, 192u);
  write_kv(second.id, second.request.cached_tokens);
  const auto suffix = attend(second.id, second.request.cached_tokens);
  const std::vector<float> tail(full.end() - static_cast<std::ptrdiff_t>(suffix.size()),
                                full.end());
  EXPECT_EQ(suffix, tail);
}

}  // namespace
