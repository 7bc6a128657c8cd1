// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A synthetic KV-event stream standing in for a cache: chains of stored blocks (several tenants,
// with and without extra keys, hashes over the whole 64-bit range), removals of stored blocks
// once the pool is full, and an occasional clear. Every event goes to each sink given.
#pragma once

#include <kvkit/events.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace kvkit_test {

class synthetic_events {
 public:
  struct options {
    std::uint32_t block_size = 16;
    std::uint32_t pool_blocks = 2048;  // removals keep the stored set below this
    std::uint32_t max_chain = 12;      // blocks per stored chain
    double clear_probability = 0.0;    // per batch
    std::uint64_t seed = 1;
  };

  explicit synthetic_events(options o) : opt_(o), rng_(o.seed) {}

  // Emits about `events` events (whole chains) to every sink.
  template <class... Sinks>
  void batch(std::uint32_t events, Sinks&... sinks) {
    if (opt_.clear_probability > 0 && std::bernoulli_distribution(opt_.clear_probability)(rng_)) {
      const kvkit::all_blocks_cleared_event e{};
      (sinks.on_cleared(e), ...);
      stored_.clear();
    }
    std::uint32_t emitted = 0;
    while (emitted < events) {
      if (stored_.size() + opt_.max_chain > opt_.pool_blocks || coin(0.25)) {
        emitted += remove_some(sinks...);
      } else {
        emitted += store_chain(sinks...);
      }
    }
  }

  [[nodiscard]] std::size_t stored() const noexcept { return stored_.size(); }

 private:
  bool coin(double p) { return std::bernoulli_distribution(p)(rng_); }

  template <class... Sinks>
  std::uint32_t store_chain(Sinks&... sinks) {
    static constexpr std::uint64_t adapter[2] = {7, 0xFFFFFFFFFFFFFFF1ull};
    const std::uint64_t salt = coin(0.3) ? 0x5eed0000000000abull + (rng_() % 3) : 0;
    const std::span<const std::uint64_t> extra =
        coin(0.3) ? std::span<const std::uint64_t>(adapter) : std::span<const std::uint64_t>{};
    // Continue a stored block's chain half of the time, else start a new chain.
    std::optional<std::uint64_t> parent;
    if (!stored_.empty() && coin(0.5))
      parent = stored_[rng_() % stored_.size()];
    const std::uint32_t n = 1 + static_cast<std::uint32_t>(rng_() % opt_.max_chain);
    std::vector<kvkit::token_id> tokens(opt_.block_size);
    for (std::uint32_t i = 0; i < n; ++i) {
      for (auto& t : tokens)
        t = static_cast<kvkit::token_id>(rng_() % 152064);
      kvkit::block_stored_event e;
      e.hash = rng_();  // any 64-bit value, including those above 2^63
      e.parent_hash = parent;
      e.tokens = tokens;
      e.block_size = opt_.block_size;
      e.tenant_salt = salt;
      e.extra_keys = extra;
      (sinks.on_stored(e), ...);
      stored_.push_back(e.hash);
      parent = e.hash;
    }
    return n;
  }

  template <class... Sinks>
  std::uint32_t remove_some(Sinks&... sinks) {
    if (stored_.empty())
      return 0;
    const std::uint32_t n = 1 + static_cast<std::uint32_t>(rng_() % 8);
    std::uint32_t removed = 0;
    for (; removed < n && !stored_.empty(); ++removed) {
      const std::size_t i = rng_() % stored_.size();
      kvkit::block_removed_event e;
      e.hash = stored_[i];
      e.reason = static_cast<kvkit::removal_reason>(rng_() % 3);
      (sinks.on_removed(e), ...);
      stored_[i] = stored_.back();
      stored_.pop_back();
    }
    return removed;
  }

  options opt_;
  std::mt19937_64 rng_;
  std::vector<std::uint64_t> stored_;
};

}  // namespace kvkit_test
