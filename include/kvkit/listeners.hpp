// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `listeners`: several `prefix_cache` listeners in the one listener slot, e.g. tiers
/// under the pool and a KV-event publisher on the same cache.
///
/// ```cpp
/// using cache_t = kvkit::prefix_cache<
///     kvkit::free_list_allocator, kvkit::hash_matcher, kvkit::lru_eviction,
///     kvkit::host_storage<float>,
///     kvkit::listeners<kvkit::tiered<kvkit::host_tier>,
///                      kvkit::event_listener<kvkit::zmq_event_publisher>>>;
/// cache.listener().get<0>().attach<0>(std::move(host));  // the host tier
/// cache.listener().get<1>().attach(publisher);           // the KV events
/// ```
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/tier.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>

namespace kvkit {

/// @brief A `prefix_cache` listener (its fifth template parameter) that forwards every call to
/// each of @p Ls that has the member, in the order given.
///
/// - `on_stored`, `on_removed`, `on_cleared` and `on_invalidated` go to every listener that
///   declares them, first to last; `listening()` is true while any of them listens (a listener
///   without `listening()` always listens).
/// - Promotion from tiers below the pool (`bind`, `active`, `promote`, `registered`,
///   `promoted_tokens`, `scratch_keys`, as `kvkit::tiered` has them) goes to the one listener that
///   promotes; at most one of @p Ls may (a second would promote the same blocks twice).
/// - The namespace of a removed block is computed when any listener reads it
///   (@ref kvkit::listener_skips_removed_namespace holds only when it holds for every listener
///   with `on_removed`).
///
/// Put the tiers first and the event publisher after them: a block demoted on eviction is then in
/// the host tier before its removal is published.
/// @tparam Ls Listeners (each a @ref kvkit::cache_listener).
template <cache_listener... Ls>
class listeners {
  static_assert(sizeof...(Ls) >= 1, "kvkit::listeners: give at least one listener");

  template <class L>
  static constexpr bool promotes = requires(const L& l) {
    l.promoted_tokens();
  };

  static constexpr std::size_t promoter_count = (std::size_t{promotes<Ls>} + ... + 0);
  static_assert(promoter_count <= 1,
                "kvkit::listeners: at most one listener may promote from tiers below the pool "
                "(put every tier into one kvkit::tiered)");

  static constexpr bool any_reads_removed_namespace =
      ((listener_has_on_removed<Ls> && !listener_skips_removed_namespace<Ls>) || ... || false);

 public:
  /// @brief Whether `on_removed` reads the namespace fields of its block_event (false when no
  /// listener does, see @ref kvkit::listener_skips_removed_namespace).
  static constexpr bool removed_namespace = any_reads_removed_namespace;

  /// @brief Default-constructed listeners.
  listeners() = default;

  /// @brief Listener @p I.
  /// @tparam I Its position in @p Ls.
  /// @return It.
  template <std::size_t I>
  [[nodiscard]] auto& get() noexcept {
    return std::get<I>(ls_);
  }

  /// @brief Listener @p I (read only).
  /// @tparam I Its position in @p Ls.
  /// @return It.
  template <std::size_t I>
  [[nodiscard]] const auto& get() const noexcept {
    return std::get<I>(ls_);
  }

  /// @brief Whether any listener wants to be told now.
  /// @return True when at least one listener listens.
  [[nodiscard]] bool listening() const noexcept {
    return std::apply(
        [](const Ls&... l) { return (listener_traits<Ls>::listening(l) || ... || false); }, ls_);
  }

  /// @brief A block became cached: told to every listener with `on_stored`.
  /// @param e The block.
  void on_stored(const block_event& e) requires(listener_has_on_stored<Ls> || ...) {
    std::apply(
        [&](Ls&... l) {
          (
              [&](auto& one) {
                if constexpr (listener_has_on_stored<std::remove_cvref_t<decltype(one)>>) {
                  if (listener_traits<std::remove_cvref_t<decltype(one)>>::listening(one))
                    one.on_stored(e);
                }
              }(l),
              ...);
        },
        ls_);
  }

  /// @brief A cached block is about to be freed: told to every listener with `on_removed`.
  /// @param e The block (its K/V bytes still in the storage).
  /// @param why Why it goes.
  void on_removed(const block_event& e,
                  removal_reason why) requires(listener_has_on_removed<Ls> || ...) {
    std::apply(
        [&](Ls&... l) {
          (
              [&](auto& one) {
                if constexpr (listener_has_on_removed<std::remove_cvref_t<decltype(one)>>) {
                  if (listener_traits<std::remove_cvref_t<decltype(one)>>::listening(one))
                    one.on_removed(e, why);
                }
              }(l),
              ...);
        },
        ls_);
  }

  /// @brief clear() starts: told to every listener with `on_cleared`.
  void on_cleared() requires(listener_has_on_cleared<Ls> || ...) {
    std::apply(
        [&](Ls&... l) {
          (
              [&](auto& one) {
                if constexpr (listener_has_on_cleared<std::remove_cvref_t<decltype(one)>>)
                  one.on_cleared();
              }(l),
              ...);
        },
        ls_);
  }

  /// @brief An invalidation by tenant, session or extra key: told to every listener with
  /// `on_invalidated` (the tiers drop what they hold of it).
  /// @param scope What was invalidated.
  void on_invalidated(tier_scope scope) requires(detail::listener_has_on_invalidated<Ls> || ...) {
    std::apply(
        [&](Ls&... l) {
          (
              [&](auto& one) {
                if constexpr (detail::listener_has_on_invalidated<
                                  std::remove_cvref_t<decltype(one)>>)
                  one.on_invalidated(scope);
              }(l),
              ...);
        },
        ls_);
  }

  /// @brief The cache's operation returns: told to every listener with `on_operation_end`
  /// (@ref kvkit::listener_has_on_operation_end), whether or not it listens now (blocks it
  /// collected earlier in the operation are handed on).
  void on_operation_end() noexcept requires(listener_has_on_operation_end<Ls> || ...) {
    std::apply(
        [&](Ls&... l) {
          (
              [&](auto& one) {
                if constexpr (listener_has_on_operation_end<std::remove_cvref_t<decltype(one)>>)
                  one.on_operation_end();
              }(l),
              ...);
        },
        ls_);
  }

  /// @brief Forwarded to the promoting listener: binds it to the cache's storage.
  /// @tparam Storage The cache's storage type.
  /// @param storage The storage.
  /// @param seed The cache's hash seed.
  template <class Storage>
    requires(promoter_count == 1)
  void bind(Storage& storage, std::uint64_t seed) { promoting().bind(storage, seed); }

  /// @brief Forwarded to the promoting listener: whether it has anything to promote from.
  /// @return True when a tier is attached.
  [[nodiscard]] bool active() const noexcept requires(promoter_count == 1) {
    return promoting().active();
  }

  /// @brief Forwarded to the promoting listener: loads the longest continuation of @p chain.
  /// @param chain The blocks wanted.
  /// @param blocks Pool blocks to load into.
  /// @return Blocks loaded.
  std::uint32_t promote(const tier_chain& chain,
                        std::span<const block_id> blocks) requires(promoter_count == 1) {
    return promoting().promote(chain, blocks);
  }

  /// @brief Forwarded to the promoting listener: how many loaded blocks the cache registered.
  /// @param n Blocks registered.
  void registered(std::uint32_t n) requires(promoter_count == 1) { promoting().registered(n); }

  /// @brief Forwarded to the promoting listener: tokens of the last admission per tier.
  /// @return Tokens per tier level.
  [[nodiscard]] std::array<std::uint32_t, max_cache_tiers> promoted_tokens() const
      requires(promoter_count == 1) {
    return promoting().promoted_tokens();
  }

  /// @brief Forwarded to the promoting listener: scratch room for @p n chained keys.
  /// @param n Keys wanted.
  /// @return The room.
  std::span<std::uint64_t> scratch_keys(std::uint32_t n) requires(promoter_count == 1) {
    return promoting().scratch_keys(n);
  }

 private:
  template <std::size_t I = 0>
  auto& promoting() {
    if constexpr (promotes<std::tuple_element_t<I, std::tuple<Ls...>>>) {
      return std::get<I>(ls_);
    } else {
      return promoting<I + 1>();
    }
  }

  template <std::size_t I = 0>
  const auto& promoting() const {
    if constexpr (promotes<std::tuple_element_t<I, std::tuple<Ls...>>>) {
      return std::get<I>(ls_);
    } else {
      return promoting<I + 1>();
    }
  }

  std::tuple<Ls...> ls_;
};

}  // namespace kvkit
