// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Implementation of kvkit::redis_tier. Not a public header: include <kvkit/tiers/redis_tier.hpp>.
#pragma once

#include <kvkit/hashing.hpp>
#include <kvkit/tiers/redis_tier.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>

namespace kvkit {

namespace detail {

inline std::string to_hex16(std::uint64_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i) {
    s[static_cast<std::size_t>(i)] = digits[v & 15u];
    v >>= 4;
  }
  return s;
}

inline std::optional<std::uint64_t> from_hex16(std::string_view s) {
  if (s.size() != 16)
    return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : s) {
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= static_cast<std::uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v |= static_cast<std::uint64_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
  }
  return v;
}

inline bool valid_key_word(std::string_view s) {
  if (s.empty() || s.size() > 128)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/' || c == '@' || c == '+';
  });
}

inline void report_to_stderr(const tier_event& e) {
  if (e.what == tier_event::kind::episode_begin) {
    std::fprintf(stderr, "kvkit: %.*s tier: %.*s errors began: %.*s\n",
                 static_cast<int>(e.tier.size()), e.tier.data(),
                 static_cast<int>(to_string(e.error).size()), to_string(e.error).data(),
                 static_cast<int>(e.message.size()), e.message.data());
  } else {
    std::fprintf(stderr, "kvkit: %.*s tier: %.*s errors ended: %llu in %.3f s\n",
                 static_cast<int>(e.tier.size()), e.tier.data(),
                 static_cast<int>(to_string(e.error).size()), to_string(e.error).data(),
                 static_cast<unsigned long long>(e.errors),
                 static_cast<double>(e.duration_ns) * 1e-9);
  }
}

}  // namespace detail

inline result<redis_tier> redis_tier::create(const kv_layout& layout, redis_tier_options opts) {
  auto bad = [](const std::string& what) {
    return error{errc::invalid_config, "kvkit: redis_tier_options." + what};
  };
  kv_layout l = layout;
  l.num_blocks = 1;
  if (auto s = l.validate(); !s.ok())
    return error{s.code(), s.message()};
  if (!detail::valid_key_word(opts.model)) {
    return bad(
        "model must be 1 to 128 letters, digits or . _ - / @ + (it names the model in "
        "every key), got '" +
        opts.model + "'");
  }
  if (!detail::valid_key_word(opts.key_prefix)) {
    return bad("key_prefix must be 1 to 128 letters, digits or . _ - / @ +, got '" +
               opts.key_prefix + "'");
  }
  if (opts.host.empty())
    return bad("host must not be empty");
  if (opts.port == 0)
    return bad("port must be in [1, 65535], got 0");
  auto positive = [&](const char* name,
                      std::chrono::milliseconds v) -> std::optional<kvkit::error> {
    if (v.count() < 1)
      return bad(std::string(name) + " must be >= 1 ms, got " + std::to_string(v.count()));
    return std::nullopt;
  };
  for (const auto& [n, v] :
       {std::pair{"connect_timeout", opts.connect_timeout},
        std::pair{"command_timeout", opts.command_timeout},
        std::pair{"retry_initial", opts.retry_initial}, std::pair{"retry_max", opts.retry_max}}) {
    if (auto e = positive(n, v))
      return *e;
  }
  if (opts.retry_max < opts.retry_initial) {
    return bad("retry_max must be >= retry_initial (" + std::to_string(opts.retry_initial.count()) +
               " ms), got " + std::to_string(opts.retry_max.count()) + " ms");
  }
  if (opts.ttl.count() < 0 || opts.generation_ttl.count() < 0)
    return bad("ttl and generation_ttl must be >= 0 s (0: no expiry)");
  if (opts.generation_refresh.count() < 0 || opts.quiet_period.count() < 0)
    return bad("generation_refresh and quiet_period must be >= 0 ms");
  if (detail::tier_value_header_bytes(l) > 0xFFFF) {
    return bad("cannot store blocks of " + std::to_string(l.block_size) +
               " tokens: a value header holds at most 16363 tokens");
  }
  if (detail::tier_value_bytes(l) > (std::size_t{512} << 20)) {
    return bad("cannot store blocks of " + std::to_string(l.block_bytes_all_layers()) +
               " bytes: a Redis value holds at most 512 MiB");
  }
  std::string prefix = opts.key_prefix + ":v" + std::to_string(detail::tier_value_version) + ":" +
                       opts.model + ":L" + std::to_string(l.num_layers) + ".H" +
                       std::to_string(l.num_kv_heads) + ".D" + std::to_string(l.head_dim) + ".B" +
                       std::to_string(l.block_size) + "." + std::string(to_string(l.type)) + "." +
                       std::string(to_string(l.order));
  return redis_tier(l, std::move(opts), std::move(prefix));
}

inline redis_tier::redis_tier(const kv_layout& layout, redis_tier_options&& opts,
                              std::string prefix)
    : layout_(layout),
      opts_(std::move(opts)),
      clock_(opts_.now ? opts_.now
                       : std::function<std::chrono::nanoseconds()>(detail::tier_steady_now)),
      prefix_(std::move(prefix)),
      fingerprint_(detail::layout_fingerprint(layout, opts_.model)),
      link_(detail::redis_link::config{opts_.host, opts_.port, opts_.connect_timeout,
                                       opts_.command_timeout, opts_.retry_initial, opts_.retry_max,
                                       clock_}),
      episodes_(name,
                opts_.on_event ? opts_.on_event
                               : detail::error_episodes::reporter(detail::report_to_stderr),
                opts_.quiet_period, clock_),
      rng_(random_seed()) {}

inline bool redis_tier::accepts(tier_store_reason reason) const noexcept {
  switch (reason) {
    case tier_store_reason::eviction:
      return opts_.write == tier_write_policy::on_eviction;
    case tier_store_reason::commit:
      return opts_.write == tier_write_policy::through;
    case tier_store_reason::warm:
      return true;
  }
  return false;
}

// ---- generations -------------------------------------------------------------------------------

inline void redis_tier::gens_of(const tier_namespace& ns, std::vector<gen_id>& out) const {
  out.push_back({'t', ns.tenant_salt});
  if (ns.session_id != 0)
    out.push_back({'s', ns.session_id});
  for (const std::uint64_t x : ns.extra_keys)
    out.push_back({'x', x});
}

inline std::string redis_tier::gen_key(const gen_id& g) const {
  return prefix_ + ":gen:" + g.kind + ":" + detail::to_hex16(g.value);
}

inline bool redis_tier::fresh(const gen_entry& e) const {
  if (e.pending)
    return true;
  const auto refresh =
      std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.generation_refresh).count();
  return e.connection == link_.connections() && now_ns() - e.fetched_ns < refresh;
}

inline std::uint64_t redis_tier::ns_digest(const tier_namespace& ns) const {
  std::uint64_t words[3] = {ns.key, 0, 0};
  words[1] = gens_.at({'t', ns.tenant_salt}).value;
  words[2] = ns.session_id != 0 ? gens_.at({'s', ns.session_id}).value : 0;
  std::uint64_t h = XXH3_64bits(words, sizeof(words));
  for (const std::uint64_t x : ns.extra_keys) {
    const std::uint64_t g = gens_.at({'x', x}).value;
    h = XXH3_64bits_withSeed(&g, sizeof(g), h);
  }
  return h;
}

inline std::string redis_tier::data_key_of(std::uint64_t digest, std::uint64_t key) const {
  return prefix_ + ":{" + detail::to_hex16(digest) + "}:" + detail::to_hex16(key);
}

inline void redis_tier::begin_pipeline() {
  pipe_.clear();
  roles_.clear();
  const std::string ttl = std::to_string(opts_.generation_ttl.count());
  pending_in_flight_gens_ = pending_gens_.size();
  for (std::size_t i = 0; i < pending_gens_.size(); ++i) {
    pipe_.command().arg("SET").arg(gen_key(pending_gens_[i]));
    pipe_.arg(detail::to_hex16(gens_[pending_gens_[i]].value));
    if (opts_.generation_ttl.count() > 0)
      pipe_.arg("EX").arg(ttl);
    roles_.push_back({reply_role::what::pending_set, i});
  }
  pending_in_flight_deletes_ = pending_deletes_.size();
  for (std::size_t i = 0; i < pending_deletes_.size(); ++i) {
    pipe_.command().arg("DEL").arg(pending_deletes_[i]);
    roles_.push_back({reply_role::what::bad_delete, i});
  }
}

inline void redis_tier::on_pending_reply(const reply_role& role, const redisReply* r) {
  if (role.kind == reply_role::what::pending_set) {
    if (r->type == REDIS_REPLY_STATUS) {
      gen_entry& e = gens_[pending_gens_[role.index]];
      e.pending = false;
      e.fetched_ns = now_ns();
      e.connection = link_.connections();
    } else {
      count_reply_error(r, "writing generation " + gen_key(pending_gens_[role.index]));
    }
  }
  // A deletion's reply says nothing useful: the value is gone either way.
}

inline void redis_tier::after_run(bool ok) {
  // Written generations leave the pending list; unwritten ones stay for the next round trip.
  const std::size_t n = std::min(pending_in_flight_gens_, pending_gens_.size());
  std::vector<gen_id> still;
  for (std::size_t i = 0; i < pending_gens_.size(); ++i) {
    if (i >= n || gens_[pending_gens_[i]].pending)
      still.push_back(pending_gens_[i]);
  }
  pending_gens_ = std::move(still);
  if (ok) {
    const std::size_t d = std::min(pending_in_flight_deletes_, pending_deletes_.size());
    pending_deletes_.erase(pending_deletes_.begin(),
                           pending_deletes_.begin() + static_cast<std::ptrdiff_t>(d));
    episodes_.link_ok();
  }
  pending_in_flight_gens_ = pending_in_flight_deletes_ = 0;
}

inline bool redis_tier::refresh_generations(std::span<const tier_namespace* const> nss) {
  gen_scratch_.clear();
  for (const tier_namespace* ns : nss)
    gens_of(*ns, gen_scratch_);
  std::vector<gen_id> stale;
  for (const gen_id& g : gen_scratch_) {
    auto it = gens_.find(g);
    if ((it == gens_.end() || !fresh(it->second)) &&
        std::find(stale.begin(), stale.end(), g) == stale.end())
      stale.push_back(g);
  }
  if (stale.empty())
    return true;
  // Keep the cache bounded: forget generations not read within the refresh time.
  if (gens_.size() > 65536) {
    std::erase_if(gens_, [&](const auto& kv) { return !fresh(kv.second); });
  }
  begin_pipeline();
  const std::string ttl = std::to_string(opts_.generation_ttl.count());
  for (std::size_t i = 0; i < stale.size(); ++i) {
    const std::string k = gen_key(stale[i]);
    // Create a random generation if none exists (both engines agree on the first one written),
    // then read it and renew its time to live.
    std::uint64_t fresh_value = rng_();
    pipe_.command().arg("SET").arg(k).arg(detail::to_hex16(fresh_value)).arg("NX");
    if (opts_.generation_ttl.count() > 0)
      pipe_.arg("EX").arg(ttl);
    roles_.push_back({reply_role::what::gen_create, i});
    if (opts_.generation_ttl.count() > 0) {
      pipe_.command().arg("GETEX").arg(k).arg("EX").arg(ttl);
    } else {
      pipe_.command().arg("GET").arg(k);
    }
    roles_.push_back({reply_role::what::gen_read, i});
  }
  std::size_t read = 0;
  const auto failure = link_.run(pipe_, [&](std::size_t i, const redisReply* r) {
    const reply_role& role = roles_[i];
    switch (role.kind) {
      case reply_role::what::pending_set:
      case reply_role::what::bad_delete:
        on_pending_reply(role, r);
        break;
      case reply_role::what::gen_create:
        if (r->type == REDIS_REPLY_ERROR)
          count_reply_error(r, "creating generation " + gen_key(stale[role.index]));
        break;
      case reply_role::what::gen_read:
        if (r->type == REDIS_REPLY_STRING) {
          const std::string_view v(r->str, r->len);
          gen_entry& e = gens_[stale[role.index]];
          e.value = detail::from_hex16(v).value_or(XXH3_64bits(v.data(), v.size()));
          e.fetched_ns = now_ns();
          e.connection = link_.connections();
          e.pending = false;
          ++read;
        } else if (r->type == REDIS_REPLY_ERROR) {
          count_reply_error(r, "reading generation " + gen_key(stale[role.index]));
        }
        break;
      case reply_role::what::data:
      case reply_role::what::data_head:
      case reply_role::what::data_len:
        break;
    }
  });
  after_run(!failure);
  if (failure) {
    count_link_failure(*failure);
    return false;
  }
  return read == stale.size();
}

inline std::optional<std::string> redis_tier::data_key(const tier_namespace& ns,
                                                       std::uint64_t key) {
  const tier_namespace* one[] = {&ns};
  if (!refresh_generations(one))
    return std::nullopt;
  return data_key_of(ns_digest(ns), key);
}

// ---- errors ------------------------------------------------------------------------------------

inline void redis_tier::count_link_failure(const detail::link_failure& f) {
  episodes_.count(f.kind, f.message);
}

inline void redis_tier::count_reply_error(const redisReply* r, const std::string& what) {
  if (r->type == REDIS_REPLY_ERROR) {
    const std::string_view msg(r->str, r->len);
    const bool oom = msg.starts_with("OOM");
    episodes_.count(oom ? tier_error::out_of_memory : tier_error::server,
                    what + ": " + std::string(msg));
  } else {
    episodes_.count(tier_error::server,
                    what + ": unexpected reply type " + std::to_string(r->type));
  }
}

inline void redis_tier::count_value_error(detail::value_check c, const std::string& key) {
  const tier_error e = detail::to_tier_error(c);
  episodes_.count(e, "value " + key + " failed verification (" + std::string(to_string(e)) + ")" +
                         (opts_.delete_bad_values ? "; deleted" : ""));
  if (opts_.delete_bad_values)
    pending_deletes_.push_back(key);
}

// ---- lookups and loads -------------------------------------------------------------------------

inline std::uint32_t redis_tier::fetch(const tier_chain& chain, std::span<const kv_block_view> dst,
                                       bool with_payload) {
  const auto start = std::chrono::steady_clock::now();
  const std::size_t bs = layout_.block_size;
  std::size_t n = std::min(chain.keys.size(), chain.tokens.size() / bs);
  if (with_payload)
    n = std::min(n, dst.size());
  ++stats_.lookups;
  stats_.lookup_blocks += chain.keys.size();
  episodes_.poll();
  if (n == 0)
    return 0;
  const tier_namespace* one[] = {&chain.ns};
  if (!refresh_generations(one))
    return 0;
  const std::uint64_t digest = ns_digest(chain.ns);
  const std::uint64_t extra_digest = detail::extra_keys_digest(chain.ns.extra_keys);
  keys_.resize(n);
  for (std::size_t i = 0; i < n; ++i)
    keys_[i] = data_key_of(digest, chain.keys[i]);

  begin_pipeline();
  const std::string ttl = std::to_string(opts_.ttl.count());
  const std::string head_end = std::to_string(detail::tier_value_header_bytes(layout_) - 1);
  for (std::size_t i = 0; i < n; ++i) {
    if (with_payload) {
      if (opts_.touch_on_hit && opts_.ttl.count() > 0) {
        pipe_.command().arg("GETEX").arg(keys_[i]).arg("EX").arg(ttl);
      } else {
        pipe_.command().arg("GET").arg(keys_[i]);
      }
      roles_.push_back({reply_role::what::data, i});
    } else {
      pipe_.command().arg("GETRANGE").arg(keys_[i]).arg("0").arg(head_end);
      pipe_.command().arg("STRLEN").arg(keys_[i]);
      roles_.push_back({reply_role::what::data_head, i});
      roles_.push_back({reply_role::what::data_len, i});
    }
  }

  std::uint32_t run = 0;
  bool broken = false;
  bool gap = false;
  std::string head;      // lookups: the GETRANGE reply awaiting its STRLEN
  bool head_ok = false;  // lookups: the GETRANGE reply was a string
  auto expectation = [&](std::size_t i) {
    return detail::value_expectation{&layout_,
                                     fingerprint_,
                                     chain.keys[i],
                                     i == 0 ? chain.parent : chain.keys[i - 1],
                                     &chain.ns,
                                     extra_digest,
                                     chain.tokens.subspan(i * bs, bs)};
  };
  const auto failure = link_.run(pipe_, [&](std::size_t k, const redisReply* r) {
    const reply_role& role = roles_[k];
    if (role.kind == reply_role::what::pending_set || role.kind == reply_role::what::bad_delete) {
      on_pending_reply(role, r);
      return;
    }
    const std::size_t i = role.index;
    if (role.kind == reply_role::what::data) {
      if (broken) {
        gap |= r->type == REDIS_REPLY_STRING;
        return;
      }
      if (r->type == REDIS_REPLY_NIL) {
        broken = true;
        return;
      }
      if (r->type != REDIS_REPLY_STRING) {
        count_reply_error(r, "reading " + keys_[i]);
        broken = true;
        return;
      }
      const std::span<const std::byte> v(reinterpret_cast<const std::byte*>(r->str), r->len);
      const auto c = detail::check_tier_value(v, v.size(), expectation(i), true);
      if (c != detail::value_check::ok) {
        count_value_error(c, keys_[i]);
        broken = true;
        return;
      }
      detail::copy_tier_payload(v, layout_, dst[i]);
      ++run;
      return;
    }
    // Lookup: GETRANGE then STRLEN of the same key.
    if (role.kind == reply_role::what::data_head) {
      head_ok = r->type == REDIS_REPLY_STRING;
      if (head_ok)
        head.assign(r->str, r->len);
      else if (r->type == REDIS_REPLY_ERROR)
        count_reply_error(r, "reading " + keys_[i]);
      return;
    }
    const bool present = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    if (broken) {
      gap |= present;
      return;
    }
    if (!present || !head_ok) {
      if (r->type == REDIS_REPLY_ERROR)
        count_reply_error(r, "reading " + keys_[i]);
      broken = true;
      return;
    }
    const std::span<const std::byte> h(reinterpret_cast<const std::byte*>(head.data()),
                                       head.size());
    const auto c =
        detail::check_tier_value(h, static_cast<std::size_t>(r->integer), expectation(i), false);
    if (c != detail::value_check::ok) {
      count_value_error(c, keys_[i]);
      broken = true;
      return;
    }
    ++run;
  });
  after_run(!failure);
  if (failure)
    count_link_failure(*failure);
  if (gap)
    ++stats_.chain_gaps;
  if (run != 0) {
    ++stats_.hits;
    stats_.hit_blocks += run;
    stats_.hit_tokens += std::uint64_t{run} * bs;
    if (with_payload) {
      stats_.loaded_blocks += run;
      stats_.bytes_out += std::uint64_t{run} * layout_.block_bytes_all_layers();
      latency_.record(
          static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::steady_clock::now() - start)
                                         .count()));
    }
  }
  return run;
}

inline std::uint32_t redis_tier::lookup(const tier_chain& chain) {
  return fetch(chain, {}, false);
}

inline std::uint32_t redis_tier::load(const tier_chain& chain, std::span<const kv_block_view> dst) {
  return fetch(chain, dst, true);
}

// ---- stores and invalidation -------------------------------------------------------------------

inline std::uint32_t redis_tier::store(std::span<const tier_block> blocks,
                                       tier_store_reason reason) {
  if (!accepts(reason) || blocks.empty())
    return 0;
  episodes_.poll();
  const std::size_t bs = layout_.block_size;
  std::vector<const tier_namespace*> nss;
  std::vector<std::size_t> valid;
  for (std::size_t j = 0; j < blocks.size(); ++j) {
    const tier_block& b = blocks[j];
    if (b.tokens.size() != bs || b.kv.data == nullptr) {
      ++stats_.rejected_blocks;
      continue;
    }
    valid.push_back(j);
    if (std::none_of(nss.begin(), nss.end(),
                     [&](const tier_namespace* n) { return n->key == b.ns.key; }))
      nss.push_back(&b.ns);
  }
  if (valid.empty())
    return 0;
  if (!refresh_generations(nss)) {
    stats_.rejected_blocks += valid.size();
    return 0;
  }
  const std::size_t value_bytes = detail::tier_value_bytes(layout_);
  values_.resize(valid.size() * value_bytes);
  keys_.resize(valid.size());
  for (std::size_t v = 0; v < valid.size(); ++v) {
    const tier_block& b = blocks[valid[v]];
    detail::encode_tier_value(values_.data() + v * value_bytes, layout_, fingerprint_, b);
    keys_[v] = data_key_of(ns_digest(b.ns), b.key);
  }
  begin_pipeline();
  const std::string ttl = std::to_string(opts_.ttl.count());
  for (std::size_t v = 0; v < valid.size(); ++v) {
    pipe_.command().arg("SET").arg(keys_[v]).ref(values_.data() + v * value_bytes, value_bytes);
    if (opts_.ttl.count() > 0)
      pipe_.arg("EX").arg(ttl);
    roles_.push_back({reply_role::what::data, v});
  }
  std::uint32_t held = 0;
  const auto failure = link_.run(pipe_, [&](std::size_t k, const redisReply* r) {
    const reply_role& role = roles_[k];
    if (role.kind != reply_role::what::data) {
      on_pending_reply(role, r);
      return;
    }
    if (r->type == REDIS_REPLY_STATUS) {
      ++held;
    } else {
      count_reply_error(r, "writing " + keys_[role.index]);
    }
  });
  after_run(!failure);
  if (failure)
    count_link_failure(*failure);
  stats_.stored_blocks += held;
  stats_.rejected_blocks += valid.size() - held;
  stats_.bytes_in += std::uint64_t{held} * layout_.block_bytes_all_layers();
  return held;
}

inline tier_invalidation redis_tier::invalidate(tier_scope scope) {
  episodes_.poll();
  const char kind = scope.what == tier_scope::kind::tenant    ? 't'
                    : scope.what == tier_scope::kind::session ? 's'
                                                              : 'x';
  const gen_id g{kind, scope.value};
  gen_entry& e = gens_[g];
  std::uint64_t v = rng_();
  while (v == e.value)
    v = rng_();
  e.value = v;  // holds here at once
  e.pending = true;
  e.fetched_ns = now_ns();
  if (std::find(pending_gens_.begin(), pending_gens_.end(), g) == pending_gens_.end())
    pending_gens_.push_back(g);
  begin_pipeline();
  const auto failure =
      link_.run(pipe_, [&](std::size_t k, const redisReply* r) { on_pending_reply(roles_[k], r); });
  after_run(!failure);
  if (failure)
    count_link_failure(*failure);
  return tier_invalidation{0, !gens_[g].pending};
}

inline tier_stats redis_tier::stats() const {
  tier_stats s = stats_;
  s.errors = episodes_.errors();
  s.error_episodes = episodes_.episodes();
  s.round_trips = link_.round_trips();
  s.promotion_latency = latency_.summary();
  return s;
}

}  // namespace kvkit
