// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The replay engine's by-name entry point: checks the names, then hands the run to the
// translation unit of the named matcher (engine_<matcher>.cpp), where its combinations are
// compiled. A matcher added to kvkit::all_matchers needs its engine_<matcher>.cpp (the link
// fails, naming replay_with_matcher<that matcher>, until it has one).
#include <kvkit/catalogue.hpp>

#include <optional>
#include <string_view>
#include <utility>

#include "replay.hpp"

namespace kvkit::replay {

result<replay_result> replay(const trace& t, const replay_options& opt, std::string_view allocator,
                             std::string_view matcher, std::string_view eviction) {
  if (auto s = check_combination(allocator, matcher, eviction); !s.ok())
    return error{s.code(), s.message()};
  std::optional<result<replay_result>> out;
  for_each_combination<type_list<free_list_allocator>, all_matchers, type_list<lru_eviction>>(
      [&]<class, class M, class>() {
        if (!out && policy_traits<M>::name() == matcher)
          out.emplace(detail::replay_with_matcher<M>(t, opt, allocator, eviction));
      });
  return std::move(*out);
}

}  // namespace kvkit::replay
