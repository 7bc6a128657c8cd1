// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit mini engine demo: a small Llama-style model served from a kvkit prefix cache. Sixteen
// requests share a 512-token system prompt and differ in a 32-96 token question; they run twice,
// with prefix caching off and on, otherwise identical. The second run prefills the system prompt
// once, and every request streams the same tokens as in the first run.
//
//   kvkit_mini_engine_demo [--metrics-port PORT [--metrics-linger SECONDS]]
//                          [--events ENDPOINT [--events-replay ENDPOINT] [--events-linger SECONDS]]
//
// With --metrics-port, the cache's statistics and the admission latency are served in the
// Prometheus format on http://127.0.0.1:PORT/metrics during the runs (and SECONDS after them).
// With --events, the caching run publishes its KV events in vLLM's format (ZeroMQ PUB on
// ENDPOINT, e.g. tcp://127.0.0.1:5557, or tcp://127.0.0.1:* for a free port; one batch per
// engine step), with a replay socket on --events-replay; --events-linger keeps both open SECONDS
// after the runs, for subscribers that fetch what they missed.
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

}  // namespace

int main(int argc, char** argv) {
  int metrics_port = -1;
  int metrics_linger = 0;
  std::string events_endpoint, events_replay;
  int events_linger = 0;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view flag = argv[i];
    if ((flag == "--events" || flag == "--events-replay") && i + 1 < argc) {
      (flag == "--events" ? events_endpoint : events_replay) = argv[i + 1];
      continue;
    }
    int* target = flag == "--metrics-port"     ? &metrics_port
                  : flag == "--metrics-linger" ? &metrics_linger
                  : flag == "--events-linger"  ? &events_linger
                                               : nullptr;
    const std::string_view value = i + 1 < argc ? argv[i + 1] : "";
    if (target == nullptr ||
        std::from_chars(value.data(), value.data() + value.size(), *target).ec != std::errc{} ||
        *target < 0) {
      return fail("bad argument '" + std::string(flag) + (value.empty() ? "" : " ") +
                  std::string(value) +
                  "'; accepted: --metrics-port PORT (0: any free port), --metrics-linger SECONDS, "
                  "--events ENDPOINT, --events-replay ENDPOINT, --events-linger SECONDS");
    }
  }
#ifdef MINI_ENGINE_HAVE_METRICS_SERVER
  std::unique_ptr<mini_engine::metrics_server> metrics;
  kvkit::latency_histogram admit_latency;
  if (metrics_port >= 0) {
    auto server = mini_engine::metrics_server::start("127.0.0.1", metrics_port);
    if (!server)
      return fail(server.error().message());
    metrics = std::move(*server);
    std::printf("metrics: http://127.0.0.1:%d/metrics\n", metrics->port());
    std::fflush(stdout);
  }
#else
  if (metrics_port >= 0)
    return fail("--metrics-port: built without cpp-httplib (apt-get install libcpp-httplib-dev)");
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
  std::vector<kvkit::token_id> system(512);
  for (auto& t : system)
    t = next();
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
