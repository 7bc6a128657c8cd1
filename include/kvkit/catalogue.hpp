// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Every shipped policy as type lists, a loop over every (allocator, matcher, eviction)
/// combination, and selection of a combination by name at run time: for microbenchmarks,
/// replays and tests that must cover every composition a user can build.
///
///     kvkit::for_each_combination([]<class A, class M, class E>() {
///       using cache = kvkit::prefix_cache<A, M, E, kvkit::no_storage>;
///       ...
///     });
#pragma once

#include <kvkit/allocator/fifo_free.hpp>
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/allocator/lowest_index.hpp>
#include <kvkit/concepts.hpp>
#include <kvkit/error.hpp>
#include <kvkit/eviction/fifo.hpp>
#include <kvkit/eviction/lfu.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/eviction/priority.hpp>
#include <kvkit/eviction/sieve.hpp>
#include <kvkit/eviction/ttl.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/matcher/radix.hpp>
#include <kvkit/matcher/session.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace kvkit {

/// @brief A list of types.
/// @tparam Ts The types.
template <class... Ts>
struct type_list {
  /// @brief Number of types.
  static constexpr std::size_t size = sizeof...(Ts);
};

/// @brief Every shipped block allocator.
using all_allocators = type_list<free_list_allocator, lowest_index_allocator, fifo_free_allocator>;
/// @brief Every shipped prefix matcher.
using all_matchers = type_list<hash_matcher, radix_matcher, session_matcher>;
/// @brief Every shipped eviction policy.
using all_evictions = type_list<lru_eviction, lfu_eviction, fifo_eviction, ttl_eviction,
                                priority_eviction, sieve_eviction>;

/// @brief Number of (allocator, matcher, eviction) combinations of the lists given.
/// @tparam Allocators A @ref kvkit::type_list of allocators.
/// @tparam Matchers A @ref kvkit::type_list of matchers.
/// @tparam Evictions A @ref kvkit::type_list of eviction policies.
template <class Allocators = all_allocators, class Matchers = all_matchers,
          class Evictions = all_evictions>
inline constexpr std::size_t combination_count = Allocators::size* Matchers::size* Evictions::size;

namespace detail {
template <class F, class A, class M, class... Es>
void for_each_eviction(F& f, type_list<Es...>) {
  (f.template operator()<A, M, Es>(), ...);
}
template <class F, class A, class Evictions, class... Ms>
void for_each_matcher(F& f, type_list<Ms...>) {
  (for_each_eviction<F, A, Ms>(f, Evictions{}), ...);
}
template <class F, class Matchers, class Evictions, class... As>
void for_each_allocator(F& f, type_list<As...>) {
  (for_each_matcher<F, As, Evictions>(f, Matchers{}), ...);
}
template <class... Ts>
std::string names_of(type_list<Ts...>) {
  std::string s;
  ((s += (s.empty() ? "" : ", ") + std::string(policy_traits<Ts>::name())), ...);
  return s;
}
}  // namespace detail

/// @brief Calls `f.template operator()<Allocator, Matcher, Eviction>()` for every combination,
/// allocator outermost and eviction innermost.
/// @tparam Allocators A @ref kvkit::type_list of allocators (default: every shipped one).
/// @tparam Matchers A @ref kvkit::type_list of matchers.
/// @tparam Evictions A @ref kvkit::type_list of eviction policies.
/// @tparam F A callable with a template call operator.
/// @param f Called once per combination.
template <class Allocators = all_allocators, class Matchers = all_matchers,
          class Evictions = all_evictions, class F>
void for_each_combination(F&& f) {
  detail::for_each_allocator<F, Matchers, Evictions>(f, Allocators{});
}

/// @brief Calls `f.template operator()<Allocator, Matcher, Eviction>()` for combination number
/// @p index in for_each_combination()'s order (nothing when out of range).
/// @tparam Allocators A @ref kvkit::type_list of allocators.
/// @tparam Matchers A @ref kvkit::type_list of matchers.
/// @tparam Evictions A @ref kvkit::type_list of eviction policies.
/// @tparam F A callable with a template call operator.
/// @param index The combination.
/// @param f The callable.
template <class Allocators = all_allocators, class Matchers = all_matchers,
          class Evictions = all_evictions, class F>
void with_combination(std::size_t index, F&& f) {
  std::size_t i = 0;
  for_each_combination<Allocators, Matchers, Evictions>([&]<class A, class M, class E>() {
    if (i++ == index)
      f.template operator()<A, M, E>();
  });
}

/// @brief Calls `f.template operator()<Allocator, Matcher, Eviction>()` for the combination
/// whose policies have the given names (`policy_traits<P>::name()`, e.g. "free_list", "hash",
/// "lru").
/// @tparam F A callable with a template call operator.
/// @param allocator Allocator name.
/// @param matcher Matcher name.
/// @param eviction Eviction policy name.
/// @param f The callable.
/// @return Ok, or `errc::invalid_argument` naming the unknown name and the accepted ones.
template <class F>
status with_combination(std::string_view allocator, std::string_view matcher,
                        std::string_view eviction, F&& f) {
  bool found = false;
  for_each_combination([&]<class A, class M, class E>() {
    if (!found && policy_traits<A>::name() == allocator && policy_traits<M>::name() == matcher &&
        policy_traits<E>::name() == eviction) {
      found = true;
      f.template operator()<A, M, E>();
    }
  });
  if (found)
    return {};
  const auto unknown = [](const char* what, std::string_view name, std::string accepted) {
    return status{error{errc::invalid_argument, std::string("kvkit: unknown ") + what + " '" +
                                                    std::string(name) +
                                                    "'; accepted: " + accepted}};
  };
  bool known_a = false, known_m = false;
  for_each_combination([&]<class A, class M, class E>() {
    known_a |= policy_traits<A>::name() == allocator;
    known_m |= policy_traits<M>::name() == matcher;
  });
  if (!known_a)
    return unknown("allocator", allocator, detail::names_of(all_allocators{}));
  if (!known_m)
    return unknown("matcher", matcher, detail::names_of(all_matchers{}));
  return unknown("eviction policy", eviction, detail::names_of(all_evictions{}));
}

}  // namespace kvkit
