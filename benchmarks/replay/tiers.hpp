// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Tiers in kvkit-replay: the pool (any eviction policy of the catalogue, free_list allocator,
// hash matcher) with a host tier (kvkit::host_tier<lru_eviction>, --host-tier-blocks N) and a
// remote tier (--remote-tier) under it, through kvkit::tiered. The remote tier is either a Redis
// server the user started (--remote-tier HOST:PORT, kvkit::redis_tier; built when hiredis is
// found) or, with --remote-tier model, an in-process model of an unbounded remote store: a
// host_tier large enough to hold every block of the trace (no network, no TTL, no sharing).
//
// The pool's storage is a host_storage of a tiny layout (1 layer, 1 KV head, head dimension 4,
// fp16: 16 bytes per cache block of one token) so that every demotion and promotion moves real
// bytes through the tiers, verification included, at a cost the replay can afford.
#pragma once

#include <kvkit/tiered.hpp>
#include <kvkit/tiers/host_tier.hpp>

#include "replay.hpp"
#if KVKIT_REPLAY_REDIS
#include <kvkit/tiers/redis_tier.hpp>
#endif

#include <cstdlib>
#include <optional>
#include <string>

namespace kvkit::replay {

/// The tiers of a replay.
struct tier_options {
  std::uint64_t host_blocks = 0;  ///< Host tier capacity in cache blocks (0: no host tier).
  /// Remote tier: "" none, "model" (in-process, unbounded), or "HOST:PORT" (a Redis server).
  std::string remote;
  std::string redis_model = "kvkit-replay";  ///< Model name of the Redis keys.
};

/// What the tiers did in one replay.
struct tier_figures {
  tier_stats host;            ///< The host tier's counters.
  tier_stats remote;          ///< The remote tier's counters.
  std::uint64_t demoted = 0;  ///< Blocks demoted (to any tier).
};

/// Whether the tiers of a replay can run; the error names the bad value.
inline status check_tiers(const tier_options& o) {
  if (o.remote.empty() || o.remote == "model")
    return {};
#if KVKIT_REPLAY_REDIS
  const auto colon = o.remote.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == o.remote.size() ||
      o.remote.find_first_not_of("0123456789", colon + 1) != std::string::npos ||
      std::atoi(o.remote.c_str() + colon + 1) < 1 ||
      std::atoi(o.remote.c_str() + colon + 1) > 65535)
    return error{errc::invalid_config, "kvkit-replay: --remote-tier '" + o.remote +
                                           "': accepted: model, or HOST:PORT of a Redis server "
                                           "(e.g. 127.0.0.1:6379)"};
  return {};
#else
  return error{errc::invalid_config,
               "kvkit-replay: --remote-tier '" + o.remote +
                   "': this build has no Redis tier (hiredis was not found); accepted: model"};
#endif
}

namespace detail {

#if KVKIT_REPLAY_REDIS
using replay_tiers = tiered<host_tier<lru_eviction>, host_tier<lru_eviction>, redis_tier>;
#else
using replay_tiers = tiered<host_tier<lru_eviction>, host_tier<lru_eviction>>;
#endif

inline kv_layout tier_replay_layout(std::uint32_t block_size, std::uint32_t blocks) {
  kv_layout l;
  l.num_layers = 1;
  l.num_kv_heads = 1;
  l.head_dim = 4;
  l.block_size = block_size;
  l.num_blocks = blocks;
  l.type = dtype::fp16;
  return l;
}

}  // namespace detail

/// Replays @p t through a pool of eviction @p Eviction with the tiers @p to.
template <class Eviction>
result<replay_result> replay_tiered(const trace& t, const replay_options& opt,
                                    const tier_options& to, tier_figures* figures) {
  using tiers_t = detail::replay_tiers;
  using cache_t =
      prefix_cache<free_list_allocator, hash_matcher, Eviction, host_storage<fp16>, tiers_t>;
  if (auto s = check_tiers(to); !s.ok())
    return error{s.code(), s.message()};
  replay_result res;
  res.policy = std::string("free_list/hash/") + std::string(policy_traits<Eviction>::name());
  const auto capacity = detail::pool_capacity(t, opt, res);
  if (!capacity.ok())
    return capacity.error();
  const std::uint64_t cap = *capacity;
  auto storage = host_storage<fp16>::create(
      detail::tier_replay_layout(t.cache_block_size, static_cast<std::uint32_t>(cap)));
  if (!storage.ok())
    return storage.error();
  cache_config cfg;
  cfg.seed = opt.seed;
  auto clock = std::make_shared<std::int64_t>(0);
  typename cache_t::eviction_options eo{};
  detail::set_eviction_options(eo, opt, clock);
  auto cache = cache_t::create(cfg, std::move(*storage), eo);
  if (!cache.ok())
    return cache.error();
  const kv_layout tl = detail::tier_replay_layout(t.cache_block_size, 1);
  if (to.host_blocks != 0) {
    host_tier<lru_eviction>::options ho;
    ho.capacity_blocks = static_cast<std::uint32_t>(to.host_blocks);
    auto h = host_tier<lru_eviction>::create(tl, std::move(ho));
    if (!h.ok())
      return error{h.error().code(), "kvkit-replay: --host-tier-blocks: " + h.error().message()};
    cache->listener().template attach<0>(std::move(*h));
  }
  if (to.remote == "model") {
    host_tier<lru_eviction>::options mo;
    mo.capacity_blocks = static_cast<std::uint32_t>(unlimited_capacity(t));
    auto m = host_tier<lru_eviction>::create(tl, std::move(mo));
    if (!m.ok())
      return m.error();
    cache->listener().template attach<1>(std::move(*m));
  }
#if KVKIT_REPLAY_REDIS
  else if (!to.remote.empty()) {
    redis_tier_options ro;
    const auto colon = to.remote.rfind(':');
    ro.host = to.remote.substr(0, colon);
    ro.port = static_cast<std::uint16_t>(std::atoi(to.remote.c_str() + colon + 1));
    ro.model = to.redis_model;
    ro.ttl = std::chrono::seconds(0);
    auto r = redis_tier::create(tl, std::move(ro));
    if (!r.ok())
      return error{r.error().code(), "kvkit-replay: --remote-tier: " + r.error().message()};
    cache->listener().template attach<2>(std::move(*r));
  }
#endif
  detail::replayer<cache_t> rp(std::move(*cache), t, opt, clock);
  if (auto s = rp.run(res); !s.ok())
    return error{s.code(), s.message()};
  if (figures != nullptr) {
    const tiered_stats st = rp.cache().listener().stats();
    figures->host = st.levels[0].tier;
    figures->remote = st.levels[1].attached ? st.levels[1].tier : st.levels[2].tier;
    figures->demoted =
        st.levels[0].demoted_blocks + st.levels[1].demoted_blocks + st.levels[2].demoted_blocks;
  }
  return res;
}

/// Replays @p t with tiers through the pool of eviction policy @p eviction (allocator free_list,
/// matcher hash). Defined in the kvkit_replay_engine library (engine_tiers.cpp).
result<replay_result> replay_tiered(const trace& t, const replay_options& opt,
                                    const tier_options& to, std::string_view eviction,
                                    tier_figures* figures);

}  // namespace kvkit::replay
