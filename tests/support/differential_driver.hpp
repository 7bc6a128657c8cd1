// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The workload driver of the randomized differential test: runs admit / commit / append /
/// finish / match / invalid calls against a `prefix_cache` with hash_matcher + lru_eviction
/// semantics and the naive model in tests/support/reference_cache.hpp, and checks every result,
/// error code, counter and gauge, the live sequences (tokens, computed tokens, block tables), the
/// set of cached prefixes, K/V content and check_invariants() after every operation.
///
/// Block tables are compared through a map from the model's keys (namespace + token prefix) to
/// real block ids: a cached prefix keeps one block id while it stays cached, two sequences share a
/// block id only where the model says they share that cached prefix, and no owned block is held
/// twice. K/V content proves that a hit never returns another prompt's K/V: each token slot holds
/// a value derived from (namespace, token prefix, layer, K/V, head, dim), checked on every hit and
/// when a sequence finishes.
///
/// The decisions come from a `choice_source` (tests/support/choice_source.hpp): a seeded
/// generator in tests/core/differential_test.cpp, the input bytes in tests/fuzz/cache_fuzzer.cpp.
#pragma once

#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "support/choice_source.hpp"
#include "support/driver_checks.hpp"
#include "support/reference_cache.hpp"

namespace kvkit::test {

// ---- K/V content --------------------------------------------------------------------------------

constexpr std::uint32_t kLayers = 2;
constexpr std::uint32_t kHeads = 2;
constexpr std::uint32_t kHeadDim = 4;

inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline std::uint64_t combine(std::uint64_t h, std::uint64_t v) {
  return mix64(h ^ mix64(v));
}

constexpr std::uint32_t kElementsPerToken = kLayers * 2 * kHeads * kHeadDim;

/// mix64 of each element index of a token's K/V, precomputed (the checks are hot).
inline const std::vector<std::uint64_t>& element_salts() {
  static const std::vector<std::uint64_t> salts = [] {
    std::vector<std::uint64_t> v(kElementsPerToken);
    for (std::uint32_t i = 0; i < kElementsPerToken; ++i)
      v[i] = mix64(i);
    return v;
  }();
  return salts;
}

/// out[t] identifies (namespace, tokens[0..t]).
inline std::vector<std::uint64_t> prefix_hashes(const ref_namespace& ns,
                                                std::span<const token_id> tokens) {
  std::uint64_t h = combine(combine(0x6B766B6974ull, ns.tenant_salt), ns.extra_keys.size());
  for (std::uint64_t e : ns.extra_keys)
    h = combine(h, e);
  std::vector<std::uint64_t> out;
  out.reserve(tokens.size());
  for (token_id t : tokens) {
    h = combine(h, static_cast<std::uint32_t>(t));
    out.push_back(h);
  }
  return out;
}

/// The K/V element a prompt with this prefix writes; an integer below 2^23 plus one, so exact
/// in float and never 0 (the storage starts zero-filled).
inline float kv_value(std::uint64_t prefix_hash, std::uint32_t layer, std::uint32_t kv,
                      std::uint32_t element) {
  const std::uint64_t h =
      mix64(prefix_hash ^ element_salts()[(layer * 2 + kv) * kHeads * kHeadDim + element]);
  return static_cast<float>((h >> 41) + 1);
}

// ---- workload configuration
// ----------------------------------------------------------------------

inline const std::vector<ref_namespace>& namespaces() {
  // Same salt different extra keys, and different salt same (no) extra keys.
  static const std::vector<ref_namespace> ns = {{0, {}}, {7, {}}, {0, {42}}};
  return ns;
}

constexpr std::uint32_t kVocabulary = 4;
constexpr std::size_t kMaxLive = 6;

/// What a run exercised (the coverage test requires each to be non-zero).
struct coverage {
  std::uint64_t operations = 0;
  std::uint64_t admissions = 0;
  std::uint64_t hits = 0;
  std::uint64_t full_hits = 0;
  std::uint64_t partial_hits = 0;
  std::uint64_t short_queries = 0;
  std::uint64_t registered = 0;
  std::uint64_t deduplicated = 0;
  std::uint64_t evictions = 0;
  std::uint64_t out_of_blocks = 0;
  std::uint64_t invalid_calls = 0;
  std::uint64_t probes = 0;
  std::uint64_t probe_hits = 0;
  std::uint64_t appends = 0;
  std::uint64_t finishes = 0;
  std::uint64_t kv_blocks_checked = 0;

  coverage& operator+=(const coverage& o) {
    operations += o.operations;
    admissions += o.admissions;
    hits += o.hits;
    full_hits += o.full_hits;
    partial_hits += o.partial_hits;
    short_queries += o.short_queries;
    registered += o.registered;
    deduplicated += o.deduplicated;
    evictions += o.evictions;
    out_of_blocks += o.out_of_blocks;
    invalid_calls += o.invalid_calls;
    probes += o.probes;
    probe_hits += o.probe_hits;
    appends += o.appends;
    finishes += o.finishes;
    kv_blocks_checked += o.kv_blocks_checked;
    return *this;
  }
};

inline std::ostream& operator<<(std::ostream& os, const coverage& c) {
  return os << "ops=" << c.operations << " admissions=" << c.admissions << " hits=" << c.hits
            << " full_hits=" << c.full_hits << " partial_hits=" << c.partial_hits
            << " short=" << c.short_queries << " registered=" << c.registered
            << " dedup=" << c.deduplicated << " evictions=" << c.evictions
            << " out_of_blocks=" << c.out_of_blocks << " invalid=" << c.invalid_calls
            << " probes=" << c.probes << " probe_hits=" << c.probe_hits << " appends=" << c.appends
            << " finishes=" << c.finishes << " kv_blocks_checked=" << c.kv_blocks_checked;
}

/// KVKIT_DIFF_TRACE=1 in the environment prints every run and operation to stderr.
inline bool trace_enabled() {
  static const bool on = std::getenv("KVKIT_DIFF_TRACE") != nullptr;
  return on;
}

inline std::string describe(std::span<const token_id> tokens) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < tokens.size(); ++i)
    os << (i ? "," : "") << tokens[i];
  os << "]";
  return os.str();
}

// ---- one randomized run
// --------------------------------------------------------------------------

/// One run of a workload against a `prefix_cache` of type @p Cache (matcher with
/// `hash_matcher` semantics, `lru_eviction`, `host_storage<float>`; any allocator) and the
/// reference model, comparing everything after every operation. Every decision comes from
/// @p Choices; failed checks go to the sink given at construction.
template <class Cache, choice_source Choices>
class differential_run {
 public:
  differential_run(Choices& choices, check_context::sink sink, std::uint64_t seed,
                   std::uint32_t block_size, std::uint32_t num_blocks)
      : choices_(choices),
        checks_(std::move(sink)),
        block_size_(block_size),
        num_blocks_(num_blocks),
        model_(num_blocks, block_size),
        cache_(make_cache(seed, block_size, num_blocks)),
        block_key_(num_blocks) {
    const std::uint32_t max_prefix_blocks = std::clamp<std::uint32_t>(num_blocks / 4, 1, 8);
    for (int i = 0; i < 6; ++i) {
      std::vector<token_id> p;
      if (i > 0 && pick(2) == 0) {
        p = pool_[pick(pool_.size())];
        append_random(p, 1 + pick(2 * block_size_));
      } else {
        append_random(p, 1 + pick(max_prefix_blocks * block_size_));
      }
      pool_.push_back(std::move(p));
    }
  }

  /// Whether a check failed.
  [[nodiscard]] bool failed() const noexcept { return checks_.failed(); }

  /// Runs up to @p ops operations (fewer when the choices run out); stops at the first
  /// divergence (a failed check).
  ///
  /// Each operation's own results are compared as it runs; the whole-cache comparison
  /// (check_invariants(), counters, gauges, live sequences, block ids, the cached set) runs after
  /// every @p check_every operations, after the last one, and after an operation whose own checks
  /// failed. 1 (the default) compares everything after every operation.
  /// @param ops Operations to run.
  /// @param check_every Operations between whole-cache comparisons (>= 1).
  coverage run(std::uint64_t ops, std::uint64_t check_every = 1) {
    if (check_every == 0)
      check_every = 1;
    for (std::uint64_t i = 0; i < ops && !choices_.exhausted(); ++i) {
      touched_ = reference_cache::no_sequence;
      step();
      ++cov_.operations;
      const bool last = i + 1 == ops || choices_.exhausted();
      if (checks_.failed() || last || (i + 1) % check_every == 0) {
        check_everything();
      } else if (touched_ != reference_cache::no_sequence) {
        // Between whole comparisons, still bind the blocks this operation cached or hit to the
        // model's prefixes, so that every cached prefix is bound while its sequence is live.
        bind_blocks(touched_);
      }
      if (checks_.failed()) {
        KVKIT_DRIVER_FAIL() << "first divergence at operation " << i << ": " << last_op_;
        break;
      }
    }
    cov_.evictions = model_.stats().evictions;
    return cov_;
  }

 private:
  using cache_type = Cache;

  std::uint64_t pick(std::uint64_t n) { return choices_.next(n); }

  static cache_type make_cache(std::uint64_t seed, std::uint32_t block_size,
                               std::uint32_t num_blocks) {
    kvkit::kv_layout layout;
    layout.num_layers = kLayers;
    layout.num_kv_heads = kHeads;
    layout.head_dim = kHeadDim;
    layout.block_size = block_size;
    layout.num_blocks = num_blocks;
    layout.type = kvkit::dtype::fp32;
    layout.order = kvkit::kv_order::nhd;  // token_kv() relies on it
    auto storage = kvkit::host_storage<float>::create(layout);
    kvkit::cache_config config;
    config.seed = mix64(seed);
    return std::move(cache_type::create(config, std::move(storage).value())).value();
  }

  // ---- workload ----

  void append_random(std::vector<token_id>& v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
      v.push_back(static_cast<token_id>(pick(kVocabulary)));
  }

  std::vector<token_id> gen_prompt() {
    std::vector<token_id> p;
    const std::uint64_t r = pick(100);
    if (r < 2) {  // more blocks than the whole pool
      append_random(p, std::size_t{num_blocks_} * block_size_ + 1 + pick(block_size_));
    } else if (r < 12) {  // a fresh short prompt
      append_random(p, 1 + pick(2 * block_size_));
    } else {
      p = pool_[pick(pool_.size())];
      if (pick(4) == 0)
        p.resize(1 + pick(p.size()));
      if (pick(2) == 0)
        append_random(p, 1 + pick(block_size_ + 1));
    }
    return p;
  }

  static kvkit::request_options options_for(const ref_namespace& ns, std::uint32_t request_class) {
    kvkit::request_options o;
    o.tenant_salt = ns.tenant_salt;
    o.extra_keys = ns.extra_keys;
    o.request_class = request_class;
    return o;
  }

  reference_cache::handle pick_live() { return live_[pick(live_.size())]; }

  /// Names the operation about to run (printed at once with KVKIT_DIFF_TRACE set, so that an
  /// abort inside the cache shows which call it was).
  void begin_op(std::string what) {
    last_op_ = std::move(what);
    if (trace_enabled())
      std::fprintf(stderr, "  op %llu: %s\n", static_cast<unsigned long long>(cov_.operations),
                   last_op_.c_str());
  }

  void step() {
    enum { admit, commit, append, finish, probe, invalid };
    int weights[6] = {26, 22, 14, 14, 10, 14};
    if (live_.empty())
      weights[commit] = weights[append] = weights[finish] = 0;
    if (live_.size() >= kMaxLive) {
      weights[admit] = 6;
      weights[finish] = 30;
    }
    int total = 0;
    for (int w : weights)
      total += w;
    int r = static_cast<int>(pick(static_cast<std::uint64_t>(total)));
    int op = 0;
    while (r >= weights[op])
      r -= weights[op++];
    switch (op) {
      case admit:
        do_admit();
        break;
      case commit:
        do_commit();
        break;
      case append:
        do_append();
        break;
      case finish:
        do_finish();
        break;
      case probe:
        do_probe();
        break;
      default:
        do_invalid();
        break;
    }
  }

  void do_admit() {
    const ref_namespace& ns = namespaces()[pick(namespaces().size())];
    const std::vector<token_id> prompt = gen_prompt();
    const auto request_class = static_cast<std::uint32_t>(pick(4));
    begin_op("admit(ns salt=" + std::to_string(ns.tenant_salt) +
             " extra=" + std::to_string(ns.extra_keys.size()) + ", " + describe(prompt) + ")");
    const kvkit::cache_stats before = cache_.stats();
    const kvkit::test::ref_stats model_before = model_.stats();

    const auto want = model_.admit(prompt, ns);
    auto got = cache_.admit(prompt, options_for(ns, request_class));
    KVKIT_DRIVER_EXPECT_EQ(got.code(), want.code)
        << (got.ok() ? std::string() : got.error().message());
    if (got.code() != want.code)
      return;
    if (!got.ok()) {
      if (want.code == errc::out_of_blocks)
        ++cov_.out_of_blocks;
      KVKIT_DRIVER_EXPECT(cache_.stats() == before) << "failed admit changed the cache";
      KVKIT_DRIVER_EXPECT(model_.stats() == model_before) << "failed admit changed the model";
      return;
    }
    const kvkit::admission& a = *got;
    KVKIT_DRIVER_EXPECT_EQ(a.request.prompt_tokens, prompt.size());
    KVKIT_DRIVER_EXPECT_EQ(a.request.cached_tokens, want.cached_tokens);
    KVKIT_DRIVER_EXPECT_EQ(a.cached_blocks, want.cached_blocks);
    KVKIT_DRIVER_EXPECT_EQ(a.new_blocks, want.new_blocks);
    KVKIT_DRIVER_EXPECT(issued_.insert({a.id.index, a.id.generation}).second)
        << "sequence id {" << a.id.index << "," << a.id.generation << "} issued twice";
    KVKIT_DRIVER_EXPECT_EQ(want.seq, real_ids_.size());
    real_ids_.push_back(a.id);
    written_.push_back(want.cached_tokens);
    max_index_ = std::max(max_index_, a.id.index);
    auto& g = max_generation_[a.id.index];
    g = std::max(g, a.id.generation);
    live_.push_back(want.seq);
    touched_ = want.seq;

    ++cov_.admissions;
    if (want.eligible_blocks == 0)
      ++cov_.short_queries;
    if (want.cached_blocks > 0) {
      ++cov_.hits;
      if (want.cached_blocks == want.eligible_blocks) {
        ++cov_.full_hits;
      } else {
        ++cov_.partial_hits;
      }
      // Every slot of every hit block holds what this prompt would have written there.
      check_kv(want.seq, 0, want.cached_tokens);
    }
    // The runtime's prefill: K/V of every token not served from the cache.
    write_kv(want.seq);
  }

  void do_commit() {
    const auto h = pick_live();
    const auto& q = model_.seq(h);
    const auto len = static_cast<std::uint32_t>(q.tokens.size());
    const std::uint32_t computed = q.computed;
    std::uint32_t n = len;
    bool whole = false;
    switch (pick(10)) {
      case 0:
      case 1:
        whole = true;
        break;
      case 2:
      case 3:
        break;
      case 4:
      case 5:
      case 6:
      case 7:
        n = computed + static_cast<std::uint32_t>(pick(len - computed + 1));
        break;
      case 8:
        n = computed;
        break;
      default:
        n = std::min(
            len, (computed / block_size_ + 1 + static_cast<std::uint32_t>(pick(2))) * block_size_);
        break;
    }
    begin_op("commit(seq " + std::to_string(h) + ", " + (whole ? "all" : std::to_string(n)) + ")");
    const auto want = whole ? model_.commit_all(h) : model_.commit(h, n);
    auto got = whole ? cache_.commit(real_ids_[h]) : cache_.commit(real_ids_[h], n);
    KVKIT_DRIVER_EXPECT_EQ(got.code(), want.code)
        << (got.ok() ? std::string() : got.error().message());
    if (!got.ok() || got.code() != want.code)
      return;
    touched_ = h;
    KVKIT_DRIVER_EXPECT_EQ(got->registered_blocks, want.registered);
    KVKIT_DRIVER_EXPECT_EQ(got->deduplicated_blocks, want.deduplicated);
    cov_.registered += want.registered;
    cov_.deduplicated += want.deduplicated;
  }

  void do_append() {
    const auto h = pick_live();
    const auto& q = model_.seq(h);
    std::vector<token_id> tokens;
    const std::size_t count = 1 + pick(3);
    // Half the time decode along a pool prompt, so generated tokens are shared too.
    if (pick(2) == 0) {
      for (const auto& p : pool_) {
        if (p.size() > q.tokens.size() && std::equal(q.tokens.begin(), q.tokens.end(), p.begin())) {
          const std::size_t take = std::min(count, p.size() - q.tokens.size());
          tokens.assign(p.begin() + static_cast<std::ptrdiff_t>(q.tokens.size()),
                        p.begin() + static_cast<std::ptrdiff_t>(q.tokens.size() + take));
          break;
        }
      }
    }
    if (tokens.empty())
      append_random(tokens, count);
    begin_op("append(seq " + std::to_string(h) + ", " + describe(tokens) + ")");
    const kvkit::cache_stats before = cache_.stats();
    const auto view_before = snapshot(h);

    const errc want = model_.append(h, tokens);
    const auto got = cache_.append(real_ids_[h], tokens);
    KVKIT_DRIVER_EXPECT_EQ(got.code(), want) << got.message();
    if (got.code() != want)
      return;
    if (!got.ok()) {
      if (want == errc::out_of_blocks)
        ++cov_.out_of_blocks;
      KVKIT_DRIVER_EXPECT(cache_.stats() == before) << "failed append changed the cache";
      KVKIT_DRIVER_EXPECT(snapshot(h) == view_before) << "failed append changed the sequence";
      return;
    }
    ++cov_.appends;
    write_kv(h);
  }

  void do_finish() {
    const auto h = pick_live();
    begin_op("finish(seq " + std::to_string(h) + ")");
    // Nobody overwrote any of this sequence's K/V while it was held.
    check_kv(h, 0, static_cast<std::uint32_t>(model_.seq(h).tokens.size()));
    const errc want = model_.finish(h);
    const auto got = cache_.finish(real_ids_[h]);
    KVKIT_DRIVER_EXPECT_EQ(got.code(), want) << got.message();
    live_.erase(std::find(live_.begin(), live_.end(), h));
    finished_.push_back(h);
    ++cov_.finishes;
  }

  void do_probe() {
    std::vector<token_id> prompt;
    const ref_namespace* ns = &namespaces()[pick(namespaces().size())];
    const std::uint64_t r = pick(10);
    if (r < 3 && model_.cached_count() > 0) {  // a cached prefix, in its own or another namespace
      const ref_key& k = model_.cached_key(pick(model_.cached_count()));
      prompt = k.prefix;
      if (pick(3) != 0)
        ns = &k.ns;
      append_random(prompt, 1 + pick(2 * block_size_));
    } else if (r < 4) {
      append_random(prompt, pick(3));  // tiny, possibly empty
    } else {
      prompt = gen_prompt();
    }
    begin_op("match(salt=" + std::to_string(ns->tenant_salt) + ", " + describe(prompt) + ")");
    const std::uint32_t want = model_.match(prompt, *ns);
    KVKIT_DRIVER_EXPECT_EQ(cache_.match(prompt, options_for(*ns, 0)), want);
    ++cov_.probes;
    if (want > 0)
      ++cov_.probe_hits;
  }

  /// An id this cache never issued.
  kvkit::sequence_id unknown_id() {
    switch (pick(3)) {
      case 0:
        return kvkit::sequence_id{max_index_ + 1 + static_cast<std::uint32_t>(pick(4)), 1};
      case 1:
        if (!real_ids_.empty())
          return {real_ids_[pick(real_ids_.size())].index, 0};
        return kvkit::sequence_id{};
      default:
        if (!real_ids_.empty()) {
          const std::uint32_t index = real_ids_[pick(real_ids_.size())].index;
          return {index, max_generation_[index] + 1 + static_cast<std::uint32_t>(pick(3))};
        }
        return kvkit::sequence_id{0, 1};
    }
  }

  void do_invalid() {
    ++cov_.invalid_calls;
    const reference_cache model_before = model_;
    const kvkit::cache_stats before = cache_.stats();
    std::vector<view_copy> views_before;
    for (auto h : live_)
      views_before.push_back(snapshot(h));

    const std::uint64_t kind = pick(8);
    if (kind == 0) {
      begin_op("admit(empty)");
      const auto want = model_.admit({}, namespaces()[0]);
      KVKIT_DRIVER_EXPECT_EQ(cache_.admit({}).code(), want.code);
    } else if ((kind == 1 || kind == 2 || kind == 3) && !live_.empty()) {
      const auto h = pick_live();
      const auto& q = model_.seq(h);
      const auto len = static_cast<std::uint32_t>(q.tokens.size());
      if (kind == 1) {
        begin_op("append(seq " + std::to_string(h) + ", empty)");
        KVKIT_DRIVER_EXPECT_EQ(cache_.append(real_ids_[h], {}).code(), model_.append(h, {}));
      } else {
        // Too many tokens, or fewer than already computed.
        std::uint32_t n = len + 1 + static_cast<std::uint32_t>(pick(3));
        if (kind == 3 && q.computed > 0)
          n = static_cast<std::uint32_t>(pick(q.computed));
        begin_op("commit(seq " + std::to_string(h) + ", " + std::to_string(n) + ")");
        const auto want = model_.commit(h, n);
        KVKIT_DRIVER_EXPECT_EQ(want.code, errc::invalid_argument);
        KVKIT_DRIVER_EXPECT_EQ(cache_.commit(real_ids_[h], n).code(), want.code);
      }
    } else {
      // A finished id (when there is one) or an id never issued.
      reference_cache::handle h = reference_cache::no_sequence;
      kvkit::sequence_id id;
      if (kind < 6 && !finished_.empty()) {
        h = finished_[pick(finished_.size())];
        id = real_ids_[h];
      } else {
        id = unknown_id();
      }
      const std::uint32_t n = static_cast<std::uint32_t>(pick(8));
      std::vector<token_id> tokens;
      append_random(tokens, pick(3));
      begin_op("call on stale/unknown id {" + std::to_string(id.index) + "," +
               std::to_string(id.generation) + "}");
      switch (pick(5)) {
        case 0:
          KVKIT_DRIVER_EXPECT_EQ(cache_.commit(id, n).code(), model_.commit(h, n).code);
          break;
        case 1:
          KVKIT_DRIVER_EXPECT_EQ(cache_.commit(id).code(), model_.commit_all(h).code);
          break;
        case 2:
          KVKIT_DRIVER_EXPECT_EQ(cache_.append(id, tokens).code(), model_.append(h, tokens));
          break;
        case 3:
          KVKIT_DRIVER_EXPECT_EQ(cache_.finish(id).code(), model_.finish(h));
          break;
        default:
          KVKIT_DRIVER_EXPECT_EQ(cache_.sequence(id).code(), model_.lookup(h));
          break;
      }
    }
    KVKIT_DRIVER_EXPECT(model_ == model_before) << "an invalid call changed the model";
    KVKIT_DRIVER_EXPECT(cache_.stats() == before) << "an invalid call changed the cache's stats";
    std::vector<view_copy> views_after;
    for (auto h : live_)
      views_after.push_back(snapshot(h));
    KVKIT_DRIVER_EXPECT(views_after == views_before) << "an invalid call changed a live sequence";
  }

  // ---- K/V ----

  /// The K/V of one token slot in one layer's K or V pool: kHeads x kHeadDim contiguous
  /// elements (the layout is NHD).
  float* token_kv(std::uint32_t layer, std::uint32_t kv, block_id b, std::uint32_t slot) {
    return &cache_.storage().at(layer, kv, b, slot, 0, 0);
  }

  void write_kv(reference_cache::handle h) {
    const auto& q = model_.seq(h);
    auto view = cache_.sequence(real_ids_[h]);
    KVKIT_DRIVER_ASSERT(view.ok());
    const auto hashes = prefix_hashes(q.ns, q.tokens);
    const auto len = static_cast<std::uint32_t>(q.tokens.size());
    for (std::uint32_t t = written_[h]; t < len; ++t) {
      const std::uint32_t k = t / block_size_;
      // Only a block this sequence owns alone is ever written.
      KVKIT_DRIVER_ASSERT(!q.table[k].cached.has_value())
          << "token " << t << " of seq " << h << " is not computed but its block is cached";
      const block_id b = view->blocks[k];
      for (std::uint32_t l = 0; l < kLayers; ++l) {
        for (std::uint32_t kv = 0; kv < 2; ++kv) {
          float* out = token_kv(l, kv, b, t % block_size_);
          for (std::uint32_t e = 0; e < kHeads * kHeadDim; ++e) {
            out[e] = kv_value(hashes[t], l, kv, e);
          }
        }
      }
    }
    written_[h] = len;
  }

  /// Tokens [from, to) of sequence @p h hold the K/V their namespace and prefix produce.
  void check_kv(reference_cache::handle h, std::uint32_t from, std::uint32_t to) {
    const auto& q = model_.seq(h);
    auto view = cache_.sequence(real_ids_[h]);
    KVKIT_DRIVER_ASSERT(view.ok());
    const auto hashes = prefix_hashes(q.ns, q.tokens);
    for (std::uint32_t t = from; t < to; ++t) {
      const block_id b = view->blocks[t / block_size_];
      if (t % block_size_ == 0) {
        ++cov_.kv_blocks_checked;
      }
      for (std::uint32_t l = 0; l < kLayers; ++l) {
        for (std::uint32_t kv = 0; kv < 2; ++kv) {
          const float* in = token_kv(l, kv, b, t % block_size_);
          for (std::uint32_t e = 0; e < kHeads * kHeadDim; ++e) {
            const float want = kv_value(hashes[t], l, kv, e);
            if (in[e] != want) {
              KVKIT_DRIVER_FAIL() << "seq " << h << " token " << t << " (block " << b << ", layer "
                                  << l << ", kv " << kv << ", head " << e / kHeadDim << ", dim "
                                  << e % kHeadDim << ") holds K/V " << in[e]
                                  << " but its prefix gives " << want << ": another prompt's K/V";
              return;
            }
          }
        }
      }
    }
  }

  // ---- comparison after every operation ----

  struct view_copy {
    std::vector<token_id> tokens;
    std::vector<block_id> blocks;
    std::uint32_t computed = 0;
    kvkit::request_stats request;
    friend bool operator==(const view_copy&, const view_copy&) = default;
  };

  view_copy snapshot(reference_cache::handle h) const {
    auto v = cache_.sequence(real_ids_[h]);
    if (!v.ok())
      return {};
    return view_copy{{v->tokens.begin(), v->tokens.end()},
                     {v->blocks.begin(), v->blocks.end()},
                     v->computed_tokens,
                     v->request};
  }

  void check_stats() {
    const kvkit::cache_stats got = cache_.stats();
    const kvkit::test::ref_stats want = model_.stats();
#define KVKIT_DIFF_STAT(field)                                   \
  KVKIT_DRIVER_EXPECT_EQ(static_cast<std::uint64_t>(got.field),  \
                         static_cast<std::uint64_t>(want.field)) \
      << "stats()." #field
    KVKIT_DIFF_STAT(queries);
    KVKIT_DIFF_STAT(query_tokens);
    KVKIT_DIFF_STAT(hit_tokens);
    KVKIT_DIFF_STAT(query_blocks);
    KVKIT_DIFF_STAT(hit_blocks);
    KVKIT_DIFF_STAT(full_hits);
    KVKIT_DIFF_STAT(partial_hits);
    KVKIT_DIFF_STAT(misses);
    KVKIT_DIFF_STAT(short_queries);
    KVKIT_DIFF_STAT(appended_tokens);
    KVKIT_DIFF_STAT(committed_blocks);
    KVKIT_DIFF_STAT(deduplicated_blocks);
    KVKIT_DIFF_STAT(evictions);
    KVKIT_DIFF_STAT(cascade_evictions);
    KVKIT_DIFF_STAT(finished_sequences);
    KVKIT_DIFF_STAT(blocks_free);
    KVKIT_DIFF_STAT(blocks_cached);
    KVKIT_DIFF_STAT(blocks_referenced);
    KVKIT_DIFF_STAT(blocks_evictable);
    KVKIT_DIFF_STAT(active_sequences);
#undef KVKIT_DIFF_STAT
    KVKIT_DRIVER_EXPECT_EQ(got.blocks_total, num_blocks_);
    KVKIT_DRIVER_EXPECT_EQ(cache_.available_blocks(),
                           model_.free_blocks() + model_.evictable_blocks());
  }

  /// Forgets the block ids of prefixes the model evicted since the last call.
  void forget_evicted() {
    for (const ref_key& key : model_.take_evicted()) {
      auto it = key_block_.find(key);
      KVKIT_DRIVER_ASSERT(it != key_block_.end()) << "evicted prefix was never bound to a block";
      block_key_[it->second].reset();
      key_block_.erase(it);
    }
  }

  /// Binds each cached block of sequence @p h to the model's prefix it holds (and checks that a
  /// block stands for one cached prefix, and a prefix for one block). @p owned, when given, marks
  /// the blocks the sequence owns alone (no block may be owned twice).
  void bind_blocks(reference_cache::handle h, std::vector<char>* owned = nullptr) {
    forget_evicted();
    if (checks_.failed())
      return;
    const auto& q = model_.seq(h);
    auto v = cache_.sequence(real_ids_[h]);
    KVKIT_DRIVER_ASSERT(v.ok()) << "live seq " << h << ": " << v.error().message();
    KVKIT_DRIVER_ASSERT_EQ(v->blocks.size(), q.table.size()) << "seq " << h << " block table size";
    for (std::size_t k = 0; k < q.table.size(); ++k) {
      const block_id b = v->blocks[k];
      KVKIT_DRIVER_ASSERT(b < num_blocks_) << "seq " << h << " block " << k;
      if (q.table[k].cached) {
        const ref_key& key = *q.table[k].cached;
        if (block_key_[b]) {
          // Block b stands for one cached prefix (and that prefix for block b only).
          KVKIT_DRIVER_ASSERT(*block_key_[b] == key)
              << "seq " << h << " position " << k << ": block " << b
              << " already stands for another cached prefix";
        } else {
          KVKIT_DRIVER_ASSERT(key_block_.find(key) == key_block_.end())
              << "seq " << h << " position " << k
              << ": a cached prefix changed block id while cached, or two sequences sharing "
                 "it hold different blocks";
          key_block_.emplace(key, b);
          block_key_[b] = key;
        }
      } else {
        KVKIT_DRIVER_ASSERT(!block_key_[b].has_value())
            << "seq " << h << " position " << k << ": owned block " << b << " is cached";
        if (owned != nullptr) {
          KVKIT_DRIVER_ASSERT_EQ((*owned)[b], 0) << "block " << b << " owned twice";
          (*owned)[b] = 1;
        }
      }
    }
  }

  /// Live sequences agree with the model; block ids agree with the model's keys.
  void check_sequences() {
    std::vector<char> owned(num_blocks_, 0);
    for (auto h : live_) {
      const auto& q = model_.seq(h);
      auto v = cache_.sequence(real_ids_[h]);
      KVKIT_DRIVER_ASSERT(v.ok()) << "live seq " << h << ": " << v.error().message();
      KVKIT_DRIVER_EXPECT(std::ranges::equal(v->tokens, q.tokens)) << "seq " << h << " tokens";
      KVKIT_DRIVER_EXPECT_EQ(v->computed_tokens, q.computed) << "seq " << h;
      KVKIT_DRIVER_EXPECT_EQ(v->request.prompt_tokens, q.prompt_tokens) << "seq " << h;
      KVKIT_DRIVER_EXPECT_EQ(v->request.cached_tokens, q.cached_tokens) << "seq " << h;
      bind_blocks(h, &owned);
      if (checks_.failed())
        return;
    }
    forget_evicted();
    // Every cached prefix was seen in a live table when it was committed (bound then, or by the
    // whole comparison after that operation), so all are bound.
    KVKIT_DRIVER_EXPECT_EQ(key_block_.size(), model_.stats().blocks_cached);
  }

  /// The real cache holds exactly the model's cached prefixes: each model leaf's whole chain
  /// hits, and the counts are equal (checked in check_stats).
  void check_cached_set() {
    std::vector<token_id> probe;
    for (const ref_key* p : model_.cached_leaves()) {
      const ref_key& leaf = *p;
      probe.assign(leaf.prefix.begin(), leaf.prefix.end());
      probe.push_back(0);
      KVKIT_DRIVER_ASSERT_EQ(cache_.match(probe, options_for(leaf.ns, 0)), leaf.prefix.size())
          << "cached prefix " << describe(leaf.prefix) << " (salt " << leaf.ns.tenant_salt
          << ") is not fully cached in the real cache";
    }
  }

  void check_everything() {
    const auto inv = cache_.check_invariants();
    KVKIT_DRIVER_EXPECT(inv.ok()) << inv.message();
    for (const auto& p : model_.problems())
      KVKIT_DRIVER_FAIL() << "model: " << p;
    check_stats();
    check_sequences();
    check_cached_set();
  }

  Choices& choices_;
  check_context checks_;
  std::uint32_t block_size_;
  std::uint32_t num_blocks_;
  reference_cache model_;
  cache_type cache_;
  std::vector<std::vector<token_id>> pool_;

  std::vector<kvkit::sequence_id> real_ids_;  // by model handle
  std::vector<std::uint32_t> written_;        // tokens whose K/V the test wrote, by model handle
  std::vector<reference_cache::handle> live_;
  std::vector<reference_cache::handle> finished_;
  std::set<std::pair<std::uint32_t, std::uint32_t>> issued_;
  std::map<std::uint32_t, std::uint32_t> max_generation_;
  std::uint32_t max_index_ = 0;

  std::map<ref_key, block_id> key_block_;          // cached prefix -> its real block
  std::vector<std::optional<ref_key>> block_key_;  // real block -> cached prefix it holds

  coverage cov_;
  std::string last_op_;
  reference_cache::handle touched_ = reference_cache::no_sequence;  // admitted or committed
};

}  // namespace kvkit::test
