// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The replay engine of kvkit-replay (benchmarks/replay/replay.hpp): the shipped Mooncake trace's
// exact upper bound, hand-computed small traces, overlap and queueing, the token-id format with
// tenants, sessions and classes, bad lines, and behaviour under capacity pressure.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "support/shipped_trace.hpp"
#include <replay/replay.hpp>

namespace {

namespace rp = kvkit::replay;

rp::trace parse(const std::string& text, rp::parse_options po = {}) {
  std::istringstream in(text);
  auto t = rp::parse_trace(in, po);
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message());
  return t.ok() ? std::move(*t) : rp::trace{};
}

rp::replay_result run(const rp::trace& t, const rp::replay_options& o,
                      std::string_view alloc = "free_list", std::string_view matcher = "hash",
                      std::string_view eviction = "lru") {
  auto r = rp::replay(t, o, alloc, matcher, eviction);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return r.ok() ? std::move(*r) : rp::replay_result{};
}

rp::replay_options sequential(std::uint64_t capacity = 0) {
  rp::replay_options o;
  o.sequential = true;
  o.capacity = capacity;
  o.check_invariants = true;
  return o;
}

// ---- (a) the shipped Mooncake trace --------------------------------------------------------

/// The upper bound computed independently: a request's hit is the longest run of its leading
/// hash ids already seen; a matched partial last block counts its real length.
struct bound {
  std::uint64_t lookups = 0, hits = 0, tokens = 0, hit_tokens = 0;
};

bound independent_bound(const std::string& path) {
  bound b;
  std::ifstream in(path);
  std::unordered_set<std::int64_t> seen;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty())
      continue;
    const auto j = nlohmann::json::parse(line);
    const auto ids = j.at("hash_ids").get<std::vector<std::int64_t>>();
    const auto len = j.at("input_length").get<std::uint64_t>();
    std::size_t k = 0;
    while (k < ids.size() && seen.contains(ids[k]))
      ++k;
    seen.insert(ids.begin(), ids.end());
    b.lookups += ids.size();
    b.hits += k;
    b.tokens += len;
    b.hit_tokens += k == ids.size() ? len : k * 512;
  }
  return b;
}

class ShippedTrace : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = kvkit::test::shipped_trace_path();
    if (path_.empty() || !std::ifstream(path_))
      return;
    std::ifstream in(path_);
    rp::parse_options po;
    po.source = path_;
    auto t = rp::parse_trace(in, po);
    ASSERT_TRUE(t.ok()) << t.error().message();
    trace_ = new rp::trace(std::move(*t));
    bound_ = independent_bound(path_);
  }
  static void TearDownTestSuite() {
    delete trace_;
    trace_ = nullptr;
  }
  void SetUp() override {
    if (trace_ == nullptr)
      GTEST_SKIP() << kvkit::test::shipped_trace_missing();
  }
  /// Sequential, unlimited, without the per-request invariant check (O(pool) each: too slow
  /// for 3,993 requests in a Debug build).
  static rp::replay_options fast() {
    rp::replay_options o = sequential();
    o.check_invariants = false;
    return o;
  }
  static void expect_upper_bound(const rp::replay_result& r) {
    EXPECT_EQ(r.requests, 3993u);
    EXPECT_EQ(r.rejected, 0u);
    EXPECT_EQ(r.evictions, 0u);
    EXPECT_EQ(r.lookup_blocks, bound_.lookups);
    EXPECT_EQ(r.hit_blocks, bound_.hits);
    EXPECT_EQ(r.query_tokens, bound_.tokens);
    EXPECT_EQ(r.hit_tokens, bound_.hit_tokens);
    // The figures the trace's README states, to their printed precision.
    EXPECT_EQ(std::lround(r.block_hit_rate() * 10000), 6396);
    EXPECT_EQ(std::lround(r.token_hit_rate() * 10000), 6512);
  }
  static inline std::string path_;
  static inline rp::trace* trace_ = nullptr;
  static inline bound bound_;
};

TEST_F(ShippedTrace, SequentialUnlimitedHashReachesTheUpperBound) {
  EXPECT_EQ(trace_->requests.size(), 3993u);
  EXPECT_EQ(trace_->total_lookups, bound_.lookups);
  expect_upper_bound(run(*trace_, fast(), "free_list", "hash", "lru"));
}

TEST_F(ShippedTrace, SequentialUnlimitedRadixReachesTheUpperBound) {
  expect_upper_bound(run(*trace_, fast(), "free_list", "radix", "lru"));
}

TEST_F(ShippedTrace, IdealBaselineAgrees) {
  const auto r = rp::ideal_replay(*trace_);
  EXPECT_EQ(r.hit_blocks, bound_.hits);
  EXPECT_EQ(r.hit_tokens, bound_.hit_tokens);
}

// ---- (b) small traces with hand-computed figures -------------------------------------------

// Block size 512. Hits: r1 0; r2 blocks 1,2 (1024 tokens); r3 all three (1536: the whole
// prompt); r4 0; r5 its one partial block (300 tokens).
constexpr const char* kSmall =
    R"({"timestamp": 0, "input_length": 1200, "output_length": 10, "hash_ids": [1, 2, 3]}
{"timestamp": 5, "input_length": 1100, "output_length": 10, "hash_ids": [1, 2, 4]}

{"timestamp": 9, "input_length": 1536, "output_length": 0, "hash_ids": [1, 2, 3]}
{"timestamp": 12, "input_length": 300, "output_length": 700, "hash_ids": [5]}
{"timestamp": 20, "input_length": 300, "output_length": 1, "hash_ids": [5]}
)";

TEST(ReplaySmall, HandComputedHitsSequential) {
  const auto t = parse(kSmall);
  EXPECT_EQ(t.format, rp::trace_format::mooncake);
  EXPECT_EQ(t.requests.size(), 5u);
  EXPECT_EQ(t.distinct_blocks, 5u);
  EXPECT_EQ(t.requests[2].line, 4u);  // blank line counted
  const auto r = run(t, sequential());
  EXPECT_EQ(r.requests, 5u);
  EXPECT_EQ(r.lookup_blocks, 11u);
  EXPECT_EQ(r.hit_blocks, 6u);
  EXPECT_EQ(r.query_tokens, 4436u);
  EXPECT_EQ(r.hit_tokens, 2860u);
  EXPECT_EQ(r.evictions, 0u);
  const auto ideal = rp::ideal_replay(t);
  EXPECT_EQ(ideal.hit_blocks, 6u);
  EXPECT_EQ(ideal.hit_tokens, 2860u);
}

TEST(ReplaySmall, EveryCombinationAgreesAtUnlimitedCapacity) {
  const auto t = parse(kSmall);
  std::size_t combos = 0;
  kvkit::for_each_combination([&]<class A, class M, class E>() {
    ++combos;
    for (const bool seq : {true, false}) {
      rp::replay_options o = sequential();
      o.sequential = seq;
      auto r = rp::replay(t, o, kvkit::policy_traits<A>::name(), kvkit::policy_traits<M>::name(),
                          kvkit::policy_traits<E>::name());
      ASSERT_TRUE(r.ok()) << r.error().message();
      EXPECT_EQ(r->hit_blocks, 6u) << r->policy;
      EXPECT_EQ(r->hit_tokens, 2860u) << r->policy;
      EXPECT_EQ(r->requests, 5u) << r->policy;
    }
  });
  EXPECT_EQ(combos, rp::catalogue().allocators.size() * rp::catalogue().matchers.size() *
                        rp::catalogue().evictions.size());
}

TEST(ReplaySmall, UnknownPolicyNamesTheAcceptedOnes) {
  const auto t = parse(kSmall);
  auto r = rp::replay(t, sequential(), "free_list", "hash", "lru2");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("lru2"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("sieve"), std::string::npos) << r.error().message();
}

// r1 holds [1, 2] + 1 output block (which holds the query token) = 3 blocks from t=0 to t=512
// (512 output tokens at 1 ms each). r2 (t=10) shares its prefix while it runs.
constexpr const char* kOverlap =
    R"({"timestamp": 0, "input_length": 1024, "output_length": 512, "hash_ids": [1, 2]}
{"timestamp": 10, "input_length": 1024, "output_length": 0, "hash_ids": [1, 2]}
)";
// r2 (t=10) shares nothing and needs 3 blocks.
constexpr const char* kOverlapDisjoint =
    R"({"timestamp": 0, "input_length": 1024, "output_length": 512, "hash_ids": [1, 2]}
{"timestamp": 10, "input_length": 1024, "output_length": 0, "hash_ids": [3, 4]}
)";

TEST(ReplayOverlap, RunningRequestHoldsItsBlocksAndSharesItsPrefix) {
  const auto t = parse(kOverlap);
  rp::replay_options o;
  o.tpot_ms = 1.0;
  o.check_invariants = true;
  const auto r = run(t, o);
  EXPECT_EQ(r.requests, 2u);
  EXPECT_EQ(r.queued, 0u);
  EXPECT_EQ(r.hit_blocks, 2u);          // r2 hits r1's prompt while r1 still runs
  EXPECT_EQ(r.peak_blocks_in_use, 4u);  // r1's 3 + r2's query block
}

TEST(ReplayOverlap, TightCapacityQueuesTheSecondRequest) {
  const auto t = parse(kOverlapDisjoint);
  rp::replay_options o;
  o.tpot_ms = 1.0;
  o.capacity = 5;  // r1 holds 3 while it runs; r2 needs 3
  o.check_invariants = true;
  const auto r = run(t, o);
  EXPECT_EQ(r.requests, 2u);
  EXPECT_EQ(r.queued, 1u);
  EXPECT_EQ(r.rejected, 0u);
  EXPECT_EQ(r.max_queue, 1u);
  EXPECT_GT(r.evictions, 0u);  // r2 starts after r1 finished, evicting r1's cached blocks
  EXPECT_LE(r.peak_blocks_in_use, 5u);

  o.capacity = 6;  // both fit at once
  const auto wide = run(t, o);
  EXPECT_EQ(wide.queued, 0u);
  EXPECT_EQ(wide.peak_blocks_in_use, 6u);

  o.sequential = true;
  o.capacity = 5;
  const auto seq = run(t, o);
  EXPECT_EQ(seq.queued, 0u);
  EXPECT_EQ(seq.requests, 2u);
}

TEST(ReplayOverlap, RequestLargerThanThePoolIsRejected) {
  // r1 needs 4 blocks (2 trace blocks, 2 output blocks), r2 needs 3 (with its query block).
  const auto t = parse(
      R"({"timestamp": 0, "input_length": 1024, "output_length": 1024, "hash_ids": [1, 2]}
{"timestamp": 10, "input_length": 1024, "output_length": 0, "hash_ids": [3, 4]}
)");
  for (const bool seq : {true, false}) {
    rp::replay_options o;
    o.sequential = seq;
    o.capacity = 3;
    const auto r = run(t, o);
    EXPECT_EQ(r.rejected, 1u);
    EXPECT_EQ(r.requests, 1u);
  }
}

// A request that can never fit is rejected before it touches the cache. Pool of 5: r1 caches [5];
// r2 caches [1, 2]; r3 [1, 2, 3, 4] with 2 output blocks needs 7 blocks: rejected (admitting its
// prompt alone would fit after evicting 5, and its output would then not). r4 hits 5.
TEST(ReplayOverlap, RejectedRequestEvictsNothing) {
  const auto t = parse(
      R"({"timestamp": 0, "input_length": 512, "output_length": 0, "hash_ids": [5]}
{"timestamp": 10, "input_length": 1024, "output_length": 0, "hash_ids": [1, 2]}
{"timestamp": 20, "input_length": 2048, "output_length": 1024, "hash_ids": [1, 2, 3, 4]}
{"timestamp": 30, "input_length": 512, "output_length": 0, "hash_ids": [5]}
)");
  for (const bool seq : {true, false}) {
    rp::replay_options o = sequential(5);
    o.sequential = seq;
    const auto r = run(t, o);
    EXPECT_EQ(r.rejected, 1u);
    EXPECT_EQ(r.requests, 3u);
    EXPECT_EQ(r.evictions, 0u);
    EXPECT_EQ(r.hit_blocks, 1u);
    EXPECT_EQ(r.lookup_blocks, 4u);
  }
}

// The query token's block is held while its request runs and never cached: with output lengths
// 0, a sequential replay caches exactly the trace's distinct blocks, and a pool of the largest
// request's blocks plus one never rejects.
TEST(ReplayQueryBlock, OnlyTraceBlocksAreCached) {
  const auto t =
      parse(R"({"timestamp": 0, "input_length": 1024, "output_length": 0, "hash_ids": [1, 2]}
{"timestamp": 1, "input_length": 1024, "output_length": 0, "hash_ids": [3, 4]}
{"timestamp": 2, "input_length": 1024, "output_length": 0, "hash_ids": [1, 2]}
{"timestamp": 3, "input_length": 1024, "output_length": 0, "hash_ids": [3, 4]}
)");
  // 5 blocks: 4 trace blocks stay cached and the query block is free again after each request,
  // so the second round hits everything.
  auto r = run(t, sequential(5));
  EXPECT_EQ(r.evictions, 0u);
  EXPECT_EQ(r.hit_blocks, 4u);
  EXPECT_EQ(r.peak_blocks_in_use, 5u);
  // 3 blocks: a request holds 3 (2 trace blocks + its query block), so each evicts the other's.
  r = run(t, sequential(3));
  EXPECT_EQ(r.rejected, 0u);
  EXPECT_EQ(r.hit_blocks, 0u);
  EXPECT_EQ(r.evictions, 6u);
}

// Output blocks: cached after their request (cache_output, the default, as vLLM does) or freed.
// r1 holds its 2 trace blocks and 2 output blocks (1,000 tokens; the first holds the query
// token); r2 repeats r1's prompt and needs one block, its query block.
TEST(ReplayQueryBlock, OutputBlocksAreCachedOnlyWhenAskedTo) {
  const auto t =
      parse(R"({"timestamp": 0, "input_length": 1024, "output_length": 1000, "hash_ids": [1, 2]}
{"timestamp": 1, "input_length": 1024, "output_length": 0, "hash_ids": [1, 2]}
)");
  rp::replay_options o = sequential(4);
  const auto on = run(t, o);
  EXPECT_EQ(on.peak_blocks_in_use, 4u);
  EXPECT_EQ(on.hit_blocks, 2u);
  EXPECT_EQ(on.evictions, 1u);  // the pool is full of r1's blocks: r2 evicts r1's last output
  o.cache_output = false;
  const auto off = run(t, o);
  EXPECT_EQ(off.peak_blocks_in_use, 4u);  // held while r1 runs either way
  EXPECT_EQ(off.hit_blocks, 2u);
  EXPECT_EQ(off.evictions, 0u);  // r1's output blocks were freed when it finished
}

TEST(ReplayTokens, TenantsSessionsAndClasses) {
  const std::string text =
      R"({"tokens": [1, 2, 3, 4, 5, 6, 7, 8, 9], "tenant": "a", "class": "gold"}
{"tokens": [1, 2, 3, 4, 5, 6, 7, 8, 9], "tenant": "b", "class": "free"}
{"tokens": [1, 2, 3, 4, 5, 6, 7, 8, 9], "tenant": "a", "class": "free", "output_length": 3}
{"tokens": [1, 2, 3, 4, 5, 6, 7, 8, 9], "tenant": "a", "session_id": 7}
{"tokens": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], "tenant": "a", "session_id": 7, "timestamp": 50}
)";
  rp::parse_options po;
  po.cache_block_size = 4;
  const auto t = parse(text, po);
  EXPECT_EQ(t.format, rp::trace_format::tokens);
  ASSERT_EQ(t.class_names.size(), 2u);
  EXPECT_EQ(t.class_names[0], "gold");
  EXPECT_EQ(t.requests[2].request_class, 1u);
  EXPECT_EQ(t.requests[3].request_class, 0u);
  // Distinct full blocks per namespace: tenant a, tenant b, tenant a + session 7 (3 blocks).
  EXPECT_EQ(t.distinct_blocks, 2u + 2u + 3u);
  const auto r = run(t, sequential());
  // Hits: 0 (new), 0 (other tenant), 8 (tenant a again), 0 (new session), 8 (same session).
  EXPECT_EQ(r.lookup_blocks, 2u + 2u + 2u + 2u + 3u);
  EXPECT_EQ(r.hit_blocks, 4u);
  EXPECT_EQ(r.hit_tokens, 16u);
  EXPECT_EQ(r.query_tokens, 4u * 9u + 13u);
  ASSERT_GE(r.classes.size(), 2u);
  EXPECT_EQ(r.classes[0].requests, 3u);
  EXPECT_EQ(r.classes[0].hit_tokens, 8u);
  EXPECT_EQ(r.classes[1].requests, 2u);
  EXPECT_EQ(r.classes[1].hit_tokens, 8u);
  // The ideal replay keys blocks the same way.
  EXPECT_EQ(rp::ideal_replay(t).hit_tokens, 16u);
}

// ---- (c) bad lines -------------------------------------------------------------------------

struct bad_line {
  const char* line;
  const char* problem;
};

TEST(ReplayErrors, EachBadLineKindNamesTheLineAndTheProblem) {
  const std::string good =
      R"({"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1, 2]})";
  const std::vector<bad_line> cases = {
      {R"({"timestamp": 0, "input_length": 600, "hash_ids": [1, 2)", "malformed JSON"},
      {R"({"timestamp": 0, "input_length": -3, "output_length": 1, "hash_ids": [1]})",
       "negative input_length"},
      {R"({"timestamp": 0, "input_length": 600, "output_length": -1, "hash_ids": [1, 2]})",
       "negative output_length"},
      {R"({"timestamp": -5, "input_length": 600, "output_length": 1, "hash_ids": [1, 2]})",
       "negative or invalid timestamp"},
      {R"({"timestamp": 0, "input_length": 1100, "output_length": 1, "hash_ids": [1, 2]})",
       "list too short"},
      {R"({"timestamp": 0, "input_length": 100, "output_length": 1, "hash_ids": [1, 2]})",
       "list too long"},
      {R"({"timestamp": 0, "output_length": 1, "hash_ids": [1, 2]})",
       "missing field \"input_length\""},
      {R"({"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1, "x"]})",
       "hash_ids[1] must be an integer"},
      {R"({"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1, -2]})",
       "outside [0, 2147483647]"},
      {R"([1, 2, 3])", "expected a JSON object"},
      {R"({"tokens": [1, 2, 3]})", "missing field \"hash_ids\""},
  };
  for (const auto& c : cases) {
    const std::string text = good + "\n" + good + "\n" + c.line + "\n" + good + "\n";
    rp::parse_options po;
    po.source = "t.jsonl";
    {
      std::istringstream in(text);
      auto t = rp::parse_trace(in, po);
      ASSERT_FALSE(t.ok()) << c.line;
      EXPECT_NE(t.error().message().find("t.jsonl:3: "), std::string::npos) << t.error().message();
      EXPECT_NE(t.error().message().find(c.problem), std::string::npos) << t.error().message();
    }
    {
      po.on_error = rp::error_mode::skip;
      std::istringstream in(text);
      auto t = rp::parse_trace(in, po);
      ASSERT_TRUE(t.ok()) << t.error().message();
      EXPECT_EQ(t->requests.size(), 3u);
      ASSERT_EQ(t->skipped.size(), 1u);
      EXPECT_NE(t->skipped[0].find("t.jsonl:3: "), std::string::npos) << t->skipped[0];
      EXPECT_EQ(t->requests[2].line, 4u);
    }
  }
}

TEST(ReplayErrors, TokenFormatProblems) {
  const std::vector<bad_line> cases = {
      {R"({"tokens": []})", "tokens must not be empty"},
      {R"({"tokens": [1, 2], "output_length": -4})", "negative output_length"},
      {R"({"tokens": [1, 2], "session_id": -1})", "session_id must be a non-negative"},
      {R"({"tokens": [1, 2], "tenant": [1]})", "tenant must be an integer or a string"},
      {R"({"tokens": [1, 2], "class": 5000})", "class is too large"},
  };
  for (const auto& c : cases) {
    const std::string text = std::string(R"({"tokens": [5, 6, 7]})") + "\n" + c.line + "\n";
    std::istringstream in(text);
    auto t = rp::parse_trace(in);
    ASSERT_FALSE(t.ok()) << c.line;
    EXPECT_NE(t.error().message().find("trace:2: "), std::string::npos) << t.error().message();
    EXPECT_NE(t.error().message().find(c.problem), std::string::npos) << t.error().message();
  }
}

// ---- (d) capacity pressure -----------------------------------------------------------------

/// 600 requests: a shared prefix of 8 blocks from one of 24 groups (skewed popularity), then 1-3
/// unique blocks.
std::string synthetic_trace() {
  std::mt19937_64 rng(42);
  std::ostringstream out;
  int next_unique = 100000;
  for (int i = 0; i < 600; ++i) {
    const int g = static_cast<int>(std::min<double>(
        23, std::floor(std::exp(std::uniform_real_distribution<>(0, std::log(24.0))(rng)) - 1)));
    const int tail = 1 + static_cast<int>(rng() % 3);
    out << R"({"timestamp": )" << i * 10 << R"(, "input_length": )" << (8 + tail) * 512 - 100
        << R"(, "output_length": 20, "hash_ids": [)";
    for (int b = 0; b < 8; ++b)
      out << g * 8 + b << ", ";
    for (int b = 0; b < tail; ++b)
      out << next_unique++ << (b + 1 < tail ? ", " : "");
    out << "]}\n";
  }
  return out.str();
}

TEST(ReplayPressure, SmallerCapacityEvictsAndHitsLessLruMonotone) {
  const auto t = parse(synthetic_trace());
  const auto full = run(t, sequential());
  EXPECT_EQ(full.evictions, 0u);
  double previous = -1.0;
  for (const std::uint64_t cap : {40ull, 80ull, 160ull, 320ull, 640ull}) {
    ASSERT_LT(cap, t.distinct_blocks);
    rp::replay_options o = sequential(cap);
    o.check_invariants = false;
    const auto r = run(t, o);
    EXPECT_EQ(r.requests, 600u);
    EXPECT_GT(r.evictions, 0u) << cap;
    EXPECT_LT(r.token_hit_rate(), full.token_hit_rate()) << cap;
    EXPECT_LE(r.peak_blocks_in_use, cap);
    EXPECT_GE(r.token_hit_rate(), previous - 0.01) << cap;  // monotone up to noise
    previous = r.token_hit_rate();
  }
  // Overlapping replay under pressure completes every request too.
  rp::replay_options o;
  o.capacity = 60;
  o.tpot_ms = 5;
  const auto r = run(t, o);
  EXPECT_EQ(r.requests + r.rejected, 600u);
  EXPECT_GT(r.evictions, 0u);
}

}  // namespace
