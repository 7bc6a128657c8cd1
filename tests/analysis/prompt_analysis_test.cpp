// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit::analyze_prompts: differential tests against a brute-force O(n^2) pairwise model and
// against a real prefix_cache (hash matcher, unlimited capacity) fed the same prompts in order;
// the findings (a timestamp at the top of a static prompt, unique documents, short prefixes,
// short prompts, low reuse); and the error cases.
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/prompt_analysis.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace {

using kvkit::finding_kind;
using kvkit::token_id;
using prompt_t = std::vector<token_id>;
using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                    kvkit::lru_eviction, kvkit::no_storage>;

// ---- the brute-force model ----------------------------------------------------------------------

std::size_t lcp(const prompt_t& a, const prompt_t& b) {
  std::size_t k = 0;
  while (k < a.size() && k < b.size() && a[k] == b[k])
    ++k;
  return k;
}

struct model_prompt {
  std::size_t divergence = 0;
  std::optional<std::size_t> best;
  std::size_t cacheable = 0;
  std::size_t shared_any = 0;
};

struct model {
  std::vector<model_prompt> prompts;
  std::uint64_t total = 0;
  std::uint64_t cacheable = 0;
  std::size_t without_hit = 0;
  std::size_t common = 0;
  std::uint64_t distinct_blocks = 0;
  std::set<std::tuple<std::size_t, std::size_t, std::size_t>> groups;  // (length, count, first)
};

model brute_force(const std::vector<prompt_t>& ps, std::size_t bs) {
  model m;
  const std::size_t n = ps.size();
  m.prompts.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    model_prompt& r = m.prompts[i];
    for (std::size_t j = 0; j < i; ++j) {
      const std::size_t l = lcp(ps[i], ps[j]);
      if (l > r.divergence) {
        r.divergence = l;
        r.best = j;
      }
    }
    for (std::size_t j = 0; j < n; ++j) {
      if (j != i)
        r.shared_any = std::max(r.shared_any, lcp(ps[i], ps[j]));
    }
    // Whole blocks only, and never the block holding the last token.
    std::size_t blocks = 0;
    while ((blocks + 1) * bs <= r.divergence && (blocks + 1) * bs <= ps[i].size() - 1)
      ++blocks;
    r.cacheable = blocks * bs;
    m.total += ps[i].size();
    m.cacheable += r.cacheable;
    m.without_hit += r.cacheable == 0 ? 1 : 0;
  }
  m.common = ps[0].size();
  for (std::size_t i = 1; i < n; ++i) {
    for (std::size_t j = 0; j < i; ++j)
      m.common = std::min(m.common, lcp(ps[i], ps[j]));
  }
  std::set<prompt_t> blocks;
  for (const prompt_t& p : ps) {
    for (std::size_t k = bs; k <= p.size(); k += bs)
      blocks.insert(prompt_t(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(k)));
  }
  m.distinct_blocks = blocks.size();
  // Groups: prefixes of at least one block shared by >= 2 prompts that do not all go on alike.
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t len = bs; len <= ps[i].size(); ++len) {
      std::vector<std::size_t> members;
      for (std::size_t j = 0; j < n; ++j) {
        if (ps[j].size() >= len &&
            std::equal(ps[i].begin(), ps[i].begin() + static_cast<std::ptrdiff_t>(len),
                       ps[j].begin()))
          members.push_back(j);
      }
      if (members.size() < 2)
        continue;
      // Maximal: a member ends here, or two members differ at the next token.
      bool maximal = false;
      for (const std::size_t j : members)
        maximal = maximal || ps[j].size() == len;
      for (const std::size_t j : members)
        maximal = maximal || ps[j][len] != ps[members[0]][len];
      if (maximal)
        m.groups.emplace(len, members.size(), members.front());
    }
  }
  return m;
}

// ---- random prompt sets -------------------------------------------------------------------------

/// Prompts built from a few shared trunks (cut at random lengths) and random suffixes, with
/// vocabularies of 2 to 5 tokens so that accidental overlaps happen, plus exact repeats and
/// prefixes of earlier prompts.
std::vector<prompt_t> random_set(std::mt19937_64& rng) {
  auto uni = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  const auto vocab = static_cast<token_id>(uni(2, 5));
  auto token = [&] {
    return static_cast<token_id>(uni(0, static_cast<std::size_t>(vocab) - 1));
  };
  std::vector<prompt_t> trunks(uni(1, 4));
  for (prompt_t& t : trunks) {
    t.resize(uni(0, 70));
    for (token_id& x : t)
      x = token();
  }
  std::vector<prompt_t> ps(uni(1, 24));
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const std::size_t kind = uni(0, 9);
    if (i > 0 && kind == 0) {
      ps[i] = ps[uni(0, i - 1)];  // exact repeat
    } else if (i > 0 && kind == 1) {
      const prompt_t& src = ps[uni(0, i - 1)];
      ps[i].assign(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(uni(1, src.size())));
    } else {
      const prompt_t& t = trunks[uni(0, trunks.size() - 1)];
      ps[i].assign(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(uni(0, t.size())));
      const std::size_t extra = uni(ps[i].empty() ? 1 : 0, 40);
      for (std::size_t k = 0; k < extra; ++k)
        ps[i].push_back(token());
    }
  }
  return ps;
}

// ---- (i) against the brute-force model ----------------------------------------------------------

TEST(PromptAnalysis, MatchesBruteForceOnRandomSets) {
  std::mt19937_64 rng(20260611);
  for (int iter = 0; iter < 1500; ++iter) {
    const std::vector<prompt_t> ps = random_set(rng);
    const std::uint32_t bs = 1u << (iter % 5);  // 1, 2, 4, 8, 16
    SCOPED_TRACE("iteration " + std::to_string(iter) + ", block size " + std::to_string(bs));
    const auto r = kvkit::analyze_prompts(ps, bs);
    ASSERT_TRUE(r.ok()) << r.error().message();
    const model m = brute_force(ps, bs);
    ASSERT_EQ(r->prompts.size(), ps.size());
    EXPECT_EQ(r->block_size, bs);
    for (std::size_t i = 0; i < ps.size(); ++i) {
      SCOPED_TRACE("prompt " + std::to_string(i));
      const kvkit::prompt_report& p = r->prompts[i];
      EXPECT_EQ(p.prompt_tokens, ps[i].size());
      EXPECT_EQ(p.first_divergence, m.prompts[i].divergence);
      EXPECT_EQ(p.best_match, m.prompts[i].best);  // the earliest one with the longest prefix
      EXPECT_EQ(p.cacheable_tokens, m.prompts[i].cacheable);
      EXPECT_EQ(p.longest_shared_prefix, m.prompts[i].shared_any);
    }
    EXPECT_EQ(r->total_tokens, m.total);
    EXPECT_EQ(r->cacheable_tokens, m.cacheable);
    EXPECT_DOUBLE_EQ(r->cacheable_fraction,
                     static_cast<double>(m.cacheable) / static_cast<double>(m.total));
    EXPECT_EQ(r->prompts_without_hit, m.without_hit);
    EXPECT_EQ(r->common_prefix_tokens, m.common);
    EXPECT_EQ(r->distinct_blocks, m.distinct_blocks);

    std::set<std::tuple<std::size_t, std::size_t, std::size_t>> groups;
    for (std::size_t g = 0; g < r->groups.size(); ++g) {
      const kvkit::prefix_group& x = r->groups[g];
      groups.emplace(x.shared_tokens, x.prompts, x.first_prompt);
      EXPECT_EQ(x.saved_tokens, x.shared_tokens / bs * bs * (x.prompts - 1));
      if (g > 0) {
        const kvkit::prefix_group& w = r->groups[g - 1];
        // Most saved tokens first, then the longer prefix, then the earlier first prompt.
        const auto key = [](const kvkit::prefix_group& y) {
          return std::make_tuple(~y.saved_tokens, ~y.shared_tokens, y.first_prompt);
        };
        EXPECT_LT(key(w), key(x)) << "groups out of order at " << g;
      }
    }
    EXPECT_EQ(r->groups.size(), groups.size()) << "duplicate groups";
    EXPECT_EQ(groups, m.groups);

    // Every positional match reported satisfies the documented criterion.
    for (std::size_t i = 0; i < ps.size(); ++i) {
      const kvkit::prompt_report& p = r->prompts[i];
      if (!p.positional_match)
        continue;
      const std::size_t j = *p.positional_match;
      const std::size_t d = p.first_divergence;
      ASSERT_LT(j, i);
      EXPECT_TRUE(d < bs || 10 * d < ps[i].size());
      const std::size_t end = std::min(ps[i].size(), ps[j].size());
      std::size_t agree = 0, run = 0, longest_run = 0;
      for (std::size_t q = d; q < end; ++q) {
        run = ps[i][q] == ps[j][q] ? run + 1 : 0;
        agree += ps[i][q] == ps[j][q] ? 1 : 0;
        longest_run = std::max(longest_run, run);
      }
      EXPECT_EQ(p.positional_agreement, agree);
      EXPECT_GE(2 * agree, end - d);
      EXPECT_GE(longest_run, bs);
    }
  }
}

// ---- (ii) against a real prefix cache -----------------------------------------------------------

/// Runs @p ps through a hash-matcher cache that never evicts (admit, commit, finish, in order);
/// returns each admission's cached tokens, and the cached blocks at the end in @p cached_blocks.
std::vector<std::size_t> run_cache(const std::vector<prompt_t>& ps, std::uint32_t bs,
                                   std::uint64_t* cached_blocks) {
  std::uint32_t blocks = 1;
  for (const prompt_t& p : ps)
    blocks += static_cast<std::uint32_t>((p.size() + bs - 1) / bs);
  auto storage = kvkit::no_storage::create(bs, blocks);
  EXPECT_TRUE(storage.ok());
  auto cache = cache_t::create({.seed = 7}, std::move(*storage));
  EXPECT_TRUE(cache.ok()) << cache.error().message();
  std::vector<std::size_t> cached;
  for (const prompt_t& p : ps) {
    auto adm = cache->admit(p);
    EXPECT_TRUE(adm.ok()) << adm.error().message();
    cached.push_back(adm->request.cached_tokens);
    EXPECT_TRUE(cache->commit(adm->id).ok());
    EXPECT_TRUE(cache->finish(adm->id).ok());
  }
  EXPECT_EQ(cache->stats().evictions, 0u);
  EXPECT_TRUE(cache->check_invariants().ok());
  *cached_blocks = cache->stats().blocks_cached;
  return cached;
}

TEST(PromptAnalysis, MatchesPrefixCacheOnRandomSets) {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 600; ++iter) {
    const std::vector<prompt_t> ps = random_set(rng);
    const std::uint32_t bs = 1u << (iter % 5);
    SCOPED_TRACE("iteration " + std::to_string(iter) + ", block size " + std::to_string(bs));
    const auto r = kvkit::analyze_prompts(ps, bs);
    ASSERT_TRUE(r.ok()) << r.error().message();
    std::uint64_t cached_blocks = 0;
    const std::vector<std::size_t> cached = run_cache(ps, bs, &cached_blocks);
    std::uint64_t hit = 0;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      EXPECT_EQ(r->prompts[i].cacheable_tokens, cached[i])
          << "prompt " << i << " (" << ps[i].size() << " tokens)";
      hit += cached[i];
    }
    EXPECT_EQ(r->cacheable_tokens, hit);
    EXPECT_EQ(r->distinct_blocks, cached_blocks);
  }
}

TEST(PromptAnalysis, RepeatedPromptKeepsTheLastTokenToCompute) {
  // 32 tokens = 2 whole blocks of 16: a repeat reuses only the first block (the cache computes
  // the last prompt token itself); 33 tokens: both blocks.
  for (const std::size_t len :
       {std::size_t{32}, std::size_t{33}, std::size_t{16}, std::size_t{17}}) {
    prompt_t p(len);
    for (std::size_t k = 0; k < len; ++k)
      p[k] = static_cast<token_id>(100 + k);
    const std::vector<prompt_t> ps = {p, p};
    const auto r = kvkit::analyze_prompts(ps, 16);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->prompts[1].first_divergence, len);
    EXPECT_EQ(r->prompts[1].best_match, std::optional<std::size_t>(0));
    EXPECT_EQ(r->prompts[1].cacheable_tokens, (len - 1) / 16 * 16) << len;
    std::uint64_t blocks = 0;
    EXPECT_EQ(run_cache(ps, 16, &blocks)[1], (len - 1) / 16 * 16);
  }
}

// ---- (iii) findings -----------------------------------------------------------------------------

const kvkit::finding* find(const kvkit::prompt_set_analysis& a, finding_kind k) {
  for (const kvkit::finding& f : a.findings) {
    if (f.kind == k)
      return &f;
  }
  return nullptr;
}

prompt_t range(token_id first, std::size_t count) {
  prompt_t t(count);
  for (std::size_t k = 0; k < count; ++k)
    t[k] = first + static_cast<token_id>(k);
  return t;
}

prompt_t concat(std::initializer_list<prompt_t> parts) {
  prompt_t out;
  for (const prompt_t& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(PromptAnalysisFindings, TimestampAtTheTopOfAStaticPrompt) {
  // "Current time: <5 tokens>" then a 400-token static system prompt, then a short question.
  const prompt_t header = range(1, 3);
  const prompt_t system = range(1000, 400);
  std::vector<prompt_t> ps;
  for (int r = 0; r < 6; ++r) {
    const prompt_t stamp = {2026, 6, 11, static_cast<token_id>(9 + r), static_cast<token_id>(r)};
    ps.push_back(concat({header, stamp, system, range(5000 + 100 * r, 20)}));
  }
  const auto a = kvkit::analyze_prompts(ps, 16);
  ASSERT_TRUE(a.ok());
  for (std::size_t i = 1; i < ps.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(a->prompts[i].first_divergence, 6u);  // 3 header tokens + 2026, 6, 11
    EXPECT_EQ(a->prompts[i].cacheable_tokens, 0u);
    EXPECT_EQ(a->prompts[i].positional_match, std::optional<std::size_t>(0));
    EXPECT_EQ(a->prompts[i].positional_agreement, 400u);  // the static part; the rest differs
  }
  EXPECT_EQ(a->cacheable_tokens, 0u);
  const kvkit::finding* f = find(*a, finding_kind::dynamic_prefix);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->prompts, (std::vector<std::size_t>{1, 2, 3, 4, 5}));
  EXPECT_NE(f->message.find("5 of 6 prompts"), std::string::npos) << f->message;
  EXPECT_NE(f->message.find("first divergence at token 6"), std::string::npos) << f->message;
  EXPECT_NE(f->message.find("at 400 of the 422 positions from token 6 on, 400 of them in a row "
                            "(tokens 8 to 407)"),
            std::string::npos)
      << f->message;
  EXPECT_NE(f->message.find("first differ at token 6; the varying part lies within tokens 6 to 7"),
            std::string::npos)
      << f->message;
  EXPECT_NE(f->message.find("move it after the static part"), std::string::npos);
  // The other findings do not blame these prompts for being unique or short-prefixed.
  EXPECT_EQ(find(*a, finding_kind::no_reuse), nullptr);
  EXPECT_EQ(find(*a, finding_kind::short_shared_prefix), nullptr);
  EXPECT_EQ(find(*a, finding_kind::short_prompts), nullptr);
}

TEST(PromptAnalysisFindings, TimestampAtPositionZeroAndInterleavedTemplates) {
  // Two templates, interleaved; every prompt starts with its own request id. Each prompt is
  // matched to the earlier prompt of its own template.
  const prompt_t a_sys = range(1000, 200), b_sys = range(3000, 200);
  std::vector<prompt_t> ps;
  for (int r = 0; r < 8; ++r) {
    ps.push_back(concat(
        {{static_cast<token_id>(90000 + r)}, r % 2 ? b_sys : a_sys, range(7000 + 50 * r, 10)}));
  }
  const auto a = kvkit::analyze_prompts(ps, 16);
  ASSERT_TRUE(a.ok());
  for (std::size_t i = 2; i < ps.size(); ++i) {
    EXPECT_EQ(a->prompts[i].first_divergence, 0u);
    EXPECT_EQ(a->prompts[i].positional_match, std::optional<std::size_t>(i % 2)) << i;
  }
  // Prompt 1 (template b) has no earlier prompt of its template: no match.
  EXPECT_FALSE(a->prompts[1].positional_match);
  const kvkit::finding* f = find(*a, finding_kind::dynamic_prefix);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->prompts, (std::vector<std::size_t>{2, 3, 4, 5, 6, 7}));
}

TEST(PromptAnalysisFindings, StaticPrefixThenDynamicSuffixIsWellFormed) {
  // A 300-token static prefix followed by a varying question: every later prompt reuses the
  // whole-block part of the prefix, and no finding fires.
  const prompt_t system = range(1000, 300);
  std::mt19937_64 rng(3);
  std::vector<prompt_t> ps;
  for (int r = 0; r < 10; ++r) {
    prompt_t q(40 + r);
    for (token_id& t : q)
      t = static_cast<token_id>(std::uniform_int_distribution<int>(0, 50)(rng)) + 100 * r;
    q[0] = 20000 + r;  // questions start differently
    ps.push_back(concat({system, q}));
  }
  const auto a = kvkit::analyze_prompts(ps, 16);
  ASSERT_TRUE(a.ok());
  for (std::size_t i = 1; i < ps.size(); ++i) {
    EXPECT_EQ(a->prompts[i].first_divergence, 300u);
    EXPECT_EQ(a->prompts[i].cacheable_tokens, 288u);  // 18 whole blocks of 16
    EXPECT_FALSE(a->prompts[i].positional_match);
  }
  EXPECT_EQ(a->common_prefix_tokens, 300u);
  ASSERT_EQ(a->groups.size(), 1u);
  EXPECT_EQ(a->groups[0].shared_tokens, 300u);
  EXPECT_EQ(a->groups[0].prompts, 10u);
  EXPECT_EQ(a->groups[0].first_prompt, 0u);
  EXPECT_EQ(a->groups[0].saved_tokens, 288u * 9);
  EXPECT_TRUE(a->findings.empty()) << a->findings.front().message;
}

TEST(PromptAnalysisFindings, LongVaryingDocumentAfterAShortHeaderIsNotATimestamp) {
  // A 20-token header (first divergence 20 < 10% of the length) then unrelated documents: near
  // the top, but nothing matches after it, so no dynamic_prefix.
  std::mt19937_64 rng(11);
  std::vector<prompt_t> ps;
  for (int r = 0; r < 5; ++r) {
    prompt_t doc(500);
    for (token_id& t : doc)
      t = std::uniform_int_distribution<token_id>(0, 30000)(rng);
    ps.push_back(concat({range(1, 20), doc}));
  }
  const auto a = kvkit::analyze_prompts(ps, 16);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(find(*a, finding_kind::dynamic_prefix), nullptr);
  const kvkit::finding* s = find(*a, finding_kind::short_shared_prefix);
  ASSERT_NE(s, nullptr);
  EXPECT_NE(s->message.find("is 20 tokens"), std::string::npos) << s->message;
  EXPECT_NE(s->message.find("of which 16 (1 whole blocks) are cacheable"), std::string::npos)
      << s->message;
  const kvkit::finding* l = find(*a, finding_kind::low_reuse);
  ASSERT_NE(l, nullptr);  // 4 block hits for 5 * 32 - 4 distinct blocks
  EXPECT_EQ(a->distinct_blocks, 5u * 32 - 4);
  EXPECT_NE(l->message.find("156 distinct blocks"), std::string::npos) << l->message;
}

TEST(PromptAnalysisFindings, UniqueDocumentsAndShortPrompts) {
  std::vector<prompt_t> ps = {range(1000, 100), range(2000, 100), range(1000, 50),
                              range(3000, 8),   range(4000, 300), range(5000, 16)};
  const auto a = kvkit::analyze_prompts(ps, 16);
  ASSERT_TRUE(a.ok());
  const kvkit::finding* u = find(*a, finding_kind::no_reuse);
  ASSERT_NE(u, nullptr);
  // Prompts 0 and 2 share 50 tokens; 3 and 5 are short prompts (reported as such).
  EXPECT_EQ(u->prompts, (std::vector<std::size_t>{1, 4}));
  EXPECT_NE(u->message.find("2 of 6 prompts share less than one block (16 tokens)"),
            std::string::npos)
      << u->message;
  EXPECT_NE(u->message.find("none of their 400 tokens"), std::string::npos) << u->message;
  const kvkit::finding* s = find(*a, finding_kind::short_prompts);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->prompts, (std::vector<std::size_t>{3, 5}));
  EXPECT_NE(s->message.find("at least 17 tokens"), std::string::npos) << s->message;
  EXPECT_EQ(find(*a, finding_kind::dynamic_prefix), nullptr);
}

TEST(PromptAnalysisFindings, SharedPrefixShorterThanABlock) {
  std::vector<prompt_t> ps;
  for (int r = 0; r < 4; ++r)
    ps.push_back(concat({range(1, 10), range(1000 * (r + 1), 90)}));
  const auto a = kvkit::analyze_prompts(ps, 16);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->cacheable_tokens, 0u);
  EXPECT_EQ(a->common_prefix_tokens, 10u);
  const kvkit::finding* s = find(*a, finding_kind::short_shared_prefix);
  ASSERT_NE(s, nullptr);
  EXPECT_NE(s->message.find("less than one block (16 tokens)"), std::string::npos) << s->message;
  EXPECT_NE(s->message.find("a block size of 8"), std::string::npos) << s->message;
  // Every prompt is "unique" at block granularity.
  const kvkit::finding* u = find(*a, finding_kind::no_reuse);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->prompts.size(), 4u);
}

TEST(PromptAnalysisFindings, ChanceMatchesOfAFewTokensAreNoHeader) {
  // Unique documents over a small vocabulary: some share their first token or two by chance,
  // which is no short common header.
  std::mt19937_64 rng(5);
  std::vector<prompt_t> ps(50);
  for (prompt_t& p : ps) {
    p.resize(100);
    for (token_id& t : p)
      t = std::uniform_int_distribution<token_id>(0, 19)(rng);
  }
  const auto a = kvkit::analyze_prompts(ps, 16);
  ASSERT_TRUE(a.ok());
  std::size_t longest = 0;
  for (const kvkit::prompt_report& r : a->prompts)
    longest = std::max(longest, r.first_divergence);
  ASSERT_GE(longest, 1u);  // there are chance matches
  EXPECT_EQ(find(*a, finding_kind::short_shared_prefix), nullptr);
  EXPECT_EQ(find(*a, finding_kind::dynamic_prefix), nullptr);
  const kvkit::finding* u = find(*a, finding_kind::no_reuse);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->prompts.size(), 50u);
}

TEST(PromptAnalysisFindings, RandomTimestampSetsAlwaysFire) {
  std::mt19937_64 rng(99);
  auto uni = [&](int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  for (int iter = 0; iter < 200; ++iter) {
    const std::uint32_t bs = 1u << uni(2, 5);
    const prompt_t header = range(1, static_cast<std::size_t>(uni(0, static_cast<int>(bs) - 1)));
    // Long enough that the static part is most of what follows the stamp (>= 2 blocks).
    const prompt_t system =
        range(1000, static_cast<std::size_t>(uni(std::max(40, static_cast<int>(bs) * 2), 400)));
    std::vector<prompt_t> ps;
    const int n = uni(2, 10);
    for (int r = 0; r < n; ++r) {
      prompt_t stamp(static_cast<std::size_t>(uni(1, 4)));
      for (token_id& t : stamp)
        t = 50000 + uni(0, 1000000);
      stamp.resize(3);  // same length, so the static part stays at the same positions
      stamp[0] = 40000 + r;
      ps.push_back(concat({header, stamp, system, range(70000 + 100 * r, uni(1, 30))}));
    }
    const auto a = kvkit::analyze_prompts(ps, bs);
    ASSERT_TRUE(a.ok());
    const kvkit::finding* f = find(*a, finding_kind::dynamic_prefix);
    ASSERT_NE(f, nullptr) << "iteration " << iter;
    EXPECT_EQ(f->prompts.size(), static_cast<std::size_t>(n - 1));
  }
}

TEST(PromptAnalysis, SinglePrompt) {
  const std::vector<prompt_t> ps = {range(1, 40)};
  const auto a = kvkit::analyze_prompts(ps, 16);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->prompts[0].first_divergence, 0u);
  EXPECT_FALSE(a->prompts[0].best_match);
  EXPECT_EQ(a->prompts[0].longest_shared_prefix, 0u);
  EXPECT_EQ(a->common_prefix_tokens, 40u);
  EXPECT_EQ(a->prompts_without_hit, 1u);
  EXPECT_EQ(a->distinct_blocks, 2u);
  EXPECT_TRUE(a->groups.empty());
  EXPECT_TRUE(a->findings.empty());
}

TEST(PromptAnalysis, FindingKindNames) {
  EXPECT_EQ(kvkit::to_string(finding_kind::dynamic_prefix), "dynamic_prefix");
  EXPECT_EQ(kvkit::to_string(finding_kind::no_reuse), "no_reuse");
  EXPECT_EQ(kvkit::to_string(finding_kind::short_shared_prefix), "short_shared_prefix");
  EXPECT_EQ(kvkit::to_string(finding_kind::short_prompts), "short_prompts");
  EXPECT_EQ(kvkit::to_string(finding_kind::low_reuse), "low_reuse");
}

// ---- (iv) errors --------------------------------------------------------------------------------

TEST(PromptAnalysisErrors, NameTheProblemAndTheAcceptedValues) {
  const std::vector<prompt_t> none;
  auto r = kvkit::analyze_prompts(none, 16);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), kvkit::errc::empty_input);
  EXPECT_NE(r.error().message().find("the prompt set is empty"), std::string::npos);

  const std::vector<prompt_t> with_empty = {range(1, 5), range(1, 7), {}, range(1, 3)};
  r = kvkit::analyze_prompts(with_empty, 16);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), kvkit::errc::empty_input);
  EXPECT_NE(r.error().message().find("prompt 2 is empty"), std::string::npos)
      << r.error().message();

  const std::vector<prompt_t> ok = {range(1, 5)};
  for (const std::uint32_t bad : {0u, 3u, 12u, 100u, 0xFFFFFFFFu}) {
    r = kvkit::analyze_prompts(ok, bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.code(), kvkit::errc::invalid_argument);
    EXPECT_NE(r.error().message().find("block_size must be a power of two >= 1 (1, 2, 4, 8, 16, "
                                       "...), got " +
                                       std::to_string(bad)),
              std::string::npos)
        << r.error().message();
  }
  // A failed call holds only the error; the next call is unaffected.
  r = kvkit::analyze_prompts(ok, 1u << 31);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prompts[0].cacheable_tokens, 0u);
  EXPECT_EQ(r->distinct_blocks, 0u);
}

}  // namespace
