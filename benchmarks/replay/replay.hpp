// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The replay engine of kvkit-replay: reads a request trace (Mooncake JSON lines or token-id JSON
// lines) and replays it through a prefix_cache of any policy combination, sequentially or with
// requests overlapping in time, and reports hit rates, evictions, peak memory and speed.
//
// Trace formats (one JSON object a line; blank lines are ignored):
//   mooncake  {"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [...]}
//             Each hash id is one block of `trace_block_size` (512) input tokens, chained over
//             everything before it. The replay stores each hash id as ONE cache token in a cache
//             of block size 1, so one cache block stands for one trace block and capacities count
//             trace blocks. A unique "query" token is appended to every prompt (a cache always
//             leaves one prompt token to compute), so every trace block is eligible to hit; token
//             figures use each block's real length (trace_block_size, or input_length's remainder
//             for the last block). Only the trace blocks are committed with the prompt: the query
//             token's block is not a trace block and never registered as one. Output:
//             ceil(output_length / trace_block_size) unique blocks, the first of which is the
//             query token's block, so a running request holds its trace blocks plus
//             max(1, output blocks).
//   tokens    {"tokens": [...], "session_id": id, "tenant": id, "timestamp": ms,
//              "output_length": m, "class": c}   (all but "tokens" optional; ids are integers or
//             strings). Replayed with a cache block size of `cache_block_size` (16); output_length
//             unique tokens are appended.
//
// Output caching (replay_options::cache_output, kvkit-replay --cache-output on|off). On (the
// default, as vLLM does): when a request finishes, its output blocks are committed and stay cached
// like prompt blocks (they hold the pool although no later request of a Mooncake trace can hit
// them). Off: output blocks are held while the request runs and freed when it finishes; only
// prompt blocks are cached.
//
// Release order: finishing a request releases its blocks tail first (output, then prompt from its
// last block to its first), so a prompt's first block is its most recently released.
//
// Timing. Sequential: one request at a time (admit, commit, append output, commit, finish).
// Overlapping (default): a request arrives at its timestamp and holds its blocks (prompt and
// output, reserved at admission) until arrival + prefill_ms_per_token * uncached tokens +
// output_length * tpot_ms; then its output is committed and it finishes. Events run in time
// order, finishes before arrivals at equal times. A request that does not fit waits in a FIFO
// queue until blocks free up (counted as queued).
//
// Rejection. A request that needs more blocks than the pool holds (prompt with the query token,
// plus output) can never run: it is rejected as it arrives, in either mode, before it touches the
// cache (so it evicts nothing), and is not counted in the hit figures.
#pragma once

#include <kvkit/catalogue.hpp>
#include <kvkit/error.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/types.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <deque>
#include <functional>
#include <istream>
#include <limits>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "optimal.hpp"

namespace kvkit::replay {

/// Format of a trace file.
enum class trace_format : std::uint8_t { automatic, mooncake, tokens };

/// What to do with a bad line.
enum class error_mode : std::uint8_t { stop, skip };

/// One request of a trace, ready to replay.
struct request {
  std::uint32_t line = 0;             ///< 1-based line number in the trace file.
  double arrival_ms = 0;              ///< Arrival time.
  std::vector<token_id> prompt;       ///< Cache tokens of the prompt (mooncake: hash ids + query).
  std::uint32_t eligible_blocks = 0;  ///< Prompt blocks that can hit.
  std::uint32_t commit_tokens = 0;    ///< Prompt tokens committed (mooncake: hash ids only).
  std::uint64_t input_tokens = 0;     ///< Real prompt tokens.
  std::uint32_t last_block_tokens = 0;    ///< Mooncake: real tokens of the last trace block.
  std::uint32_t output_tokens = 0;        ///< Real output tokens.
  std::uint32_t output_cache_tokens = 0;  ///< Unique tokens appended to the cache as output
                                          ///< (mooncake: output blocks beyond the query's).
  std::uint64_t tenant_salt = 0;          ///< Tenant salt (0: shared).
  std::uint64_t session_id = 0;           ///< Session (0: none).
  std::uint32_t request_class = 0;        ///< Class (tier).
};

/// A parsed trace.
struct trace {
  trace_format format = trace_format::mooncake;  ///< Never automatic after parsing.
  std::uint32_t trace_block_size = 512;          ///< Mooncake: real tokens per hash id.
  std::uint32_t cache_block_size = 1;            ///< Tokens per cache block.
  std::vector<request> requests;                 ///< In file order.
  std::uint64_t distinct_blocks = 0;             ///< Working set: distinct cacheable prompt blocks.
  std::uint64_t total_lookups = 0;               ///< Sum of eligible blocks.
  std::vector<std::string> skipped;              ///< Messages of skipped lines (error_mode::skip).
  std::vector<std::string> class_names;          ///< Names of string classes, by class number.
};

/// How to read a trace.
struct parse_options {
  trace_format format = trace_format::automatic;  ///< Format; automatic looks at the first line.
  std::uint32_t trace_block_size = 512;           ///< Mooncake tokens per hash id.
  std::uint32_t cache_block_size = 16;            ///< Token format: tokens per cache block.
  error_mode on_error = error_mode::stop;         ///< Stop at the first bad line, or skip it.
  std::string source = "trace";                   ///< Name used in messages.
};

/// How to replay.
struct replay_options {
  std::uint64_t capacity = 0;         ///< Cache blocks; 0 means unlimited (nothing is evicted).
  bool sequential = false;            ///< One request at a time, ignoring timestamps.
  double tpot_ms = 20.0;              ///< Decode time per output token.
  double prefill_ms_per_token = 0.0;  ///< Prefill time per uncached prompt token.
  std::optional<double> ttl_ms{};     ///< ttl_eviction's time to live (default: never expires).
  std::vector<std::uint8_t> class_priorities{};  ///< priority_eviction: priority of each class.
  std::uint64_t seed = 0x6b766b6974ull;          ///< Hash seed (fixed: replays are repeatable).
  bool check_invariants = false;                 ///< Check the cache after every event (slow).
  /// Output blocks stay cached after their request finishes (as vLLM caches decode blocks);
  /// false frees them at finish.
  bool cache_output = true;
  /// Entries of the cache's record of removed blocks (cache_config::miss_record), which tells a
  /// miss on an evicted block from one on a block never stored. Empty: enough to remember every
  /// removal of the replay (so "never stored" means never cached before); the cache's own default
  /// is one per pool block. 0 turns the record off.
  std::optional<std::uint32_t> miss_record{};
  /// Called now and then with (requests done, requests total); may be empty.
  std::function<void(std::size_t, std::size_t)> progress{};
};

/// Figures of one request class.
struct class_figures {
  std::uint64_t requests = 0;       ///< Admitted requests.
  std::uint64_t lookup_blocks = 0;  ///< Their prompt blocks looked up.
  std::uint64_t hit_blocks = 0;     ///< Of those, hits.
  std::uint64_t query_tokens = 0;   ///< Their real prompt tokens.
  std::uint64_t hit_tokens = 0;     ///< Of those, served from the cache.

  /// Hit blocks / looked-up blocks.
  [[nodiscard]] double block_hit_rate() const noexcept {
    return lookup_blocks == 0 ? 0.0 : double(hit_blocks) / double(lookup_blocks);
  }
  /// Hit tokens / prompt tokens.
  [[nodiscard]] double token_hit_rate() const noexcept {
    return query_tokens == 0 ? 0.0 : double(hit_tokens) / double(query_tokens);
  }
};

/// What a replay measured.
struct replay_result {
  std::string policy;                    ///< "allocator/matcher/eviction".
  std::uint64_t capacity = 0;            ///< Cache blocks in the pool.
  bool unlimited = false;                ///< Capacity was sized so that nothing is ever evicted.
  std::uint64_t requests = 0;            ///< Requests completed.
  std::uint64_t queued = 0;              ///< Requests that waited for blocks.
  std::uint64_t rejected = 0;            ///< Requests that never fit.
  std::uint64_t lookup_blocks = 0;       ///< Prompt blocks looked up (eligible to hit).
  std::uint64_t hit_blocks = 0;          ///< Of those, hits.
  std::uint64_t query_tokens = 0;        ///< Real prompt tokens of completed requests.
  std::uint64_t hit_tokens = 0;          ///< Of those, served from the cache (tokens saved).
  std::uint64_t evictions = 0;           ///< Cached blocks evicted.
  std::uint64_t peak_blocks_in_use = 0;  ///< Most blocks allocated or cached at once.
  std::size_t metadata_bytes = 0;        ///< Bookkeeping bytes of the cache and its policies.
  std::size_t max_queue = 0;             ///< Longest wait queue.
  double seconds = 0;                    ///< Wall time of the replay loop.
  double cpu_seconds = 0;                ///< CPU time of the replay loop (its thread).
  std::vector<class_figures> classes;    ///< Per request class.
  /// Of hit_tokens, the tokens each level served: the pool, the host tier, the remote tier
  /// (tiers.hpp; all in the pool without tiers).
  std::array<std::uint64_t, 3> level_hit_tokens{};
  /// Requests by why their match stopped (kvkit::miss_reason): every completed request by the
  /// reason its admission was told (other_namespace: told never_stored, but the block was cached
  /// under other keys, from the cache's statistics), and every rejected one as pool_too_small.
  /// The fields add up to requests + rejected.
  miss_reason_counts misses{};

  /// Hit blocks / looked-up blocks.
  [[nodiscard]] double block_hit_rate() const noexcept {
    return lookup_blocks == 0 ? 0.0 : double(hit_blocks) / double(lookup_blocks);
  }
  /// Hit tokens / prompt tokens.
  [[nodiscard]] double token_hit_rate() const noexcept {
    return query_tokens == 0 ? 0.0 : double(hit_tokens) / double(query_tokens);
  }
  /// Block lookups per second of replay time.
  [[nodiscard]] double lookups_per_sec() const noexcept {
    return seconds <= 0 ? 0.0 : double(lookup_blocks) / seconds;
  }
  /// Prompt tokens per second of replay time.
  [[nodiscard]] double tokens_per_sec() const noexcept {
    return seconds <= 0 ? 0.0 : double(query_tokens) / seconds;
  }
  /// Prompt tokens per second of the replay's CPU time (steadier than wall time on a busy
  /// machine, where other processes take turns on the core).
  [[nodiscard]] double tokens_per_cpu_sec() const noexcept {
    return cpu_seconds <= 0 ? 0.0 : double(query_tokens) / cpu_seconds;
  }
};

namespace detail {

inline constexpr std::uint64_t max_token = std::numeric_limits<token_id>::max();

inline std::uint64_t name_hash(std::string_view s) {
  return XXH3_64bits_withSeed(s.data(), s.size(), 0x7265706c6179ull) | 1u;  // never 0
}

/// Reads an id field (non-negative integer or string) into a 64-bit key; absent -> 0.
inline std::optional<std::string> read_id(const nlohmann::json& j, const char* key,
                                          std::uint64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    *out = 0;
    return std::nullopt;
  }
  if (it->is_number_unsigned()) {
    *out = it->get<std::uint64_t>();
    return std::nullopt;
  }
  if (it->is_number_integer()) {
    const auto v = it->get<std::int64_t>();
    if (v < 0)
      return std::string(key) + " must be a non-negative integer or a string, got " +
             std::to_string(v);
    *out = static_cast<std::uint64_t>(v);
    return std::nullopt;
  }
  if (it->is_string()) {
    *out = name_hash(it->get_ref<const std::string&>());
    return std::nullopt;
  }
  return std::string(key) + " must be an integer or a string, got " + it->type_name();
}

/// Reads a required/optional non-negative integer field.
inline std::optional<std::string> read_count(const nlohmann::json& j, const char* key,
                                             bool required, std::uint64_t limit,
                                             std::uint64_t* out) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required)
      return std::string("missing field \"") + key + "\"";
    *out = 0;
    return std::nullopt;
  }
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (d < 0)
      return std::string("negative ") + key + " (" + it->dump() + ")";
    if (d != std::floor(d))
      return std::string(key) + " must be an integer, got " + it->dump();
    if (d > double(limit))
      return std::string(key) + " is too large (" + it->dump() + ")";
    *out = static_cast<std::uint64_t>(d);
    return std::nullopt;
  }
  if (!it->is_number_integer())
    return std::string(key) + " must be a number, got " + it->type_name();
  if (it->is_number_unsigned()) {
    const auto v = it->get<std::uint64_t>();
    if (v > limit)
      return std::string(key) + " is too large (" + std::to_string(v) + ")";
    *out = v;
    return std::nullopt;
  }
  const auto v = it->get<std::int64_t>();
  if (v < 0)
    return std::string("negative ") + key + " (" + std::to_string(v) + ")";
  if (static_cast<std::uint64_t>(v) > limit)
    return std::string(key) + " is too large (" + std::to_string(v) + ")";
  *out = static_cast<std::uint64_t>(v);
  return std::nullopt;
}

inline std::optional<std::string> read_time(const nlohmann::json& j, bool required, double* out) {
  auto it = j.find("timestamp");
  if (it == j.end()) {
    *out = 0;
    return required ? std::optional<std::string>("missing field \"timestamp\"") : std::nullopt;
  }
  if (!it->is_number())
    return std::string("timestamp must be a number, got ") + it->type_name();
  const double t = it->get<double>();
  if (!(t >= 0) || !std::isfinite(t))
    return "negative or invalid timestamp (" + it->dump() + ")";
  *out = t;
  return std::nullopt;
}

inline std::optional<std::string> read_tokens(const nlohmann::json& arr, const char* key,
                                              std::vector<token_id>* out) {
  if (!arr.is_array())
    return std::string(key) + " must be an array of integers, got " + arr.type_name();
  out->clear();
  out->reserve(arr.size() + 1);
  std::size_t i = 0;
  for (const auto& v : arr) {
    if (!v.is_number_integer())
      return std::string(key) + "[" + std::to_string(i) + "] must be an integer, got " + v.dump();
    const bool in_range = v.is_number_unsigned()
                              ? v.get<std::uint64_t>() <= max_token
                              : v.get<std::int64_t>() >= 0 &&
                                    v.get<std::int64_t>() <= static_cast<std::int64_t>(max_token);
    if (!in_range)
      return std::string(key) + "[" + std::to_string(i) + "] = " + v.dump() +
             " is outside [0, 2147483647]";
    out->push_back(static_cast<token_id>(v.get<std::int64_t>()));
    ++i;
  }
  return std::nullopt;
}

/// Parses one line into @p r; returns a message naming the problem on failure.
inline std::optional<std::string> parse_line(std::string_view text, trace& t,
                                             std::unordered_map<std::string, std::uint32_t>& cls,
                                             request* r) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded())
    return std::string("malformed JSON");
  if (!j.is_object())
    return std::string("expected a JSON object, got ") + j.type_name();
  if (t.format == trace_format::mooncake) {
    auto ids = j.find("hash_ids");
    if (ids == j.end())
      return std::string("missing field \"hash_ids\" (mooncake format)");
    if (auto e = read_time(j, true, &r->arrival_ms))
      return e;
    std::uint64_t in = 0, out = 0;
    if (auto e = read_count(j, "input_length", true, 0xFFFFFFFFull, &in))
      return e;
    if (auto e = read_count(j, "output_length", false, 0xFFFFFFFFull, &out))
      return e;
    if (in == 0)
      return std::string("input_length must be at least 1");
    if (auto e = read_tokens(*ids, "hash_ids", &r->prompt))
      return e;
    const std::uint64_t need = (in + t.trace_block_size - 1) / t.trace_block_size;
    if (r->prompt.size() != need) {
      return "hash_ids has " + std::to_string(r->prompt.size()) + " ids but input_length " +
             std::to_string(in) + " needs ceil(" + std::to_string(in) + " / " +
             std::to_string(t.trace_block_size) + ") = " + std::to_string(need) +
             (r->prompt.size() < need ? " (list too short)" : " (list too long)");
    }
    r->input_tokens = in;
    r->eligible_blocks = static_cast<std::uint32_t>(need);
    r->last_block_tokens = static_cast<std::uint32_t>(in - (need - 1) * t.trace_block_size);
    r->output_tokens = static_cast<std::uint32_t>(out);
    r->commit_tokens = static_cast<std::uint32_t>(need);
    // The query token's block is the first output block: append the others.
    const std::uint64_t out_blocks = (out + t.trace_block_size - 1) / t.trace_block_size;
    r->output_cache_tokens = static_cast<std::uint32_t>(out_blocks == 0 ? 0 : out_blocks - 1);
    r->prompt.push_back(0);  // the query token; made unique by the caller
    return std::nullopt;
  }
  auto toks = j.find("tokens");
  if (toks == j.end())
    return std::string("missing field \"tokens\" (token format)");
  if (auto e = read_tokens(*toks, "tokens", &r->prompt))
    return e;
  if (r->prompt.empty())
    return std::string("tokens must not be empty");
  if (auto e = read_time(j, false, &r->arrival_ms))
    return e;
  std::uint64_t out = 0;
  if (auto e = read_count(j, "output_length", false, 0xFFFFFFFFull, &out))
    return e;
  if (auto e = read_id(j, "session_id", &r->session_id))
    return e;
  if (auto e = read_id(j, "tenant", &r->tenant_salt))
    return e;
  r->request_class = 0;
  if (auto c = j.find("class"); c != j.end() && !c->is_null()) {
    if (c->is_string()) {
      const auto& name = c->get_ref<const std::string&>();
      auto [it, fresh] = cls.try_emplace(name, static_cast<std::uint32_t>(t.class_names.size()));
      if (fresh) {
        if (t.class_names.size() >= max_request_classes)
          return "more than " + std::to_string(max_request_classes) + " request classes";
        t.class_names.push_back(name);
      }
      r->request_class = it->second;
    } else {
      std::uint64_t v = 0;
      if (auto e = read_count(j, "class", false, max_request_classes - 1, &v))
        return e;
      r->request_class = static_cast<std::uint32_t>(v);
    }
  }
  r->input_tokens = r->prompt.size();
  r->eligible_blocks = static_cast<std::uint32_t>((r->prompt.size() - 1) / t.cache_block_size);
  r->commit_tokens = static_cast<std::uint32_t>(r->prompt.size());
  r->output_tokens = static_cast<std::uint32_t>(out);
  r->output_cache_tokens = static_cast<std::uint32_t>(out);
  return std::nullopt;
}

}  // namespace detail

/// Reads a trace. Errors name the source, the line and the problem, e.g.
/// "trace.jsonl:7: negative input_length (-3)".
inline result<trace> parse_trace(std::istream& in, const parse_options& opt = {}) {
  if (opt.trace_block_size == 0)
    return error{errc::invalid_config, "kvkit-replay: trace block size must be at least 1"};
  if (opt.cache_block_size == 0 || (opt.cache_block_size & (opt.cache_block_size - 1)) != 0)
    return error{errc::invalid_config, "kvkit-replay: block size must be a power of two, got " +
                                           std::to_string(opt.cache_block_size)};
  trace t;
  t.trace_block_size = opt.trace_block_size;
  t.format = opt.format;
  std::unordered_map<std::string, std::uint32_t> classes;
  std::string line;
  std::uint32_t number = 0;
  std::int64_t next_query = -1;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    if (t.format == trace_format::automatic) {
      // The first object decides: "hash_ids" means mooncake, "tokens" the token format.
      if (line.find("\"hash_ids\"") != std::string::npos) {
        t.format = trace_format::mooncake;
      } else if (line.find("\"tokens\"") != std::string::npos) {
        t.format = trace_format::tokens;
      } else {
        std::string msg = opt.source + ":" + std::to_string(number) +
                          ": cannot tell the trace format (no \"hash_ids\" or \"tokens\" field)";
        if (opt.on_error == error_mode::stop)
          return error{errc::invalid_argument, msg};
        t.skipped.push_back(std::move(msg));
        continue;
      }
    }
    t.cache_block_size = t.format == trace_format::mooncake ? 1 : opt.cache_block_size;
    request r;
    r.line = number;
    if (auto e = detail::parse_line(line, t, classes, &r)) {
      std::string msg = opt.source + ":" + std::to_string(number) + ": " + *e;
      if (opt.on_error == error_mode::stop)
        return error{errc::invalid_argument, std::move(msg)};
      t.skipped.push_back(std::move(msg));
      continue;
    }
    if (t.format == trace_format::mooncake)
      r.prompt.back() = static_cast<token_id>(next_query--);
    t.total_lookups += r.eligible_blocks;
    t.requests.push_back(std::move(r));
  }
  if (t.format == trace_format::automatic)
    t.format = trace_format::mooncake;
  t.cache_block_size = t.format == trace_format::mooncake ? 1 : opt.cache_block_size;

  // Working set: distinct cacheable blocks.
  if (t.format == trace_format::mooncake) {
    std::unordered_set<token_id> seen;
    seen.reserve(t.total_lookups);
    for (const auto& r : t.requests)
      seen.insert(r.prompt.begin(), r.prompt.end() - 1);
    t.distinct_blocks = seen.size();
  } else {
    const xxh3_hasher h(0x6b766b6974ull);
    std::unordered_set<std::uint64_t> seen;
    for (const auto& r : t.requests) {
      std::uint64_t key = h.root(r.tenant_salt, r.session_id, {});
      const std::span<const token_id> p(r.prompt);
      for (std::uint32_t b = 0; b < r.eligible_blocks; ++b) {
        key = h.chain(key, p.subspan(std::size_t{b} * t.cache_block_size, t.cache_block_size));
        seen.insert(key);
      }
    }
    t.distinct_blocks = seen.size();
  }
  return t;
}

/// Pool size at which nothing of @p t is ever evicted, even with every request running at once.
inline std::uint64_t unlimited_capacity(const trace& t) {
  std::uint64_t total = 0;
  for (const auto& r : t.requests)
    total +=
        (r.prompt.size() + r.output_cache_tokens + t.cache_block_size - 1) / t.cache_block_size + 1;
  return std::max<std::uint64_t>(total, 1);
}

/// The order in which requests start (indices into t.requests): file order when @p sequential,
/// else by arrival time, then file order. A request that waits for blocks keeps its place (the
/// wait queue is first in, first out).
inline std::vector<std::uint32_t> replay_order(const trace& t, bool sequential) {
  std::vector<std::uint32_t> order(t.requests.size());
  for (std::uint32_t i = 0; i < order.size(); ++i)
    order[i] = i;
  if (!sequential) {
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      return t.requests[a].arrival_ms < t.requests[b].arrival_ms;
    });
  }
  return order;
}

/// Next uses of every committed block of every request, for one replay order and capacity.
struct next_use_plan {
  std::vector<std::uint32_t> rank;    ///< Per request (file order): its position in replay order.
  std::vector<std::uint8_t> fits;     ///< Per request: 1 when it fits the pool alone (replayed).
  std::vector<std::uint32_t> offset;  ///< Per request: first entry in `next`.
  std::vector<std::uint32_t> next;    ///< Per request, per committed prompt block: next lookup.
  std::vector<std::uint32_t> blocks;  ///< Per request: committed prompt blocks.

  /// Next lookup (rank, or never_used) of block @p k of request @p i (file order); blocks beyond
  /// the committed prompt (output) are never used again.
  [[nodiscard]] std::uint32_t next_use(std::size_t i, std::size_t k) const noexcept {
    return k < blocks[i] ? next[offset[i] + k] : never_used;
  }
};

/// Cache blocks request @p r holds while it runs: prompt (with the query token) and output.
inline std::uint64_t blocks_held(const request& r, std::uint32_t cache_block_size) {
  return (std::uint64_t{r.prompt.size()} + r.output_cache_tokens + cache_block_size - 1) /
         cache_block_size;
}

/// Builds the plan of @p t replayed in @p order (request indices, file order) into a pool of
/// @p capacity blocks. O(blocks) time and memory.
inline next_use_plan plan_next_uses(const trace& t, std::span<const std::uint32_t> order,
                                    std::uint64_t capacity) {
  next_use_plan p;
  const std::size_t n = t.requests.size();
  p.rank.assign(n, 0);
  p.fits.assign(n, 0);
  p.offset.assign(n, 0);
  p.blocks.assign(n, 0);
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const request& r = t.requests[i];
    p.offset[i] = static_cast<std::uint32_t>(total);
    p.blocks[i] = r.commit_tokens / t.cache_block_size;
    p.fits[i] = blocks_held(r, t.cache_block_size) <= capacity ? 1 : 0;
    total += p.blocks[i];
  }
  for (std::size_t q = 0; q < order.size(); ++q)
    p.rank[order[q]] = static_cast<std::uint32_t>(q);

  // Chained keys of every committed prompt block.
  std::vector<std::uint64_t> keys(total);
  const xxh3_hasher h(0x6f7074696d616cull);
  for (std::size_t i = 0; i < n; ++i) {
    const request& r = t.requests[i];
    std::uint64_t key = h.root(r.tenant_salt, r.session_id, {});
    const std::span<const token_id> prompt(r.prompt);
    for (std::uint32_t k = 0; k < p.blocks[i]; ++k) {
      key = h.chain(key, prompt.subspan(std::size_t{k} * t.cache_block_size, t.cache_block_size));
      keys[p.offset[i] + k] = key;
    }
  }

  // Backwards through the replay order: the latest (so far: the earliest later) lookup of a key.
  p.next.assign(total, never_used);
  std::unordered_map<std::uint64_t, std::uint32_t> lookup;
  lookup.reserve(total);
  for (std::size_t q = order.size(); q-- > 0;) {
    const std::uint32_t i = order[q];
    const std::uint32_t base = p.offset[i];
    for (std::uint32_t k = 0; k < p.blocks[i]; ++k) {
      const auto it = lookup.find(keys[base + k]);
      if (it != lookup.end())
        p.next[base + k] = it->second;
    }
    // A block this request commits without looking it up (a token trace's last full block) is
    // allocated and committed afresh by it, whether or not it is cached: keeping it until then
    // is worth nothing.
    if (p.fits[i] != 0) {
      const std::uint32_t eligible = std::min(t.requests[i].eligible_blocks, p.blocks[i]);
      for (std::uint32_t k = 0; k < p.blocks[i]; ++k)
        lookup.insert_or_assign(keys[base + k],
                                k < eligible ? static_cast<std::uint32_t>(q) : never_used);
    }
  }
  return p;
}

namespace detail {

/// CPU time of the calling thread, in seconds.
inline double thread_cpu_seconds() noexcept {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

/// The eviction policy's options of a replay: the replay's clock (@p now_ns, nanoseconds), and
/// the TTL and priority classes asked for, where the policy has them.
template <class Options>
void set_eviction_options(Options& o, const replay_options& opt,
                          const std::shared_ptr<std::int64_t>& now_ns) {
  if constexpr (requires { o.now = std::function<std::chrono::nanoseconds()>{}; }) {
    o.now = [now_ns] {
      return std::chrono::nanoseconds(*now_ns);
    };
  }
  if constexpr (requires { o.ttl = std::chrono::nanoseconds{}; }) {
    if (opt.ttl_ms)
      o.ttl = std::chrono::nanoseconds(static_cast<std::int64_t>(*opt.ttl_ms * 1e6));
  }
  if constexpr (requires { o.classes.emplace_back(); }) {
    for (const std::uint8_t p : opt.class_priorities) {
      auto& rule = o.classes.emplace_back();
      rule.priority = p;
    }
  }
}

/// The pool's capacity in blocks (the trace's unlimited capacity when opt.capacity is 0), also
/// written to @p res; an error when no pool can be that large.
inline result<std::uint64_t> pool_capacity(const trace& t, const replay_options& opt,
                                           replay_result& res) {
  res.unlimited = opt.capacity == 0;
  const std::uint64_t cap = res.unlimited ? unlimited_capacity(t) : opt.capacity;
  if (cap >= invalid_block - 1)
    return error{errc::invalid_config,
                 "kvkit-replay: capacity " + std::to_string(cap) + " blocks is too large"};
  res.capacity = cap;
  return cap;
}

template <class Cache>
class replayer {
 public:
  replayer(Cache cache, const trace& t, const replay_options& opt,
           std::shared_ptr<std::int64_t> clock)
      : cache_(std::move(cache)), t_(t), opt_(opt), clock_(std::move(clock)) {
    for (const request& r : t.requests)
      namespaces_ |= r.tenant_salt != 0 || r.session_id != 0;
  }

  /// Feeds the next use of every block (from @p plan) into @p next_use, which the cache's
  /// optimal_eviction reads.
  void set_plan(const next_use_plan* plan, std::shared_ptr<std::vector<std::uint32_t>> next_use) {
    plan_ = plan;
    next_use_ = std::move(next_use);
  }

  /// The cache (after run(): its statistics, its listener's).
  [[nodiscard]] const Cache& cache() const noexcept { return cache_; }

  status run(replay_result& res) {
    res_ = &res;
    res.classes.assign(1, {});
    const double cpu_start = thread_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    status s = opt_.sequential ? run_sequential() : run_overlapping();
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    res.cpu_seconds = thread_cpu_seconds() - cpu_start;
    if (!s.ok())
      return s;
    const cache_stats st = cache_.stats();
    res.evictions = st.evictions;
    res.metadata_bytes = st.metadata_bytes;
    res.max_queue = max_queue_;
    if (opt_.progress)
      opt_.progress(t_.requests.size(), t_.requests.size());
    return {};
  }

 private:
  enum class outcome { started, busy, too_large };

  struct running {
    double finish_ms;
    std::uint64_t order;
    sequence_id id;
    bool operator>(const running& o) const noexcept {
      return finish_ms != o.finish_ms ? finish_ms > o.finish_ms : order > o.order;
    }
  };

  void set_time(double ms) noexcept {
    now_ms_ = ms;
    *clock_ = static_cast<std::int64_t>(ms * 1e6);
  }

  void note_progress() {
    if (opt_.progress && (++done_ & 255u) == 0)
      opt_.progress(done_, t_.requests.size());
  }

  error fail(const request& r, const char* what, const std::string& msg) {
    return error{errc::invalid_argument,
                 "kvkit-replay: line " + std::to_string(r.line) + ": " + what + ": " + msg};
  }

  [[nodiscard]] bool too_large(const request& r) const noexcept {
    return blocks_held(r, t_.cache_block_size) > cache_.num_blocks();
  }

  /// Admits @p r (prompt plus reserved output), commits the prompt and records its figures.
  result<outcome> start(const request& r, sequence_id* id) {
    if (too_large(r))
      return outcome::too_large;
    request_options ro;
    ro.tenant_salt = r.tenant_salt;
    ro.session_id = r.session_id;
    ro.request_class = r.request_class;
    // Another namespace's copy of the block where the match stopped is counted by the cache's
    // statistics only (the request is told never_stored); a trace with one namespace has none.
    const std::uint64_t other_before =
        namespaces_ ? cache_.stats().miss_reasons.other_namespace : 0;
    auto adm = cache_.admit(r.prompt, ro);
    if (!adm.ok()) {
      if (adm.error().code() == errc::out_of_blocks)
        return outcome::busy;
      return fail(r, "admit", adm.error().message());
    }
    const bool other_namespace =
        namespaces_ && cache_.stats().miss_reasons.other_namespace != other_before;
    if (r.output_cache_tokens != 0) {
      out_.resize(r.output_cache_tokens);
      for (auto& tok : out_) {
        tok = static_cast<token_id>(next_unique_);
        next_unique_ =
            next_unique_ == std::numeric_limits<token_id>::min() ? unique_base_ : next_unique_ - 1;
      }
      if (auto s = cache_.append(adm->id, out_); !s.ok()) {
        // Roll back: nothing of this attempt was committed, so finishing registers nothing.
        (void)cache_.finish(adm->id);
        if (s.code() == errc::out_of_blocks)
          return outcome::busy;
        return fail(r, "append", s.message());
      }
    }
    if (plan_ != nullptr && plan_->fits[index_of(r)] == 0) {
      (void)cache_.finish(adm->id);
      return fail(r, "optimal", "admitted although the plan counted it as too large for the pool");
    }
    // Mooncake: the trace blocks only; the query token's block is held, not registered.
    if (auto c = cache_.commit(adm->id, r.commit_tokens); !c.ok())
      return fail(r, "commit", c.error().message());

    const std::uint32_t cached = adm->request.cached_tokens;
    std::uint64_t hit_tokens = 0;
    std::uint64_t hit_blocks = 0;
    if (t_.format == trace_format::mooncake) {
      hit_blocks = cached;  // block size 1: one cache token per trace block
      hit_tokens =
          cached < r.eligible_blocks ? std::uint64_t{cached} * t_.trace_block_size : r.input_tokens;
    } else {
      hit_blocks = cached / t_.cache_block_size;
      hit_tokens = cached;
    }
    res_->lookup_blocks += r.eligible_blocks;
    res_->hit_blocks += hit_blocks;
    res_->query_tokens += r.input_tokens;
    res_->hit_tokens += hit_tokens;
    kvkit::detail::count_reason(res_->misses, adm->miss.reason, other_namespace);
    if (r.request_class >= res_->classes.size())
      res_->classes.resize(r.request_class + 1);
    auto& c = res_->classes[r.request_class];
    ++c.requests;
    c.lookup_blocks += r.eligible_blocks;
    c.hit_blocks += hit_blocks;
    c.query_tokens += r.input_tokens;
    c.hit_tokens += hit_tokens;
    count_levels(*adm, hit_tokens);
    if (plan_ != nullptr) {
      if (auto s = note_next_uses(r, adm->id, static_cast<std::uint32_t>(hit_blocks)); !s.ok())
        return error{s.code(), s.message()};
    }
    const std::uint64_t in_use = cache_.num_blocks() - cache_.allocator().free_count();
    res_->peak_blocks_in_use = std::max(res_->peak_blocks_in_use, in_use);
    last_uncached_ = r.input_tokens - hit_tokens;
    *id = adm->id;
    return outcome::started;
  }

  /// Splits a request's @p hit_tokens between the pool and the tiers (mooncake: in trace blocks,
  /// pool first, so the last block's real length falls to the level that served it).
  void count_levels(const admission& a, std::uint64_t hit_tokens) {
    const std::uint64_t host = a.tier_cached_tokens[0];
    const std::uint64_t remote = std::uint64_t{a.tier_cached_tokens[1]} + a.tier_cached_tokens[2];
    const std::uint64_t pool = a.request.cached_tokens - host - remote;
    if (t_.format == trace_format::mooncake) {
      const std::uint64_t b = t_.trace_block_size;
      const std::uint64_t p = std::min(pool * b, hit_tokens);
      const std::uint64_t h = std::min((pool + host) * b, hit_tokens) - p;
      res_->level_hit_tokens[0] += p;
      res_->level_hit_tokens[1] += h;
      res_->level_hit_tokens[2] += hit_tokens - p - h;
    } else {
      res_->level_hit_tokens[0] += pool;
      res_->level_hit_tokens[1] += host;
      res_->level_hit_tokens[2] += remote;
    }
  }

  [[nodiscard]] std::size_t index_of(const request& r) const noexcept {
    return static_cast<std::size_t>(&r - t_.requests.data());
  }

  /// Optimal eviction: writes the next use of every block @p id holds (it holds them all now, so
  /// none is a candidate), after checking that each of its @p hits hit blocks was planned to be
  /// used by this very request.
  status note_next_uses(const request& r, sequence_id id, std::uint32_t hits) {
    auto view = cache_.sequence(id);
    if (!view.ok())
      return fail(r, "optimal", view.error().message());
    const std::size_t i = index_of(r);
    const std::uint32_t rank = plan_->rank[i];
    std::vector<std::uint32_t>& next = *next_use_;
    for (std::size_t k = 0; k < view->blocks.size(); ++k) {
      const block_id b = view->blocks[k];
      if (k < hits && next[b] != rank)
        return fail(r, "optimal",
                    "block " + std::to_string(k) + " hit, but its planned next use was " +
                        (next[b] == never_used ? std::string("never")
                                               : "request rank " + std::to_string(next[b])) +
                        ", not this request's rank " + std::to_string(rank));
      next[b] = plan_->next_use(i, k);
    }
    return {};
  }

  /// A request was rejected (too large for the pool even alone): the plan must agree.
  status note_rejected(const request& r) {
    ++res_->rejected;
    ++res_->misses.pool_too_small;
    note_progress();
    if (plan_ != nullptr && plan_->fits[index_of(r)] != 0)
      return fail(r, "optimal", "rejected although the plan counted it as fitting the pool");
    return {};
  }

  status end(const request& r, sequence_id id) {
    // Output caching: commit the output (mooncake: the query token's block is the first output
    // block, so it is committed only when the request has output).
    const bool has_output =
        t_.format == trace_format::mooncake ? r.output_tokens != 0 : r.output_cache_tokens != 0;
    if (opt_.cache_output && has_output) {
      if (auto c = cache_.commit(id); !c.ok())
        return fail(r, "commit", c.error().message());
    }
    if (auto s = cache_.finish(id); !s.ok())
      return fail(r, "finish", s.message());
    ++res_->requests;
    if (opt_.check_invariants) {
      if (auto s = cache_.check_invariants(); !s.ok())
        return fail(r, "invariants", s.message());
    }
    note_progress();
    return {};
  }

  status run_sequential() {
    for (const request& r : t_.requests) {
      set_time(std::max(now_ms_, r.arrival_ms));
      sequence_id id;
      auto o = start(r, &id);
      if (!o.ok())
        return o.error();
      if (*o != outcome::started) {
        // Nothing else runs: a request that does not fit now never will.
        if (auto s = note_rejected(r); !s.ok())
          return s;
        continue;
      }
      if (auto s = end(r, id); !s.ok())
        return s;
    }
    return {};
  }

  double duration_ms(const request& r) const noexcept {
    return opt_.prefill_ms_per_token * double(last_uncached_) + opt_.tpot_ms * r.output_tokens;
  }

  /// Starts queued requests in order while they fit; rejects the head when nothing runs.
  status drain() {
    while (!queue_.empty()) {
      const request& r = t_.requests[queue_.front()];
      sequence_id id;
      auto o = start(r, &id);
      if (!o.ok())
        return o.error();
      if (*o != outcome::started) {
        if (*o == outcome::busy && !running_.empty())
          return {};
        if (auto s = note_rejected(r); !s.ok())
          return s;
        queue_.pop_front();
        continue;
      }
      running_.push(running{now_ms_ + duration_ms(r), order_++, id});
      if (id.index >= req_of_.size())
        req_of_.resize(id.index + 1);
      req_of_[id.index] = queue_.front();
      queue_.pop_front();
    }
    return {};
  }

  status run_overlapping() {
    const std::vector<std::uint32_t> order = replay_order(t_, false);
    std::size_t next = 0;
    while (next < order.size() || !running_.empty()) {
      const bool finish_first =
          !running_.empty() &&
          (next == order.size() || running_.top().finish_ms <= t_.requests[order[next]].arrival_ms);
      if (finish_first) {
        const running ev = running_.top();
        running_.pop();
        set_time(std::max(now_ms_, ev.finish_ms));
        if (auto s = end(t_.requests[req_of_[ev.id.index]], ev.id); !s.ok())
          return s;
        if (auto s = drain(); !s.ok())
          return s;
        continue;
      }
      const std::uint32_t ri = order[next++];
      const request& r = t_.requests[ri];
      set_time(std::max(now_ms_, r.arrival_ms));
      if (too_large(r)) {
        if (auto s = note_rejected(r); !s.ok())
          return s;
        continue;
      }
      if (!queue_.empty()) {
        queue_.push_back(ri);
        ++res_->queued;
        max_queue_ = std::max(max_queue_, queue_.size());
        continue;
      }
      sequence_id id;
      auto o = start(r, &id);
      if (!o.ok())
        return o.error();
      if (*o != outcome::started) {
        if (running_.empty() || *o == outcome::too_large) {
          if (auto s = note_rejected(r); !s.ok())
            return s;
          continue;
        }
        queue_.push_back(ri);
        ++res_->queued;
        max_queue_ = std::max(max_queue_, queue_.size());
        continue;
      }
      if (id.index >= req_of_.size())
        req_of_.resize(id.index + 1);
      req_of_[id.index] = ri;
      running_.push(running{now_ms_ + duration_ms(r), order_++, id});
    }
    return drain();
  }

  Cache cache_;
  const trace& t_;
  const replay_options& opt_;
  std::shared_ptr<std::int64_t> clock_;
  replay_result* res_ = nullptr;
  bool namespaces_ = false;  // some request has a tenant salt or a session
  double now_ms_ = 0;
  std::size_t done_ = 0;
  std::uint64_t last_uncached_ = 0;
  std::int64_t unique_base_ = -1 - std::int64_t(std::numeric_limits<std::uint32_t>::max() >> 2);
  std::int64_t next_unique_ = unique_base_;
  std::vector<token_id> out_;
  std::priority_queue<running, std::vector<running>, std::greater<>> running_;
  std::deque<std::uint32_t> queue_;
  std::vector<std::uint32_t> req_of_;
  std::size_t max_queue_ = 0;
  std::uint64_t order_ = 0;
  const next_use_plan* plan_ = nullptr;
  std::shared_ptr<std::vector<std::uint32_t>> next_use_;
};

}  // namespace detail

/// Replays @p t through a prefix_cache<Allocator, Matcher, Eviction, no_storage>.
template <class Allocator, class Matcher, class Eviction>
result<replay_result> replay(const trace& t, const replay_options& opt) {
  using cache_t = prefix_cache<Allocator, Matcher, Eviction, no_storage>;
  replay_result res;
  res.policy = std::string(policy_traits<Allocator>::name()) + "/" +
               std::string(policy_traits<Matcher>::name()) + "/" +
               std::string(policy_traits<Eviction>::name());
  const auto capacity = detail::pool_capacity(t, opt, res);
  if (!capacity.ok())
    return capacity.error();
  const std::uint64_t cap = *capacity;
  auto storage = no_storage::create(t.cache_block_size, static_cast<std::uint32_t>(cap));
  if (!storage.ok())
    return storage.error();
  cache_config cfg;
  cfg.seed = opt.seed;
  // Every removal remembered: the record keeps at least half its entries, and the replay removes
  // at most as many distinct blocks as it can cache.
  cfg.miss_record = opt.miss_record ? *opt.miss_record
                                    : static_cast<std::uint32_t>(std::min<std::uint64_t>(
                                          2 * unlimited_capacity(t), kv_layout::max_blocks));
  auto clock = std::make_shared<std::int64_t>(0);
  typename cache_t::eviction_options eo{};
  detail::set_eviction_options(eo, opt, clock);
  // Optimal eviction: the next use of every block, planned from the whole trace. Planning is
  // part of the run's time.
  const auto start = std::chrono::steady_clock::now();
  std::optional<next_use_plan> plan;
  if constexpr (std::is_same_v<Eviction, optimal_eviction>) {
    plan.emplace(plan_next_uses(t, replay_order(t, opt.sequential), cap));
    eo.next_use = std::make_shared<std::vector<std::uint32_t>>();
  }
  auto cache = cache_t::create(cfg, std::move(*storage), eo);
  if (!cache.ok())
    return cache.error();
  detail::replayer<cache_t> rp(std::move(*cache), t, opt, clock);
  if constexpr (std::is_same_v<Eviction, optimal_eviction>)
    rp.set_plan(&*plan, eo.next_use);
  if (auto s = rp.run(res); !s.ok())
    return error{s.code(), s.message()};
  if (plan)
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return res;
}

/// Whether "allocator", "matcher", "eviction" names a combination replay() accepts (the
/// catalogue's, or eviction "optimal"); the error names the unknown name and the accepted ones.
inline status check_combination(std::string_view allocator, std::string_view matcher,
                                std::string_view eviction) {
  const bool optimal = eviction == optimal_eviction::name;
  status s =
      with_combination(allocator, matcher, optimal ? policy_traits<lru_eviction>::name() : eviction,
                       []<class, class, class>() {});
  if (!s.ok() && s.message().find("unknown eviction policy") != std::string::npos)
    return error{s.code(), s.message() + ", or optimal (Belady's offline optimum, --optimal)"};
  return s;
}

namespace detail {
/// Replays @p t through the combination of matcher @p Matcher named "allocator", "eviction"
/// (eviction "optimal" included), which check_combination() accepted. Compiled once per matcher
/// into the kvkit_replay_engine library (engine_<matcher>.cpp), not in the including file.
template <class Matcher>
result<replay_result> replay_with_matcher(const trace& t, const replay_options& opt,
                                          std::string_view allocator, std::string_view eviction);
}  // namespace detail

/// Replays @p t through the combination named "allocator", "matcher", "eviction"; eviction
/// "optimal" is optimal_eviction (Belady's rule, planned from the trace). Defined in the
/// kvkit_replay_engine library (engine.cpp), which compiles every combination once.
result<replay_result> replay(const trace& t, const replay_options& opt, std::string_view allocator,
                             std::string_view matcher, std::string_view eviction);

/// Names of the shipped allocators, matchers and eviction policies, in catalogue order.
struct policy_catalogue {
  std::vector<std::string> allocators;  ///< Allocator names.
  std::vector<std::string> matchers;    ///< Matcher names.
  std::vector<std::string> evictions;   ///< Eviction policy names.
};

/// Lists the names in the catalogue.
inline policy_catalogue catalogue() {
  policy_catalogue c;
  const auto add = [](std::vector<std::string>& v, std::string_view n) {
    if (std::find(v.begin(), v.end(), n) == v.end())
      v.emplace_back(n);
  };
  for_each_combination([&]<class A, class M, class E>() {
    add(c.allocators, policy_traits<A>::name());
    add(c.matchers, policy_traits<M>::name());
    add(c.evictions, policy_traits<E>::name());
  });
  return c;
}

/// Ideal replay without any cache machinery: an unordered_set of seen blocks (mooncake: hash ids;
/// tokens: chained block hashes), unlimited capacity, sequential. The speed baseline, and the
/// exact upper bound of the hit figures.
inline replay_result ideal_replay(const trace& t) {
  replay_result res;
  res.policy = "ideal/unordered_set";
  res.unlimited = true;
  const auto start = std::chrono::steady_clock::now();
  if (t.format == trace_format::mooncake) {
    std::unordered_set<token_id> seen;
    seen.reserve(t.total_lookups);
    for (const auto& r : t.requests) {
      std::uint32_t k = 0;
      while (k < r.eligible_blocks && seen.contains(r.prompt[k]))
        ++k;
      seen.insert(r.prompt.begin() + k, r.prompt.begin() + r.eligible_blocks);
      res.lookup_blocks += r.eligible_blocks;
      res.hit_blocks += k;
      res.query_tokens += r.input_tokens;
      res.hit_tokens +=
          k < r.eligible_blocks ? std::uint64_t{k} * t.trace_block_size : r.input_tokens;
      ++res.requests;
    }
  } else {
    const xxh3_hasher h(0x6b766b6974ull);
    std::unordered_set<std::uint64_t> seen;
    for (const auto& r : t.requests) {
      std::uint64_t key = h.root(r.tenant_salt, r.session_id, {});
      const std::span<const token_id> p(r.prompt);
      std::uint32_t k = 0;
      bool hit = true;
      for (std::uint32_t b = 0; b < r.eligible_blocks; ++b) {
        key = h.chain(key, p.subspan(std::size_t{b} * t.cache_block_size, t.cache_block_size));
        if (hit && seen.contains(key)) {
          ++k;
        } else {
          hit = false;
          seen.insert(key);
        }
      }
      res.lookup_blocks += r.eligible_blocks;
      res.hit_blocks += k;
      res.query_tokens += r.input_tokens;
      res.hit_tokens += std::uint64_t{k} * t.cache_block_size;
      ++res.requests;
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return res;
}

}  // namespace kvkit::replay
