// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// KV-aware routing over two engines. Each engine is a mini engine (tiny model, CPU) whose prefix
// cache is keyed by vLLM's block hashes (kvkit::vllm_hash_matcher) and publishes its KV events in
// vLLM's format on its own ZeroMQ PUB socket (a free 127.0.0.1 port). The router (router.hpp)
// subscribes to both streams, keeps the blocks each engine holds, and sends every request to the
// engine holding the longest prefix of its prompt.
//
// Workload: multi-turn chat sessions over one shared system prompt. A follow-up turn's prompt is
// the previous prompt, the answer and a new user message. Both engines soon hold the system
// prompt; only one holds a session's history. The program checks that every follow-up turn goes
// back to the engine that served the session's first turn, that this engine reports the cached
// tokens the router predicted, and that first turns spread over both engines.
//
// The router joins late: before it exists, engine 0 serves one session's first turn (whose KV
// events nobody receives). The router fetches them from engine 0's replay endpoint, and the
// program checks that this session's next turn goes to engine 0 too. Every sequence gap must be
// filled from a replay endpoint. Exit status 0 when all holds.
//
//   kvkit_router [--sessions N] [--turns T]
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/event_listener.hpp>
#include <kvkit/events/zmq_publisher.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/vllm_hashing.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "router.hpp"
#include <mini_engine/cpu_backend.hpp>
#include <mini_engine/engine.hpp>

namespace {

using namespace std::chrono_literals;
using backend_t = mini_engine::cpu_backend<kvkit::bf16>;
using cache_t =
    kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::vllm_hash_matcher, kvkit::lru_eviction,
                        backend_t::storage_type, kvkit::event_listener<kvkit::zmq_event_publisher>>;
using engine_t = mini_engine::engine<cache_t, backend_t>;

constexpr std::uint32_t block_size = 16;
const std::string topic = "kv-events";

int fail(const std::string& what) {
  std::fprintf(stderr, "router: %s\n", what.c_str());
  return 1;
}

struct served_engine {
  std::unique_ptr<kvkit::zmq_event_publisher> publisher;
  std::unique_ptr<engine_t> engine;
};

// Runs @p e until idle, ending one event batch per step as an engine does.
kvkit::status run(engine_t& e) {
  while (!e.idle()) {
    if (auto s = e.step(); !s)
      return s;
    e.cache().listener().flush();
  }
  return {};
}

// Waits until the router has applied every batch engine @p i published: from its PUB socket, or
// from its replay endpoint when the PUB socket has given nothing for a while (the batches
// published before the router subscribed never arrive there).
bool wait_for_events(router::kv_router& r, std::size_t i, const kvkit::zmq_event_publisher& p) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (r.engine(i).next_seq < p.next_sequence()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    if (r.poll(10ms) == 0)
      r.catch_up(i);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int sessions = 5;  // odd: a round-robin router would send follow-ups elsewhere
  int turns = 3;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view flag = argv[i];
    int* target = flag == "--sessions" ? &sessions : flag == "--turns" ? &turns : nullptr;
    const std::string_view value = i + 1 < argc ? argv[i + 1] : "";
    if (target == nullptr ||
        std::from_chars(value.data(), value.data() + value.size(), *target).ec != std::errc{} ||
        *target < 1) {
      return fail("bad argument '" + std::string(flag) + "'; accepted: --sessions N (>= 1), " +
                  "--turns T (>= 1)");
    }
  }

  const mini_engine::model_config config = mini_engine::model_config::tiny();
  auto weights = mini_engine::model_weights::random(config);
  if (!weights)
    return fail(weights.error().message());

  // Two engines, each publishing on a free loopback port, with a replay endpoint on another.
  std::vector<served_engine> engines;
  std::vector<std::string> endpoints, replay_endpoints;
  for (int i = 0; i < 2; ++i) {
    kvkit::zmq_publisher_options o;
    o.endpoint = "tcp://127.0.0.1:*";
    o.replay_endpoint = "tcp://127.0.0.1:*";
    o.topic = topic;
    auto pub = kvkit::zmq_event_publisher::create(o);
    if (!pub)
      return fail(pub.error().message());
    const kvkit::kv_layout layout{.num_layers = config.num_layers,
                                  .num_kv_heads = config.num_kv_heads,
                                  .head_dim = config.head_dim,
                                  .block_size = block_size,
                                  .num_blocks = 1024};
    auto storage = backend_t::storage_type::create(layout);
    if (!storage)
      return fail(storage.error().message());
    auto cache = cache_t::create({}, std::move(*storage));
    if (!cache)
      return fail(cache.error().message());
    served_engine s;
    s.publisher = std::make_unique<kvkit::zmq_event_publisher>(std::move(*pub));
    s.engine = std::make_unique<engine_t>(std::move(*cache), backend_t(*weights),
                                          mini_engine::engine_options{.max_running = 8});
    if (auto st = s.engine->check(); !st)
      return fail(st.message());
    s.engine->cache().listener().attach(*s.publisher);  // GPU medium, vLLM's default
    endpoints.push_back(s.publisher->endpoint());
    replay_endpoints.push_back(s.publisher->replay_endpoint());
    std::printf("engine %d publishes KV events on %s (replay: %s)\n", i, endpoints.back().c_str(),
                replay_endpoints.back().c_str());
    engines.push_back(std::move(s));
  }

  // Sessions: a shared 64-token system prompt, then per turn a user message of 24-40 tokens.
  std::uint64_t state = 7;
  auto next = [&state, &config] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<kvkit::token_id>((state >> 33) % config.vocab_size);
  };
  std::vector<kvkit::token_id> system(64);
  for (auto& t : system)
    t = next();
  std::vector<std::vector<kvkit::token_id>> history(sessions, system);
  std::vector<std::size_t> home(sessions, 0);

  // Before the router exists, engine 0 serves the first turn of an early session (a prompt of its
  // own, so that the sessions below start level): its KV events go out with no subscriber.
  std::vector<kvkit::token_id> early;
  for (int k = 0; k < 104; ++k)
    early.push_back(next());
  {
    mini_engine::request req;
    req.prompt = early;
    req.max_new_tokens = 8;
    engines[0].engine->submit(req);
    if (auto st = run(*engines[0].engine); !st)
      return fail(st.message());
    early.insert(early.end(), engines[0].engine->finished().back().output.begin(),
                 engines[0].engine->finished().back().output.end());
  }

  auto r = router::kv_router::create(endpoints, topic, block_size, replay_endpoints);
  if (!r)
    return fail(r.error().message());
  for (std::size_t i = 0; i < engines.size(); ++i) {
    r->catch_up(i);
    if (!wait_for_events(*r, i, *engines[i].publisher))
      return fail("events of engine " + std::to_string(i) + " did not arrive");
  }
  // The early session's blocks came from engine 0's replay endpoint: its follow-up goes there.
  for (int k = 0; k < 30; ++k)
    early.push_back(next());
  const router::decision early_decision = r->route(early);
  const std::uint64_t recovered_at_join = r->engine(0).recovered;
  std::printf(
      "router joined late: %llu batches of engine 0 fetched from its replay endpoint; the "
      "early session's follow-up goes to engine %zu (blocks held: %u / %u)\n",
      static_cast<unsigned long long>(recovered_at_join), early_decision.engine,
      early_decision.cached_blocks[0], early_decision.cached_blocks[1]);
  bool late_join_ok = recovered_at_join > 0 && early_decision.engine == 0 &&
                      early_decision.cached_blocks[0] > early_decision.cached_blocks[1];
  {
    mini_engine::request req;
    req.prompt = early;
    req.max_new_tokens = 8;
    const std::uint64_t id = engines[0].engine->submit(req);
    if (auto st = run(*engines[0].engine); !st)
      return fail(st.message());
    const mini_engine::request_record& rec = engines[0].engine->finished().back();
    const auto predicted = std::min(early_decision.cached_blocks[0],
                                    static_cast<std::uint32_t>((early.size() - 1) / block_size));
    std::printf("early session, turn 2: engine 0 reports %u cached tokens (router: %u blocks)\n",
                rec.cached_tokens, predicted);
    late_join_ok = late_join_ok && rec.id == id && rec.error.empty() &&
                   rec.cached_tokens >= predicted * block_size;
    if (!wait_for_events(*r, 0, *engines[0].publisher))
      return fail("events of engine 0 did not arrive");
  }

  int wrong_engine = 0, not_longest = 0, short_hits = 0, mispredicted = 0;
  std::printf("\n%-8s %-5s %-7s %-18s %-7s %s\n", "session", "turn", "engine", "blocks held: 0 / 1",
              "prompt", "cached tokens (engine's report)");
  for (int turn = 0; turn < turns; ++turn) {
    struct pending {
      int session;
      std::size_t engine;
      std::uint64_t id;
      std::uint32_t predicted;
      std::uint32_t prompt;
      std::uint32_t reusable;            // whole blocks of the previous turn's computed tokens
      std::vector<std::uint32_t> index;  // leading blocks each engine holds, per the router
    };
    std::vector<pending> submitted;
    for (int s = 0; s < sessions; ++s) {
      // The previous turn computed K/V for its prompt and answer but the answer's last token.
      const auto previous = static_cast<std::uint32_t>(history[s].size());
      const std::uint32_t reusable = turn == 0 ? 0 : (previous - 1) / block_size * block_size;
      const std::uint32_t question = 24 + next() % 17;
      for (std::uint32_t k = 0; k < question; ++k)
        history[s].push_back(next());
      const router::decision d = r->route(history[s]);
      if (turn == 0) {
        home[s] = d.engine;
      } else {
        wrong_engine += d.engine != home[s] ? 1 : 0;
        // The other engine holds the system prompt at most: the history decides.
        not_longest += d.cached_blocks[1 - home[s]] >= d.cached_blocks[home[s]] ? 1 : 0;
      }
      mini_engine::request req;
      req.prompt = history[s];
      req.max_new_tokens = 8;
      const std::uint64_t id = engines[d.engine].engine->submit(req);
      const auto prompt = static_cast<std::uint32_t>(history[s].size());
      // An engine computes at least a prompt's last token: at most (prompt - 1) / block_size
      // blocks come from its cache.
      const std::uint32_t predicted =
          std::min(d.cached_blocks[d.engine], (prompt - 1) / block_size);
      submitted.push_back({s, d.engine, id, predicted, prompt, reusable, d.cached_blocks});
    }
    for (std::size_t i = 0; i < engines.size(); ++i) {
      if (auto st = run(*engines[i].engine); !st)
        return fail(st.message());
    }
    for (const pending& p : submitted) {
      const mini_engine::request_record* rec = nullptr;
      for (const auto& f : engines[p.engine].engine->finished())
        rec = f.id == p.id ? &f : rec;
      if (rec == nullptr || !rec->error.empty())
        return fail("session " + std::to_string(p.session) + ": the request failed");
      const std::string index = std::to_string(p.index[0]) + " / " + std::to_string(p.index[1]);
      std::printf("%-8d %-5d %-7zu %-18s %-7u %u\n", p.session, turn + 1, p.engine, index.c_str(),
                  p.prompt, rec->cached_tokens);
      // The engine serves at least the blocks the router saw in its index (it may serve a few
      // more: blocks committed by a turn of another session since the decision).
      if (rec->cached_tokens < p.predicted * block_size)
        ++mispredicted;
      // A follow-up turn reuses every whole block of the previous turn (prompt and answer).
      if (rec->cached_tokens < p.reusable)
        ++short_hits;
      history[p.session].insert(history[p.session].end(), rec->output.begin(), rec->output.end());
    }
    for (std::size_t i = 0; i < engines.size(); ++i) {
      if (!wait_for_events(*r, i, *engines[i].publisher))
        return fail("events of engine " + std::to_string(i) + " did not arrive");
    }
  }

  std::uint64_t gaps = 0;
  std::printf("\n");
  for (std::size_t i = 0; i < engines.size(); ++i) {
    const router::engine_view& v = r->engine(i);
    gaps += v.gaps;
    std::printf(
        "engine %zu: %llu requests routed, %zu blocks in the router's index, %llu batches (%llu "
        "from its replay endpoint)\n",
        i, static_cast<unsigned long long>(v.routed), v.blocks.size(),
        static_cast<unsigned long long>(v.batches), static_cast<unsigned long long>(v.recovered));
  }
  std::size_t homes[2] = {0, 0};
  for (const std::size_t h : home)
    ++homes[h];
  const bool spread = sessions < 2 || (homes[0] > 0 && homes[1] > 0);
  std::printf(
      "follow-up turns on another engine: %d; not the longest prefix: %d; short cache hits: %d; "
      "engine cached less than the router predicted: %d; sequence gaps not filled: %llu; first "
      "turns per engine: %zu / %zu\n",
      wrong_engine, not_longest, short_hits, mispredicted, static_cast<unsigned long long>(gaps),
      homes[0], homes[1]);
  const bool ok = wrong_engine == 0 && not_longest == 0 && short_hits == 0 && mispredicted == 0 &&
                  gaps == 0 && spread && late_join_ok;
  std::printf("%s\n",
              ok ? "OK: every session stayed with the engine holding its history" : "FAILED");
  return ok ? 0 : 1;
}
