// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The mini engine's /metrics endpoint on a free loopback port, scraped over HTTP and parsed by
// Prometheus' own Python client (tests/metrics/scrape.py, python3-prometheus-client): every
// statistic equals what the cache reports, per class too, and the admission histogram counts
// every admission. A second scrape after more requests sees the counters move.
#include <kvkit/kvkit.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "events/subprocess.hpp"
#include "support/engine_testing.hpp"
#include <mini_engine/cpu_backend.hpp>
#include <mini_engine/engine.hpp>
#include <mini_engine/metrics_server.hpp>

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using backend_t = mini_engine::cpu_backend<kvkit::bf16>;
using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                    kvkit::lru_eviction, backend_t::storage_type>;
using engine_t = mini_engine::engine<cache_t, backend_t>;

const mini_engine::model_weights& weights() {
  static const mini_engine::model_weights w =
      *mini_engine::model_weights::random(mini_engine::model_config::tiny());
  return w;
}

engine_t make_engine() {
  const auto& c = weights().config;
  const kvkit::kv_layout layout{.num_layers = c.num_layers,
                                .num_kv_heads = c.num_kv_heads,
                                .head_dim = c.head_dim,
                                .block_size = 16,
                                .num_blocks = 128};
  auto cache = cache_t::create({}, *backend_t::storage_type::create(layout));
  return engine_t(std::move(*cache), backend_t(weights()), {.max_running = 4});
}

json scrape(int port) {
  kvkit_test::subprocess p({KVKIT_TEST_PYTHON, KVKIT_METRICS_SCRAPER,
                            "http://127.0.0.1:" + std::to_string(port) + "/metrics"});
  const auto line = p.read_line(60s);
  const auto rc = p.wait(10s);
  if (!line || rc != 0)
    throw std::runtime_error("scrape.py failed (see its stderr above)");
  return json::parse(*line);
}

// The value of sample `name` with exactly `labels` in the parsed families.
double value(const json& scraped, const std::string& family, const std::string& name,
             const json& labels) {
  const json& f = scraped.at("families").at(family);
  for (const json& s : f.at("samples")) {
    if (s.at(0) == name && s.at(1) == labels)
      return s.at(2).get<double>();
  }
  throw std::runtime_error("no sample " + name + " " + labels.dump());
}

void submit(engine_t& e, std::uint64_t seed, std::uint32_t request_class,
            const std::vector<kvkit::token_id>& system) {
  mini_engine::request r;
  r.prompt = kvkit::test::concat(system,
                                 kvkit::test::random_tokens(24, seed, weights().config.vocab_size));
  r.max_new_tokens = 4;
  r.options.request_class = request_class;
  e.submit(std::move(r));
}

void expect_matches_cache(const json& scraped, const cache_t& cache,
                          const kvkit::latency_histogram& h) {
  const kvkit::cache_stats s = cache.stats();
  const json pool = {{"tier", "pool"}};
  // prometheus_client names a counter's family without `_total`; its sample keeps it.
  auto counter = [&](const std::string& base) {
    return value(scraped, "kvkit_" + base, "kvkit_" + base + "_total", pool);
  };
  auto gauge = [&](const std::string& name) {
    return value(scraped, "kvkit_" + name, "kvkit_" + name, pool);
  };
  EXPECT_EQ(counter("cache_queries"), double(s.queries));
  EXPECT_EQ(counter("cache_query_tokens"), double(s.query_tokens));
  EXPECT_EQ(counter("cache_hit_tokens"), double(s.hit_tokens));
  EXPECT_EQ(counter("cache_query_blocks"), double(s.query_blocks));
  EXPECT_EQ(counter("cache_hit_blocks"), double(s.hit_blocks));
  EXPECT_EQ(counter("cache_full_hits"), double(s.full_hits));
  EXPECT_EQ(counter("cache_partial_hits"), double(s.partial_hits));
  EXPECT_EQ(counter("cache_misses"), double(s.misses));
  EXPECT_EQ(counter("cache_appended_tokens"), double(s.appended_tokens));
  EXPECT_EQ(counter("cache_committed_blocks"), double(s.committed_blocks));
  EXPECT_EQ(counter("cache_evicted_blocks"), double(s.evictions));
  EXPECT_EQ(counter("cache_finished_sequences"), double(s.finished_sequences));
  EXPECT_EQ(gauge("cache_pool_blocks"), double(s.blocks_total));
  EXPECT_EQ(gauge("cache_free_blocks"), double(s.blocks_free));
  EXPECT_EQ(gauge("cache_cached_blocks"), double(s.blocks_cached));
  EXPECT_EQ(gauge("cache_evictable_blocks"), double(s.blocks_evictable));
  EXPECT_EQ(gauge("cache_metadata_bytes"), double(s.metadata_bytes));
  EXPECT_EQ(gauge("cache_kv_bytes"), double(s.kv_bytes));
  for (std::uint32_t c : {0u, 1u}) {
    const kvkit::class_stats cs = cache.stats(c);
    const json labels = {{"tier", "pool"}, {"class", std::to_string(c)}};
    EXPECT_EQ(value(scraped, "kvkit_class_queries", "kvkit_class_queries_total", labels),
              double(cs.queries));
    EXPECT_EQ(value(scraped, "kvkit_class_hit_tokens", "kvkit_class_hit_tokens_total", labels),
              double(cs.hit_tokens));
  }
  // The miss reasons, one sample per reason; the demo's shared system prompt makes evictions
  // and hits, so the counts are not all zero.
  double by_reason = 0;
  for (const auto& [reason, n] :
       {std::pair{"full_hit", s.miss_reasons.full_hit},
        std::pair{"never_stored", s.miss_reasons.never_stored},
        std::pair{"evicted", s.miss_reasons.evicted},
        std::pair{"partial_last_block", s.miss_reasons.partial_last_block}}) {
    const json labels = {{"tier", "pool"}, {"reason", reason}};
    const double v = value(scraped, "kvkit_cache_admissions_by_miss_reason",
                           "kvkit_cache_admissions_by_miss_reason_total", labels);
    EXPECT_EQ(v, double(n)) << reason;
    by_reason += v;
  }
  EXPECT_GT(by_reason, 0.0);
  // The histogram: cumulative buckets, +Inf equal to _count equal to the admissions recorded.
  const std::string hist = "kvkit_admit_duration_seconds";
  EXPECT_EQ(scraped.at("families").at(hist).at("type"), "histogram");
  const auto counts = h.cumulative_counts();
  double previous = 0;
  for (std::size_t i = 0; i < h.upper_bounds().size(); ++i) {
    std::string le = std::to_string(h.upper_bounds()[i]);  // the parser normalises `le`
    const json& f = scraped.at("families").at(hist).at("samples");
    bool found = false;
    for (const json& smp : f) {
      if (smp.at(0) == hist + "_bucket" && smp.at(1).at("tier") == "pool" &&
          std::stod(smp.at(1).at("le").get<std::string>()) == h.upper_bounds()[i]) {
        EXPECT_EQ(smp.at(2).get<double>(), double(counts[i])) << "le " << le;
        EXPECT_GE(smp.at(2).get<double>(), previous);
        previous = smp.at(2).get<double>();
        found = true;
      }
    }
    EXPECT_TRUE(found) << "no bucket le=" << le;
  }
  EXPECT_EQ(value(scraped, hist, hist + "_bucket", {{"tier", "pool"}, {"le", "+Inf"}}),
            double(h.count()));
  EXPECT_EQ(value(scraped, hist, hist + "_count", pool), double(h.count()));
  EXPECT_NEAR(value(scraped, hist, hist + "_sum", pool), h.sum(), 1e-12 + 1e-9 * h.sum());
}

TEST(MetricsScrape, PrometheusClientParsesWhatTheCacheReports) {
  auto server = mini_engine::metrics_server::start("127.0.0.1", 0);
  ASSERT_TRUE(server) << server.error().message();
  ASSERT_GT((*server)->port(), 0);

  engine_t engine = make_engine();
  kvkit::latency_histogram admit_latency;
  engine.admit_latency = &admit_latency;
  const std::vector<kvkit::token_id> system =
      kvkit::test::random_tokens(64, 1, weights().config.vocab_size);
  const std::uint32_t classes[] = {0, 1};
  auto run = [&](std::uint64_t first_seed, int n) {
    for (int i = 0; i < n; ++i)
      submit(engine, first_seed + i, static_cast<std::uint32_t>(i % 2), system);
    while (!engine.idle()) {
      ASSERT_TRUE(engine.step());
      (*server)->publish(mini_engine::render_metrics(engine.cache(), classes, &admit_latency));
    }
  };

  run(100, 6);
  const json first = scrape((*server)->port());
  EXPECT_EQ(first.at("content_type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(admit_latency.count(), 6u);  // every request fitted at its first admission
  expect_matches_cache(first, engine.cache(), admit_latency);
  EXPECT_GT(engine.cache().stats().hit_tokens, 0u);  // the shared prompt hit
  for (const auto& [name, f] : first.at("families").items()) {
    EXPECT_FALSE(f.at("help").get<std::string>().empty()) << name;
    EXPECT_NE(f.at("type"), "unknown") << name;
  }

  run(200, 4);
  const json second = scrape((*server)->port());
  expect_matches_cache(second, engine.cache(), admit_latency);
  EXPECT_GT(value(second, "kvkit_cache_queries", "kvkit_cache_queries_total", {{"tier", "pool"}}),
            value(first, "kvkit_cache_queries", "kvkit_cache_queries_total", {{"tier", "pool"}}));
  EXPECT_EQ((*server)->scrapes(), 2u);
}

TEST(MetricsScrape, BusyPortIsAnErrorNamingTheAddress) {
  auto a = mini_engine::metrics_server::start("127.0.0.1", 0);
  ASSERT_TRUE(a) << a.error().message();
  auto b = mini_engine::metrics_server::start("127.0.0.1", (*a)->port());
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), kvkit::errc::invalid_config);
  EXPECT_NE(b.error().message().find("127.0.0.1:" + std::to_string((*a)->port())),
            std::string::npos);
}

}  // namespace
