// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// <kvkit/prometheus.hpp>: the text exposition format 0.0.4 (families whole, HELP and TYPE before
// samples, units in names, escaping), every statistic exported with its own value, cumulative
// histogram buckets, and errors for bad names. tests/metrics/metrics_scrape_test.cpp parses the
// same text with Prometheus' own Python client.
#include <kvkit/prometheus.hpp>

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  return out;
}

// "name{labels} value" -> value, keyed by everything before the last space.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  for (const std::string& l : lines(text)) {
    if (l.empty() || l[0] == '#')
      continue;
    const auto sp = l.rfind(' ');
    EXPECT_TRUE(out.emplace(l.substr(0, sp), l.substr(sp + 1)).second) << "duplicate: " << l;
  }
  return out;
}

kvkit::cache_stats distinct_stats() {
  kvkit::cache_stats s;
  s.queries = 101;
  s.query_tokens = 102;
  s.hit_tokens = 103;
  s.query_blocks = 104;
  s.hit_blocks = 105;
  s.full_hits = 106;
  s.partial_hits = 107;
  s.misses = 108;
  s.conversational_hits = 109;
  s.partial_block_hits = 110;
  s.copied_blocks = 111;
  s.short_queries = 112;
  s.appended_tokens = 113;
  s.committed_blocks = 114;
  s.deduplicated_blocks = 115;
  s.evictions = 116;
  s.cascade_evictions = 117;
  s.finished_sequences = 118;
  s.forks = 119;
  s.pins = 120;
  s.invalidated_blocks = 121;
  s.expired_blocks = 122;
  s.blocks_total = 123;
  s.blocks_free = 124;
  s.blocks_cached = 125;
  s.blocks_referenced = 126;
  s.blocks_evictable = 127;
  s.active_sequences = 128;
  s.metadata_bytes = 129;
  s.token_bytes = 130;
  s.kv_bytes = 18446744073709551615ull;  // the full 64-bit range survives
  s.miss_record_bytes = 131;
  s.miss_reasons = {.full_hit = 140,
                    .never_stored = 141,
                    .evicted = 142,
                    .invalidated = 143,
                    .expired = 144,
                    .partial_last_block = 145,
                    .pool_too_small = 146,
                    .other_namespace = 147};
  return s;
}

TEST(Prometheus, EveryStatisticOnceWithHelpTypeAndUnit) {
  kvkit::prometheus_tier tier;
  tier.stats = distinct_stats();
  std::string text;
  ASSERT_TRUE(kvkit::write_prometheus(text, std::span(&tier, 1)));
  const auto s = samples(text);
  const std::map<std::string, std::string> want = {
      {"kvkit_cache_queries_total", "101"},
      {"kvkit_cache_query_tokens_total", "102"},
      {"kvkit_cache_hit_tokens_total", "103"},
      {"kvkit_cache_query_blocks_total", "104"},
      {"kvkit_cache_hit_blocks_total", "105"},
      {"kvkit_cache_full_hits_total", "106"},
      {"kvkit_cache_partial_hits_total", "107"},
      {"kvkit_cache_misses_total", "108"},
      {"kvkit_cache_conversational_hits_total", "109"},
      {"kvkit_cache_partial_block_hits_total", "110"},
      {"kvkit_cache_copied_blocks_total", "111"},
      {"kvkit_cache_short_queries_total", "112"},
      {"kvkit_cache_appended_tokens_total", "113"},
      {"kvkit_cache_committed_blocks_total", "114"},
      {"kvkit_cache_deduplicated_blocks_total", "115"},
      {"kvkit_cache_evicted_blocks_total", "116"},
      {"kvkit_cache_cascade_evicted_blocks_total", "117"},
      {"kvkit_cache_finished_sequences_total", "118"},
      {"kvkit_cache_forks_total", "119"},
      {"kvkit_cache_pins_total", "120"},
      {"kvkit_cache_invalidated_blocks_total", "121"},
      {"kvkit_cache_expired_blocks_total", "122"},
      {"kvkit_cache_pool_blocks", "123"},
      {"kvkit_cache_free_blocks", "124"},
      {"kvkit_cache_cached_blocks", "125"},
      {"kvkit_cache_referenced_blocks", "126"},
      {"kvkit_cache_evictable_blocks", "127"},
      {"kvkit_cache_active_sequences", "128"},
      {"kvkit_cache_metadata_bytes", "129"},
      {"kvkit_cache_token_bytes", "130"},
      {"kvkit_cache_miss_record_bytes", "131"},
      {"kvkit_cache_kv_bytes", "18446744073709551615"},
  };
  const std::map<std::string, std::string> reasons = {
      {"full_hit", "140"},       {"never_stored", "141"},    {"evicted", "142"},
      {"invalidated", "143"},    {"expired", "144"},         {"partial_last_block", "145"},
      {"pool_too_small", "146"}, {"other_namespace", "147"},
  };
  ASSERT_EQ(s.size(), want.size() + reasons.size());
  for (const auto& [name, value] : want)
    EXPECT_EQ(s.at(name + "{tier=\"pool\"}"), value) << name;
  for (const auto& [reason, value] : reasons) {
    EXPECT_EQ(s.at("kvkit_cache_admissions_by_miss_reason_total{tier=\"pool\",reason=\"" + reason +
                   "\"}"),
              value)
        << reason;
  }

  // Each family: HELP, then TYPE, then its samples; counters end in _total, gauges do not.
  // One sample per family, except the last one (a sample per miss reason).
  const auto l = lines(text);
  ASSERT_EQ(l.size(), 3 * want.size() + 2 + reasons.size());
  EXPECT_EQ(l[3 * want.size()], "# HELP kvkit_cache_admissions_by_miss_reason_total " +
                                    std::string(kvkit::detail::miss_reason_help));
  EXPECT_EQ(l[3 * want.size() + 1], "# TYPE kvkit_cache_admissions_by_miss_reason_total counter");
  for (std::size_t i = 0; i < 3 * want.size(); i += 3) {
    const std::string name = l[i].substr(7, l[i].find(' ', 7) - 7);
    EXPECT_EQ(l[i].rfind("# HELP " + name + " ", 0), 0u) << l[i];
    const std::string type = l[i + 1].substr(("# TYPE " + name + " ").size());
    EXPECT_EQ(l[i + 1], "# TYPE " + name + " " + type);
    EXPECT_EQ(type == "counter", name.ends_with("_total")) << name;
    EXPECT_TRUE(type == "counter" || type == "gauge") << type;
    EXPECT_EQ(l[i + 2].rfind(name + "{", 0), 0u) << l[i + 2];
  }
}

TEST(Prometheus, ClassesAndTiersShareOneFamilyEach) {
  std::vector<kvkit::prometheus_tier> tiers(2);
  tiers[0].tier = "pool";
  tiers[0].stats.queries = 5;
  tiers[0].classes = {
      {"0",
       {.queries = 3,
        .query_tokens = 30,
        .hit_tokens = 20,
        .misses = 1,
        .miss_reasons = {.full_hit = 2, .evicted = 1}}},
      {"interactive", {.queries = 2, .query_tokens = 8, .hit_tokens = 0, .misses = 2}}};
  tiers[1].tier = "host";
  tiers[1].stats.queries = 7;
  std::string text;
  const kvkit::prometheus_label engine[] = {{"engine", "a\"b"}};
  ASSERT_TRUE(kvkit::write_prometheus(text, tiers, {.prefix = "llm", .labels = engine}));
  const auto s = samples(text);
  EXPECT_EQ(s.at("llm_cache_queries_total{engine=\"a\\\"b\",tier=\"pool\"}"), "5");
  EXPECT_EQ(s.at("llm_cache_queries_total{engine=\"a\\\"b\",tier=\"host\"}"), "7");
  EXPECT_EQ(s.at("llm_class_query_tokens_total{engine=\"a\\\"b\",tier=\"pool\",class=\"0\"}"),
            "30");
  EXPECT_EQ(s.at("llm_class_misses_total{engine=\"a\\\"b\",tier=\"pool\",class=\"interactive\"}"),
            "2");
  EXPECT_EQ(s.at("llm_class_admissions_by_miss_reason_total{engine=\"a\\\"b\",tier=\"pool\","
                 "class=\"0\",reason=\"evicted\"}"),
            "1");
  EXPECT_EQ(s.at("llm_class_admissions_by_miss_reason_total{engine=\"a\\\"b\",tier=\"pool\","
                 "class=\"interactive\",reason=\"never_stored\"}"),
            "0");
  // One HELP per family, however many tiers and classes.
  std::map<std::string, int> helps;
  for (const auto& l : lines(text)) {
    if (l.rfind("# HELP ", 0) == 0)
      ++helps[l.substr(7, l.find(' ', 7) - 7)];
  }
  for (const auto& [name, n] : helps)
    EXPECT_EQ(n, 1) << name;
  EXPECT_EQ(helps.count("llm_class_hit_tokens_total"), 1u);
}

TEST(Prometheus, EscapesHelpAndLabelValues) {
  std::string text;
  kvkit::prometheus_writer w(text);
  w.family("x_total", kvkit::prometheus_type::counter, "back\\slash\nnew \"line\"");
  const kvkit::prometheus_label l[] = {{"path", "C:\\dir\n\"q\""}};
  w.sample("", l, std::uint64_t{1});
  w.sample("", {}, 0.25);
  ASSERT_TRUE(w.outcome());
  EXPECT_EQ(text,
            "# HELP kvkit_x_total back\\\\slash\\nnew \"line\"\n"
            "# TYPE kvkit_x_total counter\n"
            "kvkit_x_total{path=\"C:\\\\dir\\n\\\"q\\\"\"} 1\n"
            "kvkit_x_total 0.25\n");
}

TEST(Prometheus, BadNamesAreErrorsNamingThem) {
  std::string text;
  auto st =
      kvkit::write_prometheus(text, std::span<const kvkit::prometheus_tier>{}, {.prefix = "9bad"});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.code(), kvkit::errc::invalid_argument);
  EXPECT_NE(st.message().find("prefix '9bad'"), std::string::npos) << st.message();
  EXPECT_TRUE(text.empty());

  const kvkit::prometheus_label reserved[] = {{"tier", "x"}};
  st = kvkit::write_prometheus(text, std::span<const kvkit::prometheus_tier>{},
                               {.labels = reserved});
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("label name 'tier'"), std::string::npos) << st.message();

  kvkit::prometheus_writer w(text);
  const kvkit::prometheus_label bad[] = {{"has-dash", "v"}};
  w.family("ok", kvkit::prometheus_type::gauge, "h");
  w.sample("", bad, 1.0);
  ASSERT_FALSE(w.outcome());
  EXPECT_NE(w.outcome().message().find("'has-dash'"), std::string::npos);
}

TEST(LatencyHistogram, CumulativeBucketsWithInclusiveBounds) {
  auto h = kvkit::latency_histogram::create({0.001, 0.01, 0.1});
  ASSERT_TRUE(h);
  for (double v : {0.0005, 0.001, 0.002, 0.01, 0.05, 0.5, -1.0})
    h->observe(v);
  h->observe(std::nan(""));  // ignored
  EXPECT_EQ(h->count(), 7u);
  // le=0.001: 0.0005, 0.001, -1 (as 0); le=0.01: + 0.002, 0.01; le=0.1: + 0.05; +Inf: + 0.5.
  EXPECT_EQ(h->cumulative_counts(), (std::vector<std::uint64_t>{3, 5, 6, 7}));
  EXPECT_DOUBLE_EQ(h->sum(), 0.0005 + 0.001 + 0.002 + 0.01 + 0.05 + 0.5);

  std::string text;
  const kvkit::prometheus_label tier[] = {{"tier", "pool"}};
  ASSERT_TRUE(
      kvkit::write_prometheus(text, *h, "admit_duration_seconds", "Admission time.", {}, tier));
  const auto s = samples(text);
  EXPECT_EQ(s.at("kvkit_admit_duration_seconds_bucket{tier=\"pool\",le=\"0.001\"}"), "3");
  EXPECT_EQ(s.at("kvkit_admit_duration_seconds_bucket{tier=\"pool\",le=\"0.01\"}"), "5");
  EXPECT_EQ(s.at("kvkit_admit_duration_seconds_bucket{tier=\"pool\",le=\"0.1\"}"), "6");
  EXPECT_EQ(s.at("kvkit_admit_duration_seconds_bucket{tier=\"pool\",le=\"+Inf\"}"), "7");
  EXPECT_EQ(s.at("kvkit_admit_duration_seconds_count{tier=\"pool\"}"), "7");
  EXPECT_EQ(std::stod(s.at("kvkit_admit_duration_seconds_sum{tier=\"pool\"}")), h->sum());
  EXPECT_NE(text.find("# TYPE kvkit_admit_duration_seconds histogram\n"), std::string::npos);
}

TEST(LatencyHistogram, RejectsBadBounds) {
  for (const std::vector<double>& b : std::vector<std::vector<double>>{
           {}, {0.1, 0.1}, {0.2, 0.1}, {-1.0}, {std::numeric_limits<double>::infinity()}}) {
    const auto h = kvkit::latency_histogram::create(b);
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error().code(), kvkit::errc::invalid_argument);
  }
  EXPECT_EQ(kvkit::latency_histogram().upper_bounds(),
            kvkit::latency_histogram::default_admit_buckets());
}

TEST(LatencyHistogram, ObserveFromManyThreads) {
  kvkit::latency_histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i)
        h.observe(1e-6 * (i % 50) * (t + 1));
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(h.count(), 40000u);
  EXPECT_EQ(h.cumulative_counts().back(), 40000u);
}

}  // namespace
