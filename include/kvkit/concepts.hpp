// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The four policy concepts a `prefix_cache` is composed of: block allocator, prefix
/// matcher, eviction policy and KV storage.
///
/// Every policy keeps its state in flat arrays indexed by `block_id`. Optional members (marked
/// below) get defaults through `policy_traits`, so a minimal policy implements only the required
/// ones. `prefix_cache` checks each requirement with its own `static_assert`, so a policy that
/// lacks a member fails to compile with a message naming that member.
#pragma once

#include <kvkit/layout.hpp>
#include <kvkit/types.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace kvkit {

/// @brief What a cache tells an eviction policy about an access to a block.
struct access_info {
  std::uint64_t tick = 0;           ///< The cache's logical clock (one tick per request event).
  std::uint32_t request_class = 0;  ///< The request class (tier) given at admission.
};

namespace detail {

/// Stands in for the verification callback a cache passes to a matcher's find().
struct verifier_archetype {
  bool operator()(block_id) const noexcept { return true; }
};

// ---- block allocator requirements --------------------------------------------------------------
template <class A>
concept allocator_constructible = std::constructible_from<A, std::uint32_t>;
template <class A>
concept allocator_has_allocate = requires(A& a) {
  { a.allocate() } -> std::same_as<block_id>;
};
template <class A>
concept allocator_has_deallocate = requires(A& a, block_id b) {
  { a.deallocate(b) } -> std::same_as<void>;
};
template <class A>
concept allocator_has_free_count = requires(const A& a) {
  { a.free_count() } -> std::convertible_to<std::uint32_t>;
};

// ---- matcher requirements ----------------------------------------------------------------------
template <class M>
concept matcher_constructible = std::constructible_from<M, std::uint32_t, std::uint64_t>;
template <class M>
concept matcher_has_cursor = requires {
  typename M::cursor;
}
&&std::copyable<typename M::cursor>;
template <class M>
concept matcher_has_root = requires(const M& m, std::uint32_t node, std::uint64_t key) {
  { m.root(node, key) } -> std::same_as<typename M::cursor>;
};
template <class M>
concept matcher_has_child = requires(const M& m, const typename M::cursor& c,
                                     std::span<const token_id> t) {
  { m.child(c, t) } -> std::same_as<typename M::cursor>;
};
template <class M>
concept matcher_has_find = requires(const M& m, const typename M::cursor& c, verifier_archetype v) {
  { m.find(c, v) } -> std::same_as<block_id>;
};
template <class M>
concept matcher_has_insert = requires(M& m, const typename M::cursor& c, block_id b) {
  { m.insert(c, b) } -> std::same_as<void>;
};
template <class M>
concept matcher_has_erase = requires(M& m, block_id b) {
  { m.erase(b) } -> std::same_as<void>;
};

// ---- eviction requirements ---------------------------------------------------------------------
template <class E>
concept eviction_constructible = std::constructible_from<E, std::uint32_t>;
template <class E>
concept eviction_has_insert = requires(E& e, block_id b) {
  { e.insert(b) } -> std::same_as<void>;
};
template <class E>
concept eviction_has_erase = requires(E& e, block_id b) {
  { e.erase(b) } -> std::same_as<void>;
};
template <class E>
concept eviction_has_victim = requires(E& e) {
  { e.victim() } -> std::same_as<block_id>;
};
template <class E>
concept eviction_has_size = requires(const E& e) {
  { e.size() } -> std::convertible_to<std::uint32_t>;
};

// ---- storage requirements ----------------------------------------------------------------------
template <class S>
concept storage_has_layout = requires(const S& s) {
  { s.layout() } -> std::convertible_to<const kv_layout&>;
};
template <class S>
concept storage_has_copy_block = requires(S& s, block_id b) {
  s.copy_block(b, b);
};
template <class S>
concept storage_has_bytes = requires(const S& s) {
  { s.bytes() } -> std::convertible_to<std::size_t>;
};

}  // namespace detail

/// @brief Hands out free block ids of a pool of `capacity` blocks.
///
/// Required: construction from the capacity (`A(std::uint32_t)`), `block_id allocate()` (returns
/// `invalid_block` when none is free), `void deallocate(block_id)`, `free_count() const`.
/// Optional: `std::size_t metadata_bytes() const`, `static constexpr std::string_view name`.
template <class A>
concept block_allocator = detail::allocator_constructible<A> && detail::allocator_has_allocate<A> &&
    detail::allocator_has_deallocate<A> && detail::allocator_has_free_count<A>;

/// @brief Finds cached blocks by content, one block at a time along a chain.
///
/// A cursor stands for a position in a chain. `root(ns_node, ns_key)` starts a chain in a
/// namespace; `child(c, tokens)` is the key of the block holding `tokens` under `c`;
/// `find(child, verify)` returns a registered block for that key for which `verify(block)` is
/// true (the cache checks parent link and stored tokens), or `invalid_block`; `insert(child, b)`
/// registers `b` under that key; `erase(b)` forgets `b`.
/// Required: `M(std::uint32_t capacity, std::uint64_t seed)` and the members above.
/// Optional: `void bind(cursor&, block_id) const` (called after a block is found or inserted, for
/// matchers whose cursors name nodes), `std::size_t metadata_bytes() const`, `name`.
template <class M>
concept prefix_matcher = detail::matcher_constructible<M> && detail::matcher_has_cursor<M> &&
    detail::matcher_has_root<M> && detail::matcher_has_child<M> && detail::matcher_has_find<M> &&
    detail::matcher_has_insert<M> && detail::matcher_has_erase<M>;

/// @brief Chooses which cached, unreferenced block to evict first.
///
/// The cache calls `insert(b)` when `b` becomes an eviction candidate, `erase(b)` when it stops
/// being one (hit again, or evicted as part of a subtree), and `victim()` to remove and return the
/// next block to evict (`invalid_block` when empty).
///
/// Which blocks are candidates depends on the optional `static constexpr bool leaves_only`:
/// - `false` (default): every cached, unreferenced block. Blocks of a finishing sequence are
///   inserted tail first. A victim that still has cached children is evicted with its whole
///   subtree (counted as cascade evictions), so no cached block is ever left unreachable; a policy
///   that orders parents after their children (LRU does) never causes that.
/// - `true`: only cached, unreferenced blocks without cached children (tree leaves). When a leaf is
///   evicted and its parent becomes an unreferenced leaf, the parent is inserted then. Suits
///   policies that order by a key (creation time, frequency, priority) rather than by insertion.
///
/// Required: `E(std::uint32_t capacity)`, `insert`, `erase`, `victim`, `size() const`.
/// Optional, each detected by `policy_traits`:
/// - `using options = ...;` and `E(std::uint32_t capacity, const options&)`: settings passed to
///   `prefix_cache::create`.
/// - `void touch(block_id, const access_info&)`: called on every hit and on every commit that
///   registers a block (the block is referenced at that moment).
/// - `void released(block_id)`: the block stopped being referenced and stays cached; called for
///   every such block in release order (a finishing sequence's blocks tail first), candidate or
///   not, before `insert` when it becomes one. Lets a `leaves_only` policy order by recency: a
///   parent that becomes a candidate when its last child is evicted was released earlier.
/// - `void forget(block_id)`: the block's content is gone (evicted or invalidated); reset
///   per-block state.
/// - `bool expired(block_id) const` and `block_id pop_expired()`: time-based expiry; an expired
///   candidate is never returned as a hit, and `prefix_cache::expire()` frees every block
///   `pop_expired()` hands out.
/// - `void begin_batch() const` and `void end_batch() const`: the cache brackets each of its
///   operations (admit, commit, append, fork, pin, finish, match, expire) with them, so a policy
///   that keeps time can read its clock once per operation rather than once per block.
/// - `std::size_t metadata_bytes() const`, `static constexpr std::string_view name`.
template <class E>
concept eviction_policy = detail::eviction_constructible<E> && detail::eviction_has_insert<E> &&
    detail::eviction_has_erase<E> && detail::eviction_has_victim<E> && detail::eviction_has_size<E>;

/// @brief Holds the K/V bytes of every block.
///
/// Required: movable, `layout() const` returning the @ref kvkit::kv_layout, `copy_block(src, dst)`
/// (copy on write of a shared block), `bytes() const`.
template <class S>
concept kv_storage = std::movable<S> && detail::storage_has_layout<S> &&
    detail::storage_has_copy_block<S> && detail::storage_has_bytes<S>;

/// @brief Settings of a policy that declares none.
struct no_options {};

/// @brief Defaults for the optional members of a policy.
/// @tparam P A policy type.
template <class P>
struct policy_traits {
  /// @brief The policy's bytes of bookkeeping (0 when it does not say).
  /// @param p The policy.
  /// @return Bytes.
  static std::size_t metadata_bytes(const P& p) noexcept {
    if constexpr (requires {
                    { p.metadata_bytes() } -> std::convertible_to<std::size_t>;
                  }) {
      return p.metadata_bytes();
    } else {
      return 0;
    }
  }
  /// @brief The policy's name, e.g. "lru" ("custom" when it does not say).
  /// @return The name.
  static constexpr std::string_view name() noexcept {
    if constexpr (requires {
                    { P::name } -> std::convertible_to<std::string_view>;
                  }) {
      return P::name;
    } else {
      return "custom";
    }
  }
  /// @brief Whether an eviction policy sees only leaf blocks (see @ref kvkit::eviction_policy).
  /// @return `P::leaves_only` when declared, else false.
  static constexpr bool leaves_only() noexcept {
    if constexpr (requires {
                    { P::leaves_only } -> std::convertible_to<bool>;
                  }) {
      return P::leaves_only;
    } else {
      return false;
    }
  }
};

namespace detail {
template <class P>
struct options_of {
  using type = no_options;
};
template <class P>
  requires requires {
    typename P::options;
  }
struct options_of<P> {
  using type = typename P::options;
};
}  // namespace detail

/// @brief The settings type of a policy: `P::options` when declared, else @ref kvkit::no_options.
/// @tparam P A policy type.
template <class P>
using policy_options_t = typename detail::options_of<P>::type;

}  // namespace kvkit
