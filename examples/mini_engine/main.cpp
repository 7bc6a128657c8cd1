// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit mini engine demo: a small Llama-style model served from a kvkit prefix cache. Sixteen
// requests share a 512-token system prompt and differ in a 32-96 token question; they run twice,
// with prefix caching off and on, otherwise identical. The second run prefills the system prompt
// once, and every request streams the same tokens as in the first run.
//
//   kvkit_mini_engine_demo [--metrics-port PORT [--metrics-linger SECONDS]]
//                          [--events ENDPOINT [--events-replay ENDPOINT] [--events-linger SECONDS]]
//   kvkit_mini_engine_demo --redis HOST:PORT [--question-seed N] [--requests N]
//                          [--metrics-port PORT [--metrics-linger SECONDS]]
//
// With --metrics-port, the cache's statistics and the admission latency are served in the
// Prometheus format on http://127.0.0.1:PORT/metrics during the runs (and SECONDS after them).
// With --events, the caching run publishes its KV events in vLLM's format (ZeroMQ PUB on
// ENDPOINT, e.g. tcp://127.0.0.1:5557, or tcp://127.0.0.1:* for a free port; one batch per
// engine step), with a replay socket on --events-replay; --events-linger keeps both open SECONDS
// after the runs, for subscribers that fetch what they missed.
//
// With --redis, the engine shares its prefixes with other engines through one Redis server
// (kvkit::tiered<kvkit::redis_tier> under the pool, written through on commit, one hash seed for
// every engine): it runs N requests (4 by default) of the same system prompt with questions drawn
// from --question-seed, one at a time, prints for each how many prompt tokens came from Redis and
// how many it prefilled, then recomputes every request without any cache and checks that the
// generated tokens are the same. Run it twice with different question seeds: the second process's
// first request finds the system prompt the first one computed. With --metrics-port, /metrics
// serves the Redis tier's statistics too (kvkit_tier_* families, label tier="redis").
#include <kvkit/kvkit.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <mini_engine/cpu_backend.hpp>
#include <mini_engine/engine.hpp>
#ifdef MINI_ENGINE_HAVE_METRICS_SERVER
#include <mini_engine/metrics_server.hpp>
#endif
#ifdef MINI_ENGINE_HAVE_EVENTS
#include <kvkit/event_listener.hpp>
#include <kvkit/events/zmq_publisher.hpp>
#endif
#ifdef MINI_ENGINE_HAVE_REDIS
#include <kvkit/tiered.hpp>
#include <kvkit/tiers/redis_tier.hpp>
#endif

namespace {

using backend_t = mini_engine::cpu_backend<kvkit::bf16>;
#ifdef MINI_ENGINE_HAVE_EVENTS
using listener_t = kvkit::event_listener<kvkit::zmq_event_publisher>;  // --events
#else
using listener_t = kvkit::no_listener;
#endif
using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                    kvkit::lru_eviction, backend_t::storage_type, listener_t>;

struct run_result {
  std::vector<mini_engine::request_record> records;
  mini_engine::engine_stats stats;
  double seconds = 0;
};

int fail(const std::string& what) {
  std::fprintf(stderr, "mini_engine: %s\n", what.c_str());
  return 1;
}

#ifdef MINI_ENGINE_HAVE_METRICS_SERVER
/// Starts the /metrics server on 127.0.0.1:@p port and prints its address; none when @p port < 0.
kvkit::result<std::unique_ptr<mini_engine::metrics_server>> start_metrics(int port) {
  if (port < 0)
    return std::unique_ptr<mini_engine::metrics_server>{};
  auto server = mini_engine::metrics_server::start("127.0.0.1", port);
  if (!server)
    return server.error();
  std::printf("metrics: http://127.0.0.1:%d/metrics\n", (*server)->port());
  std::fflush(stdout);
  return std::move(*server);
}
#else
constexpr const char* kNoMetricsServer =
    "--metrics-port: built without cpp-httplib (apt-get install libcpp-httplib-dev)";
#endif

std::vector<kvkit::token_id> system_prompt(const mini_engine::model_config& config) {
  std::uint64_t state = 42;
  std::vector<kvkit::token_id> system(512);
  for (auto& t : system) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<kvkit::token_id>((state >> 33) % config.vocab_size);
  }
  return system;
}

#ifdef MINI_ENGINE_HAVE_REDIS
/// The hash seed every engine sharing one Redis uses (keys must agree across processes).
constexpr std::uint64_t shared_seed = 0x6b766b69742d3133ull;

template <class Cache, class OnStep>
kvkit::result<std::vector<mini_engine::request_record>> run_engine(
    Cache cache, const mini_engine::model_weights& weights,
    const std::vector<mini_engine::request>& requests, bool prefix_caching, OnStep on_step) {
  mini_engine::engine_options options;
  options.max_running = 1;
  options.prefix_caching = prefix_caching;
  mini_engine::engine<Cache, backend_t> engine(std::move(cache), backend_t(weights), options);
  if (auto s = engine.check(); !s)
    return kvkit::error{s.code(), s.message()};
  for (const auto& r : requests)
    engine.submit(r);
  while (!engine.idle()) {
    if (auto s = engine.step(); !s)
      return kvkit::error{s.code(), s.message()};
    on_step(engine.cache());
  }
  auto records = engine.finished();
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  for (const auto& rec : records) {
    if (!rec.error.empty())
      return kvkit::error{kvkit::errc::invalid_argument,
                          "request " + std::to_string(rec.id) + ": " + rec.error};
  }
  return records;
}

/// --redis: requests of one system prompt through a cache whose pool sits on a shared Redis,
/// then the same requests recomputed without a cache.
int run_shared(const std::string& redis, std::uint64_t question_seed, int count, int metrics_port,
               int metrics_linger) {
  const auto colon = redis.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      std::from_chars(redis.data() + colon + 1, redis.data() + redis.size(), port).ec !=
          std::errc{} ||
      port < 1 || port > 65535)
    return fail("--redis '" + redis + "': accepted: HOST:PORT, e.g. 127.0.0.1:6379");
#ifdef MINI_ENGINE_HAVE_METRICS_SERVER
  auto started = start_metrics(metrics_port);
  if (!started)
    return fail(started.error().message());
  const std::unique_ptr<mini_engine::metrics_server> metrics = std::move(*started);
#else
  if (metrics_port >= 0)
    return fail(kNoMetricsServer);
#endif
  const mini_engine::model_config config = mini_engine::model_config::tiny();
  auto weights = mini_engine::model_weights::random(config);
  if (!weights)
    return fail(weights.error().message());
  const auto system = system_prompt(config);
  std::uint64_t state = question_seed * 0x9E3779B97F4A7C15ull + 1;
  std::vector<mini_engine::request> requests;
  for (int i = 0; i < count; ++i) {
    mini_engine::request r;
    r.prompt = system;
    const std::uint32_t question = 32 + static_cast<std::uint32_t>(i * 7 % 40);
    for (std::uint32_t j = 0; j < question; ++j) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      r.prompt.push_back(static_cast<kvkit::token_id>((state >> 33) % config.vocab_size));
    }
    r.max_new_tokens = 8;
    requests.push_back(std::move(r));
  }
  const kvkit::kv_layout layout{.num_layers = config.num_layers,
                                .num_kv_heads = config.num_kv_heads,
                                .head_dim = config.head_dim,
                                .block_size = 16,
                                .num_blocks = 256};
  using shared_cache_t =
      kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher, kvkit::lru_eviction,
                          backend_t::storage_type, kvkit::tiered<kvkit::redis_tier>>;
  kvkit::redis_tier_options ro;
  ro.host = redis.substr(0, colon);
  ro.port = static_cast<std::uint16_t>(port);
  ro.model = "mini-engine-" + config.name + "-seed" + std::to_string(config.seed);
  ro.write = kvkit::tier_write_policy::through;  // the next engine sees a prefix at once
  auto remote = kvkit::redis_tier::create(layout, std::move(ro));
  if (!remote)
    return fail(remote.error().message());
  kvkit::cache_config cc;
  cc.seed = shared_seed;
  auto storage = backend_t::storage_type::create(layout);
  if (!storage)
    return fail(storage.error().message());
  auto cache = shared_cache_t::create(cc, std::move(*storage));
  if (!cache)
    return fail(cache.error().message());
  cache->listener().attach<0>(std::move(*remote));
  // /metrics: the pool's statistics and, with the `tier` label, the Redis tier's.
  const auto publish = [&]([[maybe_unused]] const shared_cache_t& c) {
#ifdef MINI_ENGINE_HAVE_METRICS_SERVER
    if (metrics) {
      const std::uint32_t classes[] = {0};
      std::string text = mini_engine::render_metrics(c, classes, nullptr);
      (void)kvkit::write_prometheus(text, c.listener().stats());
      metrics->publish(std::move(text));
    }
#endif
  };
  auto shared = run_engine(std::move(*cache), *weights, requests, true, publish);
  if (!shared)
    return fail(shared.error().message());
  auto plain_storage = backend_t::storage_type::create(layout);
  if (!plain_storage)
    return fail(plain_storage.error().message());
  auto plain = cache_t::create({}, std::move(*plain_storage));
  if (!plain)
    return fail(plain.error().message());
  auto full = run_engine(std::move(*plain), *weights, requests, false, [](const cache_t&) {});
  if (!full)
    return fail(full.error().message());
  std::size_t same = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& r = (*shared)[i];
    const bool equal = r.output == (*full)[i].output;
    same += equal ? 1 : 0;
    std::printf(
        "request %zu: prompt %u tokens, cached %u (from redis %u), prefilled %u, "
        "same tokens as a full recompute: %s\n",
        i, r.prompt_tokens, r.cached_tokens, r.tier_cached_tokens[0],
        r.prompt_tokens - r.cached_tokens, equal ? "yes" : "no");
  }
  std::printf("generated tokens identical to a full recompute: %zu of %zu requests\n", same,
              requests.size());
  std::fflush(stdout);
  if (metrics_linger > 0)
    std::this_thread::sleep_for(std::chrono::seconds(metrics_linger));
  return same == requests.size() ? 0 : 1;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  int metrics_port = -1;
  int metrics_linger = 0;
  std::string events_endpoint, events_replay;
  int events_linger = 0;
  std::string redis;
  int question_seed = 1;
  int shared_requests = 4;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view flag = argv[i];
    if ((flag == "--events" || flag == "--events-replay") && i + 1 < argc) {
      (flag == "--events" ? events_endpoint : events_replay) = argv[i + 1];
      continue;
    }
    if (flag == "--redis") {
      if (i + 1 >= argc)
        return fail("--redis needs HOST:PORT");
      redis = argv[i + 1];
      continue;
    }
    int* target = flag == "--metrics-port"     ? &metrics_port
                  : flag == "--metrics-linger" ? &metrics_linger
                  : flag == "--events-linger"  ? &events_linger
                  : flag == "--question-seed"  ? &question_seed
                  : flag == "--requests"       ? &shared_requests
                                               : nullptr;
    const std::string_view value = i + 1 < argc ? argv[i + 1] : "";
    if (target == nullptr ||
        std::from_chars(value.data(), value.data() + value.size(), *target).ec != std::errc{} ||
        *target < 0) {
      return fail("bad argument '" + std::string(flag) + (value.empty() ? "" : " ") +
                  std::string(value) +
                  "'; accepted: --metrics-port PORT (0: any free port), --metrics-linger SECONDS, "
                  "--events ENDPOINT, --events-replay ENDPOINT, --events-linger SECONDS, "
                  "--redis HOST:PORT, --question-seed N, --requests N");
    }
  }
  if (!redis.empty()) {
#ifdef MINI_ENGINE_HAVE_REDIS
    if (shared_requests < 1)
      return fail("--requests must be >= 1");
    return run_shared(redis, static_cast<std::uint64_t>(question_seed), shared_requests,
                      metrics_port, metrics_linger);
#else
    return fail("--redis: built without the Redis tier (apt-get install libhiredis-dev)");
#endif
  }
#ifdef MINI_ENGINE_HAVE_METRICS_SERVER
  auto started = start_metrics(metrics_port);
  if (!started)
    return fail(started.error().message());
  const std::unique_ptr<mini_engine::metrics_server> metrics = std::move(*started);
  kvkit::latency_histogram admit_latency;
#else
  if (metrics_port >= 0)
    return fail(kNoMetricsServer);
#endif
#ifdef MINI_ENGINE_HAVE_EVENTS
  std::unique_ptr<kvkit::zmq_event_publisher> events;
  if (!events_endpoint.empty()) {
    kvkit::zmq_publisher_options o;
    o.endpoint = events_endpoint;
    o.replay_endpoint = events_replay;
    auto pub = kvkit::zmq_event_publisher::create(o);
    if (!pub)
      return fail("--events: " + pub.error().message());
    events = std::make_unique<kvkit::zmq_event_publisher>(std::move(*pub));
    std::printf("events: %s replay: %s\n", events->endpoint().c_str(),
                events->replay_endpoint().empty() ? "-" : events->replay_endpoint().c_str());
    std::fflush(stdout);
  }
#else
  if (!events_endpoint.empty())
    return fail(
        "--events: built without kvkit::events (apt-get install libzmq3-dev "
        "libmsgpack-cxx-dev)");
#endif

  const mini_engine::model_config config = mini_engine::model_config::tiny();
  auto weights = mini_engine::model_weights::random(config);
  if (!weights)
    return fail(weights.error().message());

  // Prompts: one system prompt, sixteen questions (stand-in token ids from a fixed generator).
  std::uint64_t state = 42;
  auto next = [&state, &config] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<kvkit::token_id>((state >> 33) % config.vocab_size);
  };
  const std::vector<kvkit::token_id> system = system_prompt(config);
  for (std::size_t i = 0; i < system.size(); ++i)
    (void)next();  // the questions continue the same stream as before
  std::vector<mini_engine::request> requests;
  for (int i = 0; i < 16; ++i) {
    mini_engine::request r;
    r.prompt = system;
    const std::uint32_t question = 32 + (next() % 65);
    for (std::uint32_t j = 0; j < question; ++j)
      r.prompt.push_back(next());
    r.max_new_tokens = 16;
    requests.push_back(std::move(r));
  }

  std::printf(
      "mini engine: model '%s' (%llu parameters, %u layers, %u/%u heads of %u), backend %s\n",
      config.name.c_str(), static_cast<unsigned long long>(config.parameters()), config.num_layers,
      config.num_qo_heads, config.num_kv_heads, config.head_dim,
      backend_t(*weights).name().c_str());
  std::printf(
      "workload: 16 requests, 512-token shared system prompt + 32-96 token question, "
      "16 new tokens each, concurrency 4\n\n");

  run_result runs[2];
  for (int mode = 0; mode < 2; ++mode) {
    const kvkit::kv_layout layout{.num_layers = config.num_layers,
                                  .num_kv_heads = config.num_kv_heads,
                                  .head_dim = config.head_dim,
                                  .block_size = 16,
                                  .num_blocks = 512};
    auto storage = backend_t::storage_type::create(layout);
    if (!storage)
      return fail(storage.error().message());
    auto cache = cache_t::create({}, std::move(*storage));
    if (!cache)
      return fail(cache.error().message());
    mini_engine::engine_options options;
    options.max_running = 4;
    options.prefix_caching = mode == 1;
    mini_engine::engine<cache_t, backend_t> engine(std::move(*cache), backend_t(*weights), options);
    if (auto s = engine.check(); !s)
      return fail(s.message());
#ifdef MINI_ENGINE_HAVE_EVENTS
    if (events && mode == 1)
      engine.cache().listener().attach(*events);  // the caching run's blocks, medium GPU
#endif
    for (const auto& r : requests)
      engine.submit(r);
#ifdef MINI_ENGINE_HAVE_METRICS_SERVER
    engine.admit_latency = metrics ? &admit_latency : nullptr;
#endif
    while (!engine.idle()) {
      if (auto s = engine.step(); !s)
        return fail(s.message());
#ifdef MINI_ENGINE_HAVE_METRICS_SERVER
      if (metrics) {
        const std::uint32_t classes[] = {0};
        metrics->publish(mini_engine::render_metrics(engine.cache(), classes, &admit_latency));
      }
#endif
#ifdef MINI_ENGINE_HAVE_EVENTS
      engine.cache().listener().flush();  // one batch per step
#endif
    }
#ifdef MINI_ENGINE_HAVE_EVENTS
    if (events && mode == 1) {
      engine.cache().listener().detach();
      std::printf("events: %llu batches published (sequence 0 to %llu), %u blocks cached\n",
                  static_cast<unsigned long long>(events->next_sequence()),
                  static_cast<unsigned long long>(events->next_sequence()) - 1,
                  engine.cache().stats().blocks_cached);
      std::fflush(stdout);
    }
#endif
    runs[mode].records = engine.finished();
    runs[mode].stats = engine.stats();
    runs[mode].seconds = engine.now();
    for (const auto& rec : runs[mode].records) {
      if (!rec.error.empty())
        return fail("request " + std::to_string(rec.id) + ": " + rec.error);
    }
  }

  std::printf("%-12s %10s %10s %12s %14s %10s\n", "caching", "mean TTFT", "mean E2E",
              "cached/prompt", "prefilled tok", "wall");
  for (int mode = 0; mode < 2; ++mode) {
    double ttft = 0, e2e = 0;
    std::uint64_t cached = 0, prompt = 0;
    for (const auto& r : runs[mode].records) {
      ttft += r.ttft();
      e2e += r.e2e();
      cached += r.cached_tokens;
      prompt += r.prompt_tokens;
    }
    const double n = double(runs[mode].records.size());
    std::printf("%-12s %9.1fms %9.1fms %6llu/%-6llu %14llu %9.2fs\n", mode ? "on" : "off",
                1e3 * ttft / n, 1e3 * e2e / n, static_cast<unsigned long long>(cached),
                static_cast<unsigned long long>(prompt),
                static_cast<unsigned long long>(runs[mode].stats.prefill_tokens),
                runs[mode].seconds);
  }

  // Same tokens with and without the cache (records are in completion order: sort by id).
  auto by_id = [](std::vector<mini_engine::request_record> v) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return v;
  };
  const auto off = by_id(runs[0].records);
  const auto on = by_id(runs[1].records);
  std::size_t same = 0;
  for (std::size_t i = 0; i < off.size(); ++i)
    same += off[i].output == on[i].output ? 1 : 0;
  std::printf("\ngenerated tokens identical with and without caching: %zu of %zu requests\n", same,
              off.size());
  std::printf("peak K/V blocks held: off %u, on %u (%zu bytes per block)\n",
              runs[0].stats.peak_blocks_referenced, runs[1].stats.peak_blocks_referenced,
              runs[1].stats.block_bytes);
  std::printf("Experiments over this engine: docs/experiments.md\n");
  if (metrics_linger > 0 || events_linger > 0)
    std::this_thread::sleep_for(std::chrono::seconds(std::max(metrics_linger, events_linger)));
  return same == off.size() ? 0 : 1;
}
