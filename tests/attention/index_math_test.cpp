// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The index arithmetic of <kvkit/index_math.hpp> and the merge of <kvkit/attention_merge.hpp>,
// which the CUDA kernels, paged_kv, kv_layout, the CPU reference and the engine backends share,
// against independent naive models written here: counters walked token by token, memory filled
// in order by nested loops, masks built from distances to the end of the sequence, softmax over
// all scores at once. Page sizes 1, 5, 16, 64; GQA groups 1-16 (3, 6 and 12 included); the last
// partial page; kv_len 0 and 1; an understated max_kv_len; forced split counts.
#include <kvkit/attention_merge.hpp>
#include <kvkit/index_math.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/paged_kv.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {

using namespace kvkit;

constexpr std::uint32_t page_sizes[] = {1, 5, 16, 64};

// ---- slots ---------------------------------------------------------------------------------

TEST(IndexMath, TokenSlotsWalkThePagesInOrder) {
  for (std::uint32_t bs : page_sizes) {
    // kv_len 0, 1, exactly full pages, and a last partial page.
    for (std::uint32_t kv_len : {0u, 1u, bs, 3 * bs, 3 * bs + 1, 7 * bs + bs / 2 + 1}) {
      SCOPED_TRACE("page " + std::to_string(bs) + " kv_len " + std::to_string(kv_len));
      std::vector<std::uint32_t> pages(pages_for(kv_len, bs));
      for (std::size_t i = 0; i < pages.size(); ++i)
        pages[i] = static_cast<std::uint32_t>(1000 + 37 * i % 101);  // any page ids
      // Naive: a page counter and a position counter that wraps at the page size.
      std::uint32_t page_index = 0, position = 0, pages_touched = 0;
      for (std::uint32_t t = 0; t < kv_len; ++t) {
        if (position == 0)
          ++pages_touched;
        const token_slot s = token_slot_of(t, bs);
        ASSERT_EQ(s.page_index, page_index) << "token " << t;
        ASSERT_EQ(s.position, position) << "token " << t;
        const std::int64_t id = token_slot_id(pages.data(), t, bs);
        ASSERT_EQ(id, std::int64_t{pages[page_index]} * bs + position);
        const page_position back = page_position_of(id, bs);
        ASSERT_EQ(back.page, pages[page_index]);
        ASSERT_EQ(back.position, position);
        if (++position == bs) {
          position = 0;
          ++page_index;
        }
      }
      EXPECT_EQ(pages_for(kv_len, bs), pages_touched);
    }
  }
}

TEST(IndexMath, SlotsOutsideThePoolAreSkipped) {
  EXPECT_FALSE(slot_in_pool(-1, 16, 4));
  EXPECT_TRUE(slot_in_pool(0, 16, 4));
  EXPECT_TRUE(slot_in_pool(63, 16, 4));
  EXPECT_FALSE(slot_in_pool(64, 16, 4));
  EXPECT_TRUE(slot_in_pool(std::int64_t{5} * 4'000'000'000LL - 1, 5, 4'000'000'000u));
  // page * block_size past 2^32 stays exact.
  EXPECT_EQ(slot_id(4'000'000'000u, 3, 64), std::int64_t{4'000'000'000} * 64 + 3);
  EXPECT_EQ(page_position_of(std::int64_t{4'000'000'000} * 64 + 3, 64).page, 4'000'000'000u);
}

// ---- element offsets ------------------------------------------------------------------------

// Naive: fills a pool in memory order with nested loops and records where each
// (page, position, head) vector starts.
struct naive_pool {
  std::uint32_t pages, bs, heads, dim;
  bool hnd;
  std::vector<std::size_t> start;  // [page][position][head]
  naive_pool(std::uint32_t p, std::uint32_t b, std::uint32_t h, std::uint32_t d, bool head_major)
      : pages(p), bs(b), heads(h), dim(d), hnd(head_major), start(std::size_t{p} * b * h) {
    std::size_t next = 0;
    for (std::uint32_t pg = 0; pg < pages; ++pg) {
      for (std::uint32_t outer = 0; outer < (hnd ? heads : bs); ++outer) {
        for (std::uint32_t inner = 0; inner < (hnd ? bs : heads); ++inner) {
          const std::uint32_t pos = hnd ? inner : outer;
          const std::uint32_t head = hnd ? outer : inner;
          start[(std::size_t{pg} * bs + pos) * heads + head] = next;
          next += dim;
        }
      }
    }
  }
  std::size_t at(std::uint32_t pg, std::uint32_t pos, std::uint32_t head) const {
    return start[(std::size_t{pg} * bs + pos) * heads + head];
  }
};

TEST(IndexMath, PageOffsetsMatchMemoryOrderNhdAndHnd) {
  for (std::uint32_t bs : page_sizes) {
    for (std::uint32_t heads : {1u, 3u, 8u}) {
      for (std::uint32_t dim : {64u, 128u}) {
        for (bool hnd : {false, true}) {
          const naive_pool naive(3, bs, heads, dim, hnd);
          paged_kv<const float> view;
          view.block_size = bs;
          view.num_kv_heads = heads;
          view.head_dim = dim;
          view.order = hnd ? kv_order::hnd : kv_order::nhd;
          kv_layout layout;
          layout.num_layers = 2;
          layout.num_kv_heads = heads;
          layout.head_dim = dim;
          layout.block_size = bs;
          layout.num_blocks = 3;
          layout.order = view.order;
          for (std::uint32_t pg = 0; pg < 3; ++pg) {
            for (std::uint32_t pos = 0; pos < bs; ++pos) {
              for (std::uint32_t h = 0; h < heads; ++h) {
                const std::size_t want = naive.at(pg, pos, h);
                ASSERT_EQ(page_offset(pg, pos, h, bs, heads, dim, hnd), want)
                    << "page " << bs << " heads " << heads << " hnd " << hnd;
                ASSERT_EQ(view.offset(pg, pos, h), want);
                // The storage layout: layer 1's V pool starts after three pools of 3 pages.
                ASSERT_EQ(layout.offset(1, 1, pg, pos, h, 5),
                          3 * naive.start.size() * dim + want + 5);
              }
            }
          }
        }
      }
    }
  }
  // Offsets of pools past 2^32 elements are exact (64-bit arithmetic).
  EXPECT_EQ(page_offset(70'000, 63, 7, 64, 8, 128, false),
            std::size_t{70'000} * 64 * 8 * 128 + (63 * 8 + 7) * 128);
  EXPECT_GT(page_offset(70'000, 0, 0, 64, 8, 128, true), std::size_t{1} << 32);
}

TEST(IndexMath, PagedViewFindsEveryTokenOfEverySequence) {
  std::mt19937 rng(3);
  for (std::uint32_t bs : page_sizes) {
    const std::vector<std::uint32_t> lens{0, 1, bs, 2 * bs + 1, 5 * bs - 1};
    std::vector<std::uint32_t> indptr{0}, indices;
    for (std::uint32_t len : lens) {
      for (std::uint32_t i = 0; i < pages_for(len, bs); ++i)
        indices.push_back(static_cast<std::uint32_t>(indices.size()));
      indptr.push_back(static_cast<std::uint32_t>(indices.size()));
    }
    std::shuffle(indices.begin(), indices.end(), rng);
    paged_kv<const float> view;
    view.indptr = indptr.data();
    view.indices = indices.data();
    view.kv_len = lens.data();
    view.batch = static_cast<std::uint32_t>(lens.size());
    view.block_size = bs;
    view.num_kv_heads = 2;
    view.head_dim = 8;
    for (std::uint32_t b = 0; b < view.batch; ++b) {
      std::uint32_t page_index = 0, position = 0;
      for (std::uint32_t t = 0; t < lens[b]; ++t) {
        const std::uint32_t page = indices[indptr[b] + page_index];
        ASSERT_EQ(view.token_offset(b, t, 1), (std::size_t{page} * bs + position) * 16 + 8);
        if (++position == bs) {
          position = 0;
          ++page_index;
        }
      }
    }
  }
}

// ---- split-KV bounds -------------------------------------------------------------------------

// Checks that the splits cut [0, kv_len) into consecutive, disjoint ranges, every split but the
// last at most split_tokens long, by walking the tokens with a split counter.
void check_splits(std::uint32_t kv_len, std::uint32_t num_splits, std::uint32_t split_tokens) {
  SCOPED_TRACE("kv_len " + std::to_string(kv_len) + " splits " + std::to_string(num_splits) +
               " x " + std::to_string(split_tokens));
  std::vector<std::uint32_t> owner(kv_len, ~0u);
  std::uint32_t expect_begin = 0;
  for (std::uint32_t s = 0; s < num_splits; ++s) {
    const token_range r = split_range(s, num_splits, split_tokens, kv_len);
    ASSERT_LE(r.begin, r.end);
    ASSERT_LE(r.end, kv_len);
    if (r.begin < r.end) {
      ASSERT_EQ(r.begin, expect_begin) << "split " << s << " leaves a gap or overlaps";
      expect_begin = r.end;
    }
    if (s + 1 < num_splits) {
      ASSERT_LE(r.end - r.begin, split_tokens) << "split " << s;
    }
    for (std::uint32_t t = r.begin; t < r.end; ++t) {
      ASSERT_EQ(owner[t], ~0u) << "token " << t << " in two splits";
      owner[t] = s;
    }
  }
  EXPECT_EQ(expect_begin, kv_len) << "the splits do not reach the end";
  // Naive assignment: a counter that moves to the next split every split_tokens tokens and
  // stays in the last split however long the sequence is.
  std::uint32_t split = 0, in_split = 0;
  for (std::uint32_t t = 0; t < kv_len; ++t) {
    if (num_splits > 1 && in_split == split_tokens && split + 1 < num_splits) {
      ++split;
      in_split = 0;
    }
    ASSERT_EQ(owner[t], split) << "token " << t;
    ++in_split;
  }
}

TEST(IndexMath, SplitsCoverEveryTokenOnce) {
  for (std::uint32_t kv_len : {0u, 1u, 2u, 63u, 64u, 65u, 255u, 256u, 1000u, 1500u, 4097u}) {
    check_splits(kv_len, 1, 0);
    for (std::uint32_t splits : {2u, 3u, 5u, 7u, 16u}) {
      // Planned for the true length, for an understated bound (the last split runs on), and
      // for an overstated one (trailing splits are empty).
      for (std::uint32_t bound : {std::max(kv_len, 1u), std::max(kv_len / 3, 1u), kv_len * 4 + 9}) {
        const std::uint32_t tokens = split_tokens_for(bound, splits, 64);
        EXPECT_EQ(tokens % 64, 0u);
        EXPECT_GE(std::uint64_t{tokens} * splits, bound);
        check_splits(kv_len, splits, tokens);
        // The auto planner's split count for that bound, and a forced count kept as given.
        check_splits(kv_len, ceil_div(bound, tokens), tokens);
      }
    }
  }
}

TEST(IndexMath, SplitTokensAreTheSmallestAlignedCover) {
  for (std::uint32_t bound : {1u, 64u, 65u, 1000u, 32768u}) {
    for (std::uint32_t splits : {1u, 2u, 3u, 8u, 100u}) {
      const std::uint32_t t = split_tokens_for(bound, splits, 64);
      EXPECT_GE(std::uint64_t{t} * splits, bound);
      // One granule less would not cover the bound, or would be zero.
      EXPECT_TRUE(t == 64 || std::uint64_t{t - 64} * splits < bound);
    }
  }
}

// ---- GQA packing ------------------------------------------------------------------------------

TEST(IndexMath, GqaRowsAndHeadChunks) {
  for (std::uint32_t group = 1; group <= 16; ++group) {
    for (std::uint32_t kv_heads : {1u, 2u, 3u}) {
      const std::uint32_t qo_heads = kv_heads * group;
      EXPECT_EQ(gqa_group(qo_heads, kv_heads), group);
      // Naive: query heads assigned to K/V heads by walking them in order.
      std::uint32_t kvh = 0, in_group = 0;
      for (std::uint32_t h = 0; h < qo_heads; ++h) {
        ASSERT_EQ(kv_head_of(h, group), kvh) << "group " << group << " head " << h;
        if (++in_group == group) {
          in_group = 0;
          ++kvh;
        }
      }
      // Prefill rows: (query, head of the group), head fastest.
      for (std::uint32_t k = 0; k < kv_heads; ++k) {
        std::uint32_t row = 0;
        for (std::uint32_t q = 0; q < 9; ++q) {
          for (std::uint32_t g = 0; g < group; ++g, ++row) {
            const packed_row pr = unpack_row(row, k, group);
            ASSERT_EQ(pr.query, q);
            ASSERT_EQ(pr.qo_head, k * group + g);
            ASSERT_EQ(kv_head_of(pr.qo_head, group), k);
            ASSERT_EQ(qo_row(100 + q, pr.qo_head, qo_heads),
                      (100 + std::uint64_t{q}) * qo_heads + k * group + g);
          }
        }
        // Decode chunks of at most 8 heads: every head of the group in exactly one chunk.
        for (std::uint32_t per : {8u, 3u}) {
          std::vector<int> seen(group, 0);
          const std::uint32_t chunks = head_chunks(group, per);
          std::uint32_t expected_first = k * group;
          for (std::uint32_t c = 0; c < chunks; ++c) {
            const head_span hs = head_chunk(k, c, group, per);
            ASSERT_GE(hs.count, 1u);
            ASSERT_LE(hs.count, per);
            ASSERT_EQ(hs.first, expected_first);
            expected_first += hs.count;
            for (std::uint32_t i = 0; i < hs.count; ++i)
              ++seen[hs.first + i - k * group];
          }
          EXPECT_EQ(expected_first, (k + 1) * group);
          EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
          EXPECT_EQ(chunks, (group + per - 1) / per);
        }
      }
    }
  }
  EXPECT_EQ(head_chunks(12, 8), 2u);
  EXPECT_EQ(head_chunk(0, 1, 12, 8).count, 4u);
  EXPECT_EQ(head_chunk(0, 1, 6, 8).count, 0u);  // past the group: nothing
}

// ---- causal limit after a cached prefix ---------------------------------------------------------

TEST(IndexMath, CausalLimitFollowsTheCachedPrefix) {
  for (std::uint32_t kv_len : {0u, 1u, 2u, 17u, 64u, 300u}) {
    for (std::uint32_t n : {0u, 1u, 2u, 5u, 17u, 64u}) {
      if (n > kv_len)
        continue;
      for (std::uint32_t i = 0; i < n; ++i) {
        // Naive: key t is visible to query i when it is at least as far from the end of the
        // sequence as the query is (the mask aligned bottom-right).
        std::uint32_t visible = 0, first_masked = kv_len;
        for (std::uint32_t t = 0; t < kv_len; ++t) {
          const std::uint32_t key_from_end = kv_len - 1 - t;
          const std::uint32_t query_from_end = n - 1 - i;
          if (key_from_end >= query_from_end) {
            ++visible;
            ASSERT_EQ(first_masked, kv_len) << "visible keys are not a prefix";
          } else if (first_masked == kv_len) {
            first_masked = t;
          }
        }
        ASSERT_EQ(key_limit(kv_len, n, i, true), visible)
            << "kv_len " << kv_len << " n " << n << " i " << i;
        ASSERT_EQ(key_limit(kv_len, n, i, false), kv_len);
        ASSERT_EQ(query_position(kv_len, n, i) + 1, visible);
        ASSERT_EQ(key_limit(kv_len, n, i, true), first_masked == kv_len ? kv_len : first_masked);
      }
    }
  }
  // Inconsistent input (more queries than tokens) never wraps around.
  EXPECT_EQ(key_limit(3, 5, 0, true), 0u);
  EXPECT_EQ(key_limit(3, 5, 1, true), 0u);
  EXPECT_EQ(key_limit(3, 5, 2, true), 1u);
  EXPECT_EQ(key_limit(0, 1, 0, true), 0u);
  EXPECT_EQ(key_limit(4'000'000'000u, 1, 0, true), 4'000'000'000u);
}

// ---- the log-sum-exp merge ----------------------------------------------------------------------

// Merges the states of random disjoint key sets in a random order and compares with softmax
// over all scores at once.
TEST(AttentionMerge, MergingPartialStatesEqualsSoftmaxOverAllKeys) {
  std::mt19937 rng(11);
  std::normal_distribution<double> nd(0.0, 3.0);
  for (int trial = 0; trial < 200; ++trial) {
    const int keys = 1 + trial % 37;
    std::vector<double> s(keys), v(keys);
    for (int j = 0; j < keys; ++j) {
      s[j] = nd(rng) * (trial % 5 == 0 ? 20.0 : 1.0);  // also very peaked distributions
      v[j] = nd(rng);
    }
    // Direct: softmax over all keys (natural log), output and lse.
    const double mx = *std::max_element(s.begin(), s.end());
    double z = 0, o = 0;
    for (int j = 0; j < keys; ++j) {
      z += std::exp(s[j] - mx);
      o += std::exp(s[j] - mx) * v[j];
    }
    const double want_o = o / z, want_lse = mx + std::log(z);
    // Partial states over consecutive runs of keys (some runs empty), merged in order.
    double m = -std::numeric_limits<double>::infinity(), d = 0, a = 0;
    int j = 0;
    while (j < keys) {
      const int len = static_cast<int>(rng() % 5);  // 0: an empty range, merged as well
      double pm = -std::numeric_limits<double>::infinity(), pd = 0, pa = 0;
      for (int k = j; k < std::min(keys, j + len); ++k) {
        const merge_scales<double> f = merge_factors(pm, s[k] * log2_e);
        pd = pd * f.scale_a + f.scale_b;
        pa = pa * f.scale_a + v[k] * f.scale_b;
        pm = f.max;
      }
      const merge_scales<double> f = merge_factors(m, pm);
      d = d * f.scale_a + pd * f.scale_b;
      a = a * f.scale_a + pa * f.scale_b;
      m = f.max;
      j += len;
    }
    EXPECT_NEAR(a / d, want_o, 1e-9 * (1 + std::fabs(want_o)));
    EXPECT_NEAR(state_lse2(m, d) * ln_2, want_lse, 1e-9 * (1 + std::fabs(want_lse)));
  }
}

TEST(AttentionMerge, EmptyStatesWeighNothing) {
  const double inf = std::numeric_limits<double>::infinity();
  const merge_scales<double> both = merge_factors(-inf, -inf);
  EXPECT_EQ(both.max, -inf);
  EXPECT_EQ(both.ref, 0.0);
  EXPECT_EQ(both.scale_a, 0.0);
  EXPECT_EQ(both.scale_b, 0.0);
  EXPECT_EQ(state_lse2(both.max, 0.0), -inf);
  const merge_scales<float> one = merge_factors(-std::numeric_limits<float>::infinity(), 3.5f);
  EXPECT_EQ(one.max, 3.5f);
  EXPECT_EQ(one.scale_a, 0.0f);
  EXPECT_EQ(one.scale_b, 1.0f);
  EXPECT_FALSE(std::isnan(exp2_of(-std::numeric_limits<float>::infinity() - one.ref)));
}

}  // namespace
