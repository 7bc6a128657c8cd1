// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief A workload driver that checks properties every `prefix_cache` composition must have,
/// whatever its matcher, eviction policy and allocator (no model of which block is evicted).
///
/// Operations: admit, commit (partial and whole), append, fork, pin, finish, match probes,
/// invalidate_tenant / _session / _key, clear, expire, clock advances (for policies with a clock),
/// and invalid calls. Checked after every operation:
/// - check_invariants();
/// - every live sequence's tokens, computed count and block-table size agree with a mirror, and
///   every token slot of its block table still holds the K/V its namespace and prefix produce (no
///   referenced block is ever freed, overwritten or handed to another sequence);
/// - a block the driver is about to write (prefill, decode) is held by that sequence alone;
/// - policies with `leaves_only` (and LRU) never cause cascade evictions.
/// Checked on each operation:
/// - a hit (admit, match, pin) never exceeds the longest prefix committed in its namespace since
///   the namespace was last invalidated (a shadow index of committed whole-block prefixes; partial
///   reuse shares at most that prefix's tokens), is a whole number of blocks for matchers without
///   partial reuse, and its K/V is what this prompt would have written;
/// - admit() agrees with match(), and fails for lack of blocks only when the pool cannot hold the
///   prompt; append() fails only when the blocks it needs are not free or evictable;
/// - commit() registers or deduplicates exactly the newly full blocks; pin() pins exactly the
///   whole cached blocks; fork() shares the whole block table;
/// - invalidation and expiry change the cached-block gauge by what they report, and nothing is hit
///   in an invalidated namespace afterwards;
/// - every failed call returns the expected error and changes nothing (stats, live sequences).
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <map>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "support/choice_source.hpp"
#include "support/differential_driver.hpp"
#include "support/driver_checks.hpp"

namespace kvkit::test {

/// The clock of policies with time (ttl, priority), advanced only by the workload.
struct manual_clock {
  std::int64_t now_ns = 0;
  /// A `now` function for `ttl_options` / `priority_options` reading this clock.
  [[nodiscard]] auto reader() const {
    return [this] {
      return std::chrono::nanoseconds(now_ns);
    };
  }
};

/// A namespace of the property workload (the session id is part of the keys).
struct property_namespace {
  std::uint64_t tenant_salt = 0;
  std::uint64_t session_id = 0;
  std::vector<std::uint64_t> extra_keys;
};

/// Namespaces: salts, sessions and extra keys overlap so that every invalidation hits several.
inline const std::vector<property_namespace>& property_namespaces() {
  static const std::vector<property_namespace> ns = {{0, 0, {}}, {7, 0, {}},   {0, 0, {42}},
                                                     {0, 5, {}}, {7, 6, {42}}, {3, 5, {42, 43}}};
  return ns;
}

/// Counts of what a property run did.
struct property_coverage {
  std::uint64_t operations = 0;
  std::uint64_t admissions = 0;
  std::uint64_t hits = 0;
  std::uint64_t partial_block_hits = 0;
  std::uint64_t forks = 0;
  std::uint64_t pins = 0;
  std::uint64_t invalidated = 0;
  std::uint64_t expired = 0;
  std::uint64_t out_of_blocks = 0;
  std::uint64_t invalid_calls = 0;
};

/// One run of the property workload against a `prefix_cache` of type @p Cache (any policies,
/// `host_storage<float>`). Every decision comes from @p Choices; failed checks go to the sink.
template <class Cache, choice_source Choices>
class property_run {
 public:
  using eviction_type = typename Cache::eviction_type;
  using matcher_type = typename Cache::matcher_type;

  /// Whether the matcher reuses partially matching blocks (the contract's named concept).
  static constexpr bool partial_reuse = matcher_has_find_partial<matcher_type>;
  /// Whether no eviction may cascade: leaf-only candidates, or LRU's children-first order.
  static constexpr bool never_cascades =
      policy_traits<eviction_type>::leaves_only() || std::is_same_v<eviction_type, lru_eviction>;

  property_run(Choices& choices, check_context::sink sink, manual_clock& clock, std::uint64_t seed,
               std::uint32_t block_size, std::uint32_t num_blocks,
               const typename Cache::eviction_options& options = {})
      : choices_(choices),
        checks_(std::move(sink)),
        clock_(clock),
        block_size_(block_size),
        num_blocks_(num_blocks),
        cache_(make_cache(seed, block_size, num_blocks, options)),
        shadow_(property_namespaces().size()),
        epoch_(property_namespaces().size(), 0) {
    const std::uint32_t max_prefix_blocks = std::clamp<std::uint32_t>(num_blocks / 4, 1, 8);
    for (int i = 0; i < 6; ++i) {
      std::vector<token_id> p;
      if (i > 0 && pick(2) == 0)
        p = pool_[pick(pool_.size())];
      append_random(p, 1 + pick(max_prefix_blocks * block_size_));
      pool_.push_back(std::move(p));
    }
  }

  /// Whether a check failed.
  [[nodiscard]] bool failed() const noexcept { return checks_.failed(); }

  /// Runs up to @p ops operations (fewer when the choices run out); stops at the first failed
  /// check.
  ///
  /// The checks of each operation run after it; the whole-cache checks (check_invariants(), every
  /// live sequence and its K/V) run after every @p check_every operations, after the last one, and
  /// after an operation whose own checks failed. 1 (the default) checks everything after every
  /// operation; a larger interval runs more operations per second and still finds every
  /// divergence, some operations later.
  /// @param ops Operations to run.
  /// @param check_every Operations between whole-cache checks (>= 1).
  property_coverage run(std::uint64_t ops, std::uint64_t check_every = 1) {
    if (check_every == 0)
      check_every = 1;
    for (std::uint64_t i = 0; i < ops && !choices_.exhausted(); ++i) {
      step();
      ++cov_.operations;
      const bool last = i + 1 == ops || choices_.exhausted();
      if (checks_.failed() || last || (i + 1) % check_every == 0)
        check_everything();
      if (checks_.failed()) {
        KVKIT_DRIVER_FAIL() << "first failure at operation " << i << ": " << last_op_;
        break;
      }
    }
    return cov_;
  }

 private:
  static constexpr std::uint32_t kVocabulary = 4;
  static constexpr std::size_t kMaxLive = 8;
  static constexpr std::uint32_t kElements = 2;  // per token and K/V: 1 layer, 1 head, dim 2

  struct live_seq {
    sequence_id id;
    std::size_t ns = 0;
    std::uint64_t epoch = 0;  // of its namespace at admission
    std::vector<token_id> tokens;
    std::vector<std::uint64_t> hashes;  // K/V identity of each token (namespace + prefix)
    std::uint32_t computed = 0;
    std::uint32_t committed_blocks = 0;
    bool forked = false;  // shares uncommitted blocks with a fork relative (now or once)
  };

  /// What a failed call must leave as it was.
  struct snapshot {
    cache_stats stats;
    std::uint32_t available = 0;
    std::vector<std::vector<block_id>> tables;
    std::vector<std::vector<token_id>> tokens;
    std::vector<std::uint32_t> computed;
    bool operator==(const snapshot&) const = default;
  };

  static Cache make_cache(std::uint64_t seed, std::uint32_t block_size, std::uint32_t num_blocks,
                          const typename Cache::eviction_options& options) {
    kv_layout layout;
    layout.num_layers = 1;
    layout.num_kv_heads = 1;
    layout.head_dim = kElements;
    layout.block_size = block_size;
    layout.num_blocks = num_blocks;
    layout.type = dtype::fp32;
    layout.order = kv_order::nhd;
    auto storage = host_storage<float>::create(layout);
    cache_config config;
    config.seed = mix64(seed);
    return std::move(Cache::create(config, std::move(storage).value(), options)).value();
  }

  std::uint64_t pick(std::uint64_t n) { return choices_.next(n); }

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
      // A pool prompt or a live sequence's tokens (a follow-up turn), cut or extended.
      if (r < 30 && !live_.empty()) {
        p = live_[pick(live_.size())].tokens;
      } else {
        p = pool_[pick(pool_.size())];
      }
      if (pick(4) == 0)
        p.resize(1 + pick(p.size()));
      if (pick(2) == 0)
        append_random(p, 1 + pick(block_size_ + 1));
    }
    return p;
  }

  static request_options options_for(std::size_t ns, std::uint32_t request_class = 0) {
    const property_namespace& n = property_namespaces()[ns];
    request_options o;
    o.tenant_salt = n.tenant_salt;
    o.session_id = n.session_id;
    o.extra_keys = n.extra_keys;
    o.request_class = request_class;
    return o;
  }

  std::uint32_t blocks_for(std::size_t tokens) const {
    return static_cast<std::uint32_t>((tokens + block_size_ - 1) / block_size_);
  }

  void begin_op(std::string what) {
    last_op_ = std::move(what);
    if (trace_enabled())
      std::fprintf(stderr, "  op %llu: %s\n", static_cast<unsigned long long>(cov_.operations),
                   last_op_.c_str());
  }

  static std::string ns_name(std::size_t ns) { return "ns" + std::to_string(ns); }

  void step() {
    enum { admit, commit, append, fork, pin, finish, probe, invalidate, expire, tick, invalid };
    int weights[] = {22, 18, 12, 6, 5, 14, 8, 3, 3, 3, 8};
    if (live_.empty())
      weights[commit] = weights[append] = weights[fork] = weights[finish] = 0;
    if (live_.size() >= kMaxLive) {
      weights[admit] = weights[fork] = weights[pin] = 0;
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
      case fork:
        do_fork();
        break;
      case pin:
        do_pin();
        break;
      case finish:
        do_finish();
        break;
      case probe:
        do_probe();
        break;
      case invalidate:
        do_invalidate();
        break;
      case expire:
        do_expire();
        break;
      case tick:
        clock_.now_ns += static_cast<std::int64_t>(pick(16)) * 500;
        begin_op("clock +" + std::to_string(clock_.now_ns));
        break;
      default:
        do_invalid();
        break;
    }
  }

  // ---- shadow index of committed prefixes ----

  /// Longest common prefix of @p prompt with any prefix committed in @p ns (this epoch).
  std::size_t committed_bound(std::size_t ns, std::span<const token_id> prompt) const {
    const auto& set = shadow_[ns];
    const std::vector<token_id> key(prompt.begin(), prompt.end());
    const auto lcp = [&](const std::vector<token_id>& p) {
      const auto [a, b] = std::ranges::mismatch(p, key);
      return static_cast<std::size_t>(a - p.begin());
    };
    std::size_t best = 0;
    auto it = set.lower_bound(key);
    if (it != set.end())
      best = std::max(best, lcp(*it));
    if (it != set.begin())
      best = std::max(best, lcp(*std::prev(it)));
    return best;
  }

  void record_commit(const live_seq& s, std::uint32_t from_block, std::uint32_t to_block) {
    if (s.epoch != epoch_[s.ns])
      return;  // a sequence of an invalidated namespace: its blocks are never hit
    for (std::uint32_t k = from_block; k < to_block; ++k) {
      shadow_[s.ns].emplace(s.tokens.begin(),
                            s.tokens.begin() + std::ptrdiff_t{k + 1} * block_size_);
    }
  }

  /// A hit of @p cached tokens of @p prompt in @p ns is possible at all.
  void check_hit_bound(std::size_t ns, std::span<const token_id> prompt, std::uint32_t cached,
                       const char* what) {
    KVKIT_DRIVER_EXPECT(cached <= committed_bound(ns, prompt))
        << what << " hit " << cached << " tokens of " << describe(prompt) << " in " << ns_name(ns)
        << " but the longest prefix committed there shares only " << committed_bound(ns, prompt);
    if constexpr (!partial_reuse) {
      KVKIT_DRIVER_EXPECT(cached % block_size_ == 0)
          << what << " hit " << cached << " tokens: not whole blocks, and the matcher has no "
          << "partial reuse";
    }
  }

  // ---- K/V ----

  std::vector<std::uint64_t> hashes_of(std::size_t ns, std::span<const token_id> tokens) const {
    const property_namespace& n = property_namespaces()[ns];
    std::uint64_t h = combine(combine(combine(0x6B766B6974ull, n.tenant_salt), n.session_id),
                              n.extra_keys.size());
    for (std::uint64_t e : n.extra_keys)
      h = combine(h, e);
    std::vector<std::uint64_t> out;
    out.reserve(tokens.size());
    for (token_id t : tokens) {
      h = combine(h, static_cast<std::uint32_t>(t));
      out.push_back(h);
    }
    return out;
  }

  void extend_hashes(live_seq& s) const {
    if (s.hashes.size() == s.tokens.size())
      return;
    auto all = hashes_of(s.ns, s.tokens);
    s.hashes = std::move(all);
  }

  static float kv_value(std::uint64_t prefix_hash, std::uint32_t kv, std::uint32_t e) {
    return static_cast<float>((mix64(prefix_hash ^ (0x100u * kv + e + 1)) >> 41) + 1);
  }

  float* token_kv(std::uint32_t kv, block_id b, std::uint32_t slot) {
    return &cache_.storage().at(0, kv, b, slot, 0, 0);
  }

  /// How many live block tables hold each block.
  std::vector<std::uint32_t> holders() const {
    std::vector<std::uint32_t> n(num_blocks_, 0);
    for (const live_seq& s : live_) {
      auto v = cache_.sequence(s.id);
      if (!v.ok())
        continue;
      for (block_id b : v->blocks) {
        if (b < num_blocks_)
          ++n[b];
      }
    }
    return n;
  }

  /// The runtime's prefill / decode: writes the K/V of tokens [from, to) of @p s, into blocks
  /// that only @p s may hold.
  void write_kv(live_seq& s, std::uint32_t from, std::uint32_t to) {
    extend_hashes(s);
    auto view = cache_.sequence(s.id);
    KVKIT_DRIVER_ASSERT(view.ok()) << view.error().message();
    const std::vector<std::uint32_t> held = holders();
    for (std::uint32_t t = from; t < to; ++t) {
      const block_id b = view->blocks[t / block_size_];
      KVKIT_DRIVER_ASSERT_EQ(held[b], 1u) << "token " << t << " is not computed yet but its block "
                                          << b << " is shared with another live sequence";
      for (std::uint32_t kv = 0; kv < 2; ++kv) {
        float* out = token_kv(kv, b, t % block_size_);
        for (std::uint32_t e = 0; e < kElements; ++e)
          out[e] = kv_value(s.hashes[t], kv, e);
      }
    }
  }

  /// Tokens [from, to) of @p s hold the K/V their namespace and prefix produce.
  void check_kv(live_seq& s, std::uint32_t from, std::uint32_t to, const char* when) {
    extend_hashes(s);
    auto view = cache_.sequence(s.id);
    KVKIT_DRIVER_ASSERT(view.ok()) << view.error().message();
    for (std::uint32_t t = from; t < to; ++t) {
      const block_id b = view->blocks[t / block_size_];
      for (std::uint32_t kv = 0; kv < 2; ++kv) {
        const float* in = token_kv(kv, b, t % block_size_);
        for (std::uint32_t e = 0; e < kElements; ++e) {
          KVKIT_DRIVER_ASSERT(in[e] == kv_value(s.hashes[t], kv, e))
              << when << ": token " << t << " of " << describe(s.tokens) << " in " << ns_name(s.ns)
              << " (block " << b << ", kv " << kv << ", element " << e
              << ") holds another prompt's K/V";
        }
      }
    }
  }

  // ---- snapshots and ids ----

  snapshot take_snapshot() const {
    snapshot s{cache_.stats(), cache_.available_blocks(), {}, {}, {}};
    for (const live_seq& q : live_) {
      auto v = cache_.sequence(q.id);
      if (!v.ok())
        continue;
      s.tables.emplace_back(v->blocks.begin(), v->blocks.end());
      s.tokens.emplace_back(v->tokens.begin(), v->tokens.end());
      s.computed.push_back(v->computed_tokens);
    }
    return s;
  }

  void expect_unchanged(const snapshot& before, const char* what) {
    KVKIT_DRIVER_EXPECT(take_snapshot() == before) << what << " changed the cache";
  }

  void issued(sequence_id id) {
    max_index_ = std::max(max_index_, id.index);
    auto& g = max_generation_[id.index];
    g = std::max(g, id.generation);
  }

  /// An id this cache never issued.
  sequence_id unknown_id() {
    switch (pick(3)) {
      case 0:
        return sequence_id{max_index_ + 1 + static_cast<std::uint32_t>(pick(4)), 1};
      case 1:
        return sequence_id{static_cast<std::uint32_t>(pick(max_index_ + 1)), 0};
      default: {
        const auto index = static_cast<std::uint32_t>(pick(max_index_ + 1));
        return sequence_id{index, max_generation_[index] + 1 + static_cast<std::uint32_t>(pick(3))};
      }
    }
  }

  live_seq& pick_live() { return live_[pick(live_.size())]; }

  // ---- operations ----

  void do_admit() {
    const std::size_t ns = pick(property_namespaces().size());
    const std::vector<token_id> prompt = gen_prompt();
    const auto request_class = static_cast<std::uint32_t>(pick(6));
    begin_op("admit(" + ns_name(ns) + ", class " + std::to_string(request_class) + ", " +
             describe(prompt) + ")");
    const request_options opts = options_for(ns, request_class);
    const auto len = static_cast<std::uint32_t>(prompt.size());
    const std::uint32_t needed = blocks_for(len);
    const std::uint32_t m = cache_.match(prompt, opts);
    check_hit_bound(ns, prompt, m, "match");
    const snapshot before = take_snapshot();

    auto got = cache_.admit(prompt, opts);
    if (!got.ok()) {
      KVKIT_DRIVER_EXPECT_EQ(got.code(), errc::out_of_blocks) << got.error().message();
      KVKIT_DRIVER_EXPECT(needed > before.available)
          << "admit failed for lack of blocks, but the prompt needs " << needed << " and "
          << before.available << " are free or evictable";
      expect_unchanged(before, "a failed admit");
      ++cov_.out_of_blocks;
      return;
    }
    const admission& a = *got;
    const std::uint32_t c = a.request.cached_tokens;
    KVKIT_DRIVER_EXPECT(needed <= num_blocks_) << "admitted a prompt larger than the pool";
    KVKIT_DRIVER_EXPECT_EQ(a.request.prompt_tokens, len);
    KVKIT_DRIVER_EXPECT(c < len) << "cached " << c << " of " << len << " tokens";
    KVKIT_DRIVER_EXPECT_EQ(a.cached_blocks, c / block_size_);
    KVKIT_DRIVER_EXPECT_EQ(a.new_blocks, needed - a.cached_blocks);
    // match() said what admit() gets, unless admit() had no room to copy a partial block.
    KVKIT_DRIVER_EXPECT(c == m || (c % block_size_ == 0 && m / block_size_ == c / block_size_))
        << "match() promised " << m << " cached tokens, admit() gave " << c;
    check_hit_bound(ns, prompt, c, "admit");

    live_seq s;
    s.id = a.id;
    s.ns = ns;
    s.epoch = epoch_[ns];
    s.tokens = prompt;
    s.computed = c;
    s.committed_blocks = a.cached_blocks;
    issued(a.id);
    live_.push_back(std::move(s));
    ++cov_.admissions;
    cov_.hits += c > 0 ? 1 : 0;
    cov_.partial_block_hits += c % block_size_ != 0 ? 1 : 0;
    check_kv(live_.back(), 0, c, "admit hit");
    write_kv(live_.back(), c, len);
  }

  void do_commit() {
    live_seq& s = pick_live();
    const auto len = static_cast<std::uint32_t>(s.tokens.size());
    std::uint32_t n = len;
    bool whole = false;
    switch (pick(8)) {
      case 0:
      case 1:
        whole = true;
        break;
      case 2:
        break;
      case 3:
        n = s.computed;
        break;
      case 4:
        n = std::min(len, (s.computed / block_size_ + 1) * block_size_);
        break;
      default:
        n = s.computed + static_cast<std::uint32_t>(pick(len - s.computed + 1));
        break;
    }
    begin_op("commit(seq {" + std::to_string(s.id.index) + "," + std::to_string(s.id.generation) +
             "}, " + (whole ? "all" : std::to_string(n)) + ")");
    auto got = whole ? cache_.commit(s.id) : cache_.commit(s.id, n);
    KVKIT_DRIVER_ASSERT(got.ok()) << got.error().message();
    const std::uint32_t full = n / block_size_;
    const std::uint32_t fresh = full > s.committed_blocks ? full - s.committed_blocks : 0;
    // A block a fork relative registered already is neither registered nor deduplicated again.
    const std::uint32_t done = got->registered_blocks + got->deduplicated_blocks;
    KVKIT_DRIVER_EXPECT(s.forked ? done <= fresh : done == fresh)
        << "commit of " << fresh << " newly full blocks registered " << got->registered_blocks
        << " and deduplicated " << got->deduplicated_blocks;
    if (fresh > 0)
      record_commit(s, s.committed_blocks, full);
    s.committed_blocks = std::max(s.committed_blocks, full);
    s.computed = n;
  }

  void do_append() {
    live_seq& s = pick_live();
    std::vector<token_id> tokens;
    const std::size_t count = 1 + pick(block_size_ + 2);
    // Half the time decode along a pool prompt, so generated tokens are shared too.
    if (pick(2) == 0) {
      for (const auto& p : pool_) {
        if (p.size() > s.tokens.size() && std::equal(s.tokens.begin(), s.tokens.end(), p.begin())) {
          const std::size_t take = std::min(count, p.size() - s.tokens.size());
          tokens.assign(p.begin() + static_cast<std::ptrdiff_t>(s.tokens.size()),
                        p.begin() + static_cast<std::ptrdiff_t>(s.tokens.size() + take));
          break;
        }
      }
    }
    if (tokens.empty())
      append_random(tokens, count);
    begin_op("append(seq {" + std::to_string(s.id.index) + "," + std::to_string(s.id.generation) +
             "}, " + describe(tokens) + ")");
    // Blocks it needs: new ones, plus a copy of a shared, partially filled last block.
    const auto len = static_cast<std::uint32_t>(s.tokens.size());
    const std::vector<std::uint32_t> held = holders();
    auto view = cache_.sequence(s.id);
    KVKIT_DRIVER_ASSERT(view.ok()) << view.error().message();
    const bool copy_tail = len % block_size_ != 0 && held[view->blocks.back()] > 1;
    const std::uint32_t need =
        blocks_for(len + tokens.size()) - blocks_for(len) + (copy_tail ? 1 : 0);
    const snapshot before = take_snapshot();

    const status got = cache_.append(s.id, tokens);
    if (!got.ok()) {
      KVKIT_DRIVER_EXPECT_EQ(got.code(), errc::out_of_blocks) << got.message();
      KVKIT_DRIVER_EXPECT(need > before.available)
          << "append failed for lack of blocks, but it needs " << need << " and "
          << before.available << " are free or evictable";
      expect_unchanged(before, "a failed append");
      ++cov_.out_of_blocks;
      return;
    }
    KVKIT_DRIVER_EXPECT(need <= before.available)
        << "append needed " << need << " blocks but only " << before.available << " were there";
    s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
    write_kv(s, len, static_cast<std::uint32_t>(s.tokens.size()));
  }

  void do_fork() {
    const std::size_t i = pick(live_.size());
    begin_op("fork(seq {" + std::to_string(live_[i].id.index) + "," +
             std::to_string(live_[i].id.generation) + "})");
    const snapshot before = take_snapshot();
    auto got = cache_.fork(live_[i].id);
    if (live_[i].computed != live_[i].tokens.size()) {
      KVKIT_DRIVER_EXPECT_EQ(got.code(), errc::invalid_argument);
      expect_unchanged(before, "fork of a sequence with uncomputed tokens");
      return;
    }
    KVKIT_DRIVER_ASSERT(got.ok()) << got.error().message();
    live_[i].forked = true;
    live_seq copy = live_[i];
    copy.id = *got;
    issued(copy.id);
    auto a = cache_.sequence(live_[i].id);
    auto b = cache_.sequence(copy.id);
    KVKIT_DRIVER_ASSERT(a.ok() && b.ok());
    KVKIT_DRIVER_EXPECT(std::ranges::equal(a->blocks, b->blocks))
        << "a fork does not share its parent's block table";
    live_.push_back(std::move(copy));
    ++cov_.forks;
  }

  void do_pin() {
    const std::size_t ns = pick(property_namespaces().size());
    std::vector<token_id> prompt = gen_prompt();
    begin_op("pin(" + ns_name(ns) + ", " + describe(prompt) + ")");
    const request_options opts = options_for(ns, static_cast<std::uint32_t>(pick(6)));
    // pin() holds the whole cached blocks of the prompt, all of them (not only those before the
    // last token): what match() finds for the prompt plus one token.
    std::vector<token_id> longer = prompt;
    longer.push_back(0);
    const std::uint32_t whole = cache_.match(longer, opts) / block_size_ * block_size_;
    const snapshot before = take_snapshot();
    auto got = cache_.pin(prompt, opts);
    if (whole == 0) {
      KVKIT_DRIVER_EXPECT_EQ(got.code(), errc::invalid_argument);
      expect_unchanged(before, "a failed pin");
      return;
    }
    KVKIT_DRIVER_ASSERT(got.ok()) << got.error().message();
    KVKIT_DRIVER_EXPECT_EQ(got->pinned_tokens, whole);
    check_hit_bound(ns, prompt, got->pinned_tokens, "pin");
    live_seq s;
    s.id = got->id;
    s.ns = ns;
    s.epoch = epoch_[ns];
    s.tokens.assign(prompt.begin(), prompt.begin() + got->pinned_tokens);
    s.computed = got->pinned_tokens;
    s.committed_blocks = got->pinned_tokens / block_size_;
    issued(s.id);
    live_.push_back(std::move(s));
    check_kv(live_.back(), 0, got->pinned_tokens, "pin");
    ++cov_.pins;
  }

  void do_finish() {
    const std::size_t i = pick(live_.size());
    live_seq& s = live_[i];
    begin_op("finish(seq {" + std::to_string(s.id.index) + "," + std::to_string(s.id.generation) +
             "})");
    check_kv(s, 0, static_cast<std::uint32_t>(s.tokens.size()), "finish");
    const status got = cache_.finish(s.id);
    KVKIT_DRIVER_EXPECT(got.ok()) << got.message();
    // The next turn of this conversation may come back.
    if (s.tokens.size() <= std::size_t{num_blocks_} * block_size_ / 2 && pick(3) == 0)
      pool_[pick(pool_.size())] = s.tokens;
    finished_.push_back(s.id);
    live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  void do_probe() {
    const std::size_t ns = pick(property_namespaces().size());
    std::vector<token_id> prompt;
    if (pick(4) == 0) {
      append_random(prompt, pick(3));  // tiny, possibly empty
    } else {
      prompt = gen_prompt();
    }
    begin_op("match(" + ns_name(ns) + ", " + describe(prompt) + ")");
    const snapshot before = take_snapshot();
    const std::uint32_t m = cache_.match(prompt, options_for(ns));
    KVKIT_DRIVER_EXPECT(m == 0 || m < prompt.size()) << "match() = " << m;
    check_hit_bound(ns, prompt, m, "match");
    expect_unchanged(before, "match()");
  }

  void do_invalidate() {
    // 0: a tenant, 1: a session, 2: an extra key, 3: clear() (every namespace).
    const std::uint64_t kind = pick(10) == 0 ? 3 : pick(3);
    static constexpr std::uint64_t salts[] = {0, 3, 7, 9};
    static constexpr std::uint64_t sessions[] = {5, 6, 8};
    static constexpr std::uint64_t keys[] = {42, 43, 44};
    const std::uint64_t v = kind == 0   ? salts[pick(4)]
                            : kind == 1 ? sessions[pick(3)]
                            : kind == 2 ? keys[pick(3)]
                                        : 0;
    begin_op(kind == 3 ? std::string("clear()")
                       : std::string(kind == 0   ? "invalidate_tenant("
                                     : kind == 1 ? "invalidate_session("
                                                 : "invalidate_key(") +
                             std::to_string(v) + ")");
    const cache_stats before = cache_.stats();
    // Blocks of live sequences in the namespaces about to be invalidated: they stay with their
    // sequences but are no longer counted as cached.
    std::vector<bool> invalidated(property_namespaces().size(), false);
    for (std::size_t ns = 0; ns < property_namespaces().size(); ++ns) {
      const property_namespace& n = property_namespaces()[ns];
      invalidated[ns] = kind == 0   ? n.tenant_salt == v
                        : kind == 1 ? n.session_id == v
                        : kind == 2 ? std::ranges::find(n.extra_keys, v) != n.extra_keys.end()
                                    : true;
    }
    std::set<block_id> held;
    for (const live_seq& s : live_) {
      if (!invalidated[s.ns])
        continue;
      auto view = cache_.sequence(s.id);
      KVKIT_DRIVER_ASSERT(view.ok()) << view.error().message();
      held.insert(view->blocks.begin(), view->blocks.end());
    }
    const std::uint32_t freed = kind == 0   ? cache_.invalidate_tenant(v)
                                : kind == 1 ? cache_.invalidate_session(v)
                                : kind == 2 ? cache_.invalidate_key(v)
                                            : cache_.clear();
    const cache_stats after = cache_.stats();
    KVKIT_DRIVER_ASSERT(after.blocks_cached <= before.blocks_cached);
    const std::uint32_t dropped = before.blocks_cached - after.blocks_cached;
    KVKIT_DRIVER_EXPECT(dropped >= freed && dropped <= freed + held.size())
        << "invalidation freed " << freed << " blocks, " << held.size()
        << " more are held by its sequences, but the cached gauge fell by " << dropped;
    if (held.empty())
      KVKIT_DRIVER_EXPECT_EQ(dropped, freed);
    if (kind == 3) {
      KVKIT_DRIVER_EXPECT_EQ(after.blocks_cached, 0u) << "clear() left cached blocks";
      KVKIT_DRIVER_EXPECT_EQ(after.blocks_evictable, 0u);
    }
    KVKIT_DRIVER_EXPECT_EQ(after.blocks_free, before.blocks_free + freed);
    cov_.invalidated += freed;
    for (std::size_t ns = 0; ns < property_namespaces().size(); ++ns) {
      if (!invalidated[ns])
        continue;
      ++epoch_[ns];
      shadow_[ns].clear();
    }
    // Nothing of an invalidated namespace is hit any more: a sequence admitted before its
    // namespace was invalidated hits only what was committed there since (the shadow index).
    std::vector<token_id> probe;
    for (const live_seq& s : live_) {
      if (s.epoch == epoch_[s.ns])
        continue;
      probe = s.tokens;
      probe.push_back(0);
      check_hit_bound(s.ns, probe, cache_.match(probe, options_for(s.ns)),
                      "match() after invalidation");
    }
  }

  void do_expire() {
    begin_op("expire()");
    const cache_stats before = cache_.stats();
    const std::uint32_t freed = cache_.expire();
    KVKIT_DRIVER_EXPECT_EQ(cache_.stats().blocks_cached + freed, before.blocks_cached);
    if constexpr (!eviction_has_expiry<eviction_type>) {
      KVKIT_DRIVER_EXPECT_EQ(freed, 0u) << "a policy without expiry expired blocks";
    }
    cov_.expired += freed;
  }

  void do_invalid() {
    ++cov_.invalid_calls;
    const snapshot before = take_snapshot();
    const std::uint64_t kind = pick(8);
    errc want = errc::ok;
    errc got = errc::ok;
    if (kind == 0) {
      begin_op("admit(empty)");
      want = errc::empty_input;
      got = cache_.admit({}, options_for(pick(property_namespaces().size()))).code();
    } else if (kind == 1) {
      std::vector<token_id> prompt = gen_prompt();
      const auto cls = max_request_classes + static_cast<std::uint32_t>(pick(3));
      begin_op("admit(class " + std::to_string(cls) + ", " + describe(prompt) + ")");
      want = errc::invalid_argument;
      got = cache_.admit(prompt, options_for(0, cls)).code();
    } else if (kind == 2) {
      begin_op("pin(empty)");
      want = errc::empty_input;
      got = cache_.pin({}, options_for(0)).code();
    } else if (kind <= 5 && !live_.empty()) {
      const live_seq& s = pick_live();
      const auto len = static_cast<std::uint32_t>(s.tokens.size());
      if (kind == 3) {
        begin_op("append(empty)");
        want = errc::empty_input;
        got = cache_.append(s.id, {}).code();
      } else {
        std::uint32_t n = len + 1 + static_cast<std::uint32_t>(pick(3));
        if (kind == 5 && s.computed > 0)
          n = static_cast<std::uint32_t>(pick(s.computed));
        begin_op("commit(n = " + std::to_string(n) + " of " + std::to_string(len) + ", computed " +
                 std::to_string(s.computed) + ")");
        want = errc::invalid_argument;
        got = cache_.commit(s.id, n).code();
      }
    } else {
      // A finished id (when there is one) or an id never issued.
      sequence_id id;
      if (kind < 7 && !finished_.empty()) {
        id = finished_[pick(finished_.size())];
        want = errc::finished_sequence;
      } else {
        id = unknown_id();
        want = errc::unknown_sequence;
      }
      std::vector<token_id> tokens;
      append_random(tokens, 1 + pick(2));
      const std::uint64_t call = pick(6);
      begin_op("call " + std::to_string(call) + " on stale/unknown id {" +
               std::to_string(id.index) + "," + std::to_string(id.generation) + "}");
      switch (call) {
        case 0:
          got = cache_.commit(id, static_cast<std::uint32_t>(pick(8))).code();
          break;
        case 1:
          got = cache_.commit(id).code();
          break;
        case 2:
          got = cache_.append(id, tokens).code();
          break;
        case 3:
          got = cache_.finish(id).code();
          break;
        case 4:
          got = cache_.fork(id).code();
          break;
        default:
          got = cache_.sequence(id).code();
          break;
      }
    }
    KVKIT_DRIVER_EXPECT_EQ(got, want);
    expect_unchanged(before, "an invalid call");
  }

  // ---- after every operation ----

  void check_everything() {
    const status inv = cache_.check_invariants();
    KVKIT_DRIVER_ASSERT(inv.ok()) << inv.message();
    const cache_stats st = cache_.stats();
    KVKIT_DRIVER_EXPECT_EQ(st.active_sequences, live_.size());
    if constexpr (never_cascades) {
      KVKIT_DRIVER_EXPECT_EQ(st.cascade_evictions, 0u)
          << "eviction policy " << policy_traits<eviction_type>::name()
          << " evicted a block with cached children";
    }
    for (live_seq& s : live_) {
      auto v = cache_.sequence(s.id);
      KVKIT_DRIVER_ASSERT(v.ok()) << "live sequence: " << v.error().message();
      KVKIT_DRIVER_ASSERT(std::ranges::equal(v->tokens, s.tokens))
          << "sequence tokens differ from " << describe(s.tokens);
      KVKIT_DRIVER_EXPECT_EQ(v->computed_tokens, s.computed);
      KVKIT_DRIVER_ASSERT_EQ(v->blocks.size(), blocks_for(s.tokens.size()));
      for (block_id b : v->blocks)
        KVKIT_DRIVER_ASSERT(b < num_blocks_) << "block id " << b << " out of range";
      check_kv(s, 0, static_cast<std::uint32_t>(s.tokens.size()), "after the operation");
    }
  }

  Choices& choices_;
  check_context checks_;
  manual_clock& clock_;
  std::uint32_t block_size_;
  std::uint32_t num_blocks_;
  Cache cache_;
  std::vector<std::vector<token_id>> pool_;
  std::vector<live_seq> live_;
  std::vector<sequence_id> finished_;
  std::uint32_t max_index_ = 0;
  std::map<std::uint32_t, std::uint32_t> max_generation_;
  std::vector<std::set<std::vector<token_id>>> shadow_;  // per namespace: committed prefixes
  std::vector<std::uint64_t> epoch_;                     // per namespace: invalidations so far
  property_coverage cov_;
  std::string last_op_;
};

}  // namespace kvkit::test
