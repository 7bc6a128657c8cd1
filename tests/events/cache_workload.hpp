// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A random workload for a prefix_cache whose listener reports KV events: requests over a few
// shared system prompts in three tenants (one with an extra key), partial and full commits,
// decoded tokens, finishes, evictions (a small pool), invalidations of a tenant and of a key,
// expiry (a manual clock for ttl_eviction) and an occasional clear(). After every operation the
// listener's batch is flushed, as an engine flushes once per step.
//
// The set of blocks a subscriber rebuilds from the events equals the cache's cached blocks
// whenever no sequence admitted before the last clear() is still running (such a sequence holds
// blocks the clear told the subscriber to forget, cached until it ends): `comparable()`.
#pragma once

#include <kvkit/prefix_cache.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <vector>

namespace kvkit_test {

/// Every cached block's key (`prefix_cache::block_key`), with its count: the cache's own view.
template <class Cache>
std::map<std::uint64_t, std::uint32_t> cached_keys(const Cache& c) {
  std::map<std::uint64_t, std::uint32_t> out;
  for (kvkit::block_id b = 0; b < c.num_blocks(); ++b) {
    if (const std::uint64_t k = c.block_key(b); k != 0)
      ++out[k];
  }
  return out;
}

struct workload_counts {
  std::uint64_t admitted = 0, rejected = 0, commits = 0, appends = 0, finished = 0;
  std::uint64_t invalidations = 0, clears = 0, expiries = 0;
};

template <class Cache>
class cache_workload {
 public:
  static constexpr std::uint64_t extra_key = 7;

  cache_workload(Cache& cache, std::shared_ptr<std::int64_t> clock, std::uint64_t seed)
      : c_(cache), clock_(std::move(clock)), rng_(seed) {
    const std::uint32_t bs = c_.block_size();
    for (int i = 0; i < 5; ++i) {
      std::vector<kvkit::token_id> p(bs * (2 + i));
      for (auto& t : p)
        t = static_cast<kvkit::token_id>(rng_() % 50000);
      systems_.push_back(std::move(p));
    }
  }

  // One random operation, then a flush of the listener's batch.
  void step() {
    const unsigned op = rng_() % 100;
    if (op < 35 || live_.empty()) {
      admit();
    } else if (op < 55) {
      commit_some(pick());
    } else if (op < 70) {
      append(pick());
    } else if (op < 90) {
      finish(pick_index());
    } else if (op < 95) {
      *clock_ += 1 + static_cast<std::int64_t>(rng_() % 40);
      c_.expire();
      ++counts.expiries;
    } else if (op < 99) {
      switch (rng_() % 3) {
        case 0:
          c_.invalidate_tenant(1);
          break;
        case 1:
          c_.invalidate_tenant(2);
          break;
        default:
          c_.invalidate_key(extra_key);
          break;
      }
      ++counts.invalidations;
    } else {
      clear();
    }
    *clock_ += 1;
    c_.listener().flush();
  }

  void clear() {
    c_.clear();
    ++counts.clears;
    for (live_seq& s : live_)
      s.before_clear = true;
    c_.listener().flush();
  }

  // Whether the events' view and the cache's cached blocks must agree now.
  [[nodiscard]] bool comparable() const {
    for (const live_seq& s : live_) {
      if (s.before_clear)
        return false;
    }
    return true;
  }

  void finish_all() {
    while (!live_.empty())
      finish(live_.size() - 1);
    c_.listener().flush();
  }

  // The prompts admitted so far (with their options' tenant and key choice).
  struct prompt_record {
    std::vector<kvkit::token_id> tokens;
    std::uint64_t salt = 0;
    bool keyed = false;
  };
  const std::vector<prompt_record>& prompts() const { return prompts_; }

  workload_counts counts;

 private:
  struct live_seq {
    kvkit::sequence_id id;
    bool before_clear = false;
  };

  std::size_t pick_index() { return rng_() % live_.size(); }
  kvkit::sequence_id pick() { return live_[pick_index()].id; }

  void admit() {
    prompt_record r;
    r.tokens = systems_[rng_() % systems_.size()];
    if (rng_() % 4 != 0) {  // most requests add a question of their own
      const std::uint32_t n = 1 + rng_() % (2 * c_.block_size() + 3);
      for (std::uint32_t i = 0; i < n; ++i)
        r.tokens.push_back(static_cast<kvkit::token_id>(rng_() % 50000));
    }
    const unsigned t = rng_() % 6;
    r.salt = t < 3 ? 0 : t < 5 ? 1 : 2;
    r.keyed = rng_() % 5 == 0;
    const std::uint64_t keys[] = {extra_key};
    kvkit::request_options o;
    o.tenant_salt = r.salt;
    if (r.keyed)
      o.extra_keys = keys;
    auto a = c_.admit(r.tokens, o);
    if (!a) {
      EXPECT_EQ(a.error().code(), kvkit::errc::out_of_blocks) << a.error().message();
      ++counts.rejected;
      return;
    }
    ++counts.admitted;
    prompts_.push_back(r);
    live_.push_back({a->id, false});
    if (rng_() % 3 != 0)
      commit_some(a->id);
    if (live_.size() > 6)
      finish(0);
  }

  void commit_some(kvkit::sequence_id id) {
    const auto v = c_.sequence(id);
    ASSERT_TRUE(v.ok()) << v.status().message();
    const auto len = static_cast<std::uint32_t>(v->tokens.size());
    const std::uint32_t from = v->computed_tokens;
    const std::uint32_t to = rng_() % 2 == 0 ? len : from + rng_() % (len - from + 1);
    auto r = c_.commit(id, to);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ++counts.commits;
  }

  void append(kvkit::sequence_id id) {
    const auto v = c_.sequence(id);
    ASSERT_TRUE(v.ok()) << v.status().message();
    if (v->computed_tokens < v->tokens.size())
      commit_some(id);
    std::vector<kvkit::token_id> t(1 + rng_() % c_.block_size());
    for (auto& x : t)
      x = static_cast<kvkit::token_id>(rng_() % 50000);
    if (const kvkit::status s = c_.append(id, t); !s) {
      EXPECT_EQ(s.code(), kvkit::errc::out_of_blocks) << s.message();
      return;
    }
    ++counts.appends;
    if (rng_() % 2 == 0) {
      auto r = c_.commit(id);
      ASSERT_TRUE(r.ok()) << r.status().message();
      ++counts.commits;
    }
  }

  void finish(std::size_t i) {
    ASSERT_TRUE(c_.finish(live_[i].id).ok());
    live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(i));
    ++counts.finished;
  }

  Cache& c_;
  std::shared_ptr<std::int64_t> clock_;
  std::mt19937_64 rng_;
  std::vector<std::vector<kvkit::token_id>> systems_;
  std::vector<live_seq> live_;
  std::vector<prompt_record> prompts_;
};

}  // namespace kvkit_test
