// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Every shipped policy, as type lists, and a helper that runs a generic lambda for every
/// (allocator, matcher, eviction) combination: for fuzzers, benchmarks and tests that must cover
/// every composition a user can build.
///
///     kvkit::test::for_each_combination([]<class A, class M, class E>() {
///       using cache = kvkit::prefix_cache<A, M, E, kvkit::host_storage<float>>;
///       ...
///     });
#pragma once

#include <kvkit/allocator/fifo_free.hpp>
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/allocator/lowest_index.hpp>
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

namespace kvkit::test {

/// A list of types.
template <class... Ts>
struct type_list {
  /// Number of types.
  static constexpr std::size_t size = sizeof...(Ts);
};

/// Every shipped block allocator.
using all_allocators = type_list<free_list_allocator, lowest_index_allocator, fifo_free_allocator>;
/// Every shipped prefix matcher.
using all_matchers = type_list<hash_matcher, radix_matcher, session_matcher>;
/// Every shipped eviction policy.
using all_evictions = type_list<lru_eviction, lfu_eviction, fifo_eviction, ttl_eviction,
                                priority_eviction, sieve_eviction>;

/// Number of (allocator, matcher, eviction) combinations of the lists given.
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

}  // namespace detail

/// Calls `f.template operator()<Allocator, Matcher, Eviction>()` for every combination, allocator
/// outermost and eviction innermost (the order `combination_count` indices follow).
/// @tparam Allocators, Matchers, Evictions `type_list`s (default: every shipped policy).
template <class Allocators = all_allocators, class Matchers = all_matchers,
          class Evictions = all_evictions, class F>
void for_each_combination(F&& f) {
  detail::for_each_allocator<F, Matchers, Evictions>(f, Allocators{});
}

/// Calls `f.template operator()<Allocator, Matcher, Eviction>()` for the combination number
/// @p index (in for_each_combination()'s order; nothing when out of range). Every combination is
/// instantiated, one is run: the dispatch a fuzzer needs to choose a composition at run time.
template <class Allocators = all_allocators, class Matchers = all_matchers,
          class Evictions = all_evictions, class F>
void with_combination(std::size_t index, F&& f) {
  std::size_t i = 0;
  for_each_combination<Allocators, Matchers, Evictions>([&]<class A, class M, class E>() {
    if (i++ == index)
      f.template operator()<A, M, E>();
  });
}

}  // namespace kvkit::test
