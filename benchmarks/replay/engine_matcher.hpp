// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The replay engine's combinations of one matcher: detail::replay_with_matcher<Matcher>, included
// by engine_<matcher>.cpp, which instantiates it for its matcher. Every allocator and eviction
// policy of the catalogue, and the optimal eviction, with that matcher.
#pragma once

#include <kvkit/catalogue.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "replay.hpp"

namespace kvkit::replay::detail {

template <class Matcher>
result<replay_result> replay_with_matcher(const trace& t, const replay_options& opt,
                                          std::string_view allocator, std::string_view eviction) {
  std::optional<result<replay_result>> out;
  const auto run = [&]<class A, class M, class E>() {
    if (!out && policy_traits<A>::name() == allocator && policy_traits<E>::name() == eviction)
      out.emplace(replay<A, M, E>(t, opt));
  };
  if (eviction == optimal_eviction::name)
    for_each_combination<all_allocators, type_list<Matcher>, type_list<optimal_eviction>>(run);
  else
    for_each_combination<all_allocators, type_list<Matcher>, all_evictions>(run);
  if (!out)
    return error{errc::invalid_config, "kvkit-replay: no combination " + std::string(allocator) +
                                           "/" + std::string(policy_traits<Matcher>::name()) + "/" +
                                           std::string(eviction)};
  return std::move(*out);
}

}  // namespace kvkit::replay::detail
