// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The replay engine with tiers (tiers.hpp): the pool of each eviction policy of the catalogue,
// chosen by name.
#include <kvkit/catalogue.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "tiers.hpp"

namespace kvkit::replay {

result<replay_result> replay_tiered(const trace& t, const replay_options& opt,
                                    const tier_options& to, std::string_view eviction,
                                    tier_figures* figures) {
  std::optional<result<replay_result>> out;
  for_each_combination<type_list<free_list_allocator>, type_list<hash_matcher>, all_evictions>(
      [&]<class A, class M, class E>() {
        if (!out && policy_traits<E>::name() == eviction)
          out.emplace(replay_tiered<E>(t, opt, to, figures));
      });
  if (!out)
    return error{errc::invalid_config,
                 "kvkit-replay: tiers: eviction '" + std::string(eviction) +
                     "' is not in the catalogue (the optimal eviction has no tiers)"};
  return std::move(*out);
}

}  // namespace kvkit::replay
