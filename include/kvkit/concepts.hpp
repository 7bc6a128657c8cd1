// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The policy contract: the four policy concepts a `prefix_cache` is composed of (block
/// allocator, prefix matcher, eviction policy, KV storage), one named concept per member, required
/// or optional, and `policy_traits`, which calls an optional member or supplies its default.
///
/// This header is the one home of the contract. Each member a policy may define is a named concept
/// whose definition is its exact signature; a policy concept is the conjunction of its required
/// members; `prefix_cache`, the conformance test kit (`<kvkit/testing/...>`) and the
/// documentation all use these concepts. A composite given a policy that lacks a required member
/// fails to compile with a message naming the member (see `detail::check_policies`).
///
/// Node ids. A matcher's cursor names a node of the cache's block tree: a block id in
/// `[0, capacity)`, or the root of a namespace (a tenant salt, session and extra keys), numbered
/// after the blocks: see @ref kvkit::namespace_node.
#pragma once

#include <kvkit/layout.hpp>
#include <kvkit/types.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

namespace kvkit {

/// @brief What a cache tells an eviction policy about an access to a block.
struct access_info {
  std::uint64_t tick = 0;           ///< The cache's logical clock (one tick per request event).
  std::uint32_t request_class = 0;  ///< The request class (tier) given at admission.
};

// ---- node ids --------------------------------------------------------------------------------

/// @brief The node id of namespace number @p ns in a cache of @p capacity blocks: namespaces are
/// numbered after the blocks, so a node id below the capacity is a block.
/// @param ns The namespace's index (0, 1, ...).
/// @param capacity Blocks in the pool.
/// @return `capacity + ns`.
[[nodiscard]] constexpr std::uint32_t namespace_node(std::uint32_t ns,
                                                     std::uint32_t capacity) noexcept {
  return capacity + ns;
}

/// @brief Whether node id @p node is a namespace root (not a block).
/// @param node A node id.
/// @param capacity Blocks in the pool.
/// @return `node >= capacity`.
[[nodiscard]] constexpr bool is_namespace_node(std::uint32_t node,
                                               std::uint32_t capacity) noexcept {
  return node >= capacity;
}

/// @brief The namespace index of namespace node @p node (see namespace_node()).
/// @param node A namespace node id (`is_namespace_node(node, capacity)`).
/// @param capacity Blocks in the pool.
/// @return `node - capacity`.
[[nodiscard]] constexpr std::uint32_t namespace_index(std::uint32_t node,
                                                      std::uint32_t capacity) noexcept {
  return node - capacity;
}

/// @brief Read access to the cache's block tree: the cached children of a node, newest first.
///
/// `first_child(node)` is the newest cached child of a block or namespace node
/// (`invalid_block` when it has none); `next_sibling(b)` the next older child of the same parent.
/// A cache passes one to a matcher's `find_partial`, so a matcher never keeps child lists of its
/// own.
template <class T>
concept block_tree_reader = requires(const T& t, std::uint32_t node, block_id b) {
  { t.first_child(node) } -> std::same_as<block_id>;
  { t.next_sibling(b) } -> std::same_as<block_id>;
};

namespace detail {

/// Stands in for the verification callback a cache passes to a matcher's find().
struct verifier_archetype {
  bool operator()(block_id) const noexcept { return true; }
};

/// Stands in for the score callback a cache passes to a matcher's find_partial().
struct score_archetype {
  std::uint32_t operator()(block_id) const noexcept { return 0; }
};

/// Stands in for the block tree a cache passes to a matcher's find_partial().
struct tree_archetype {
  block_id first_child(std::uint32_t) const noexcept { return invalid_block; }
  block_id next_sibling(block_id) const noexcept { return invalid_block; }
};

}  // namespace detail

// ---- members every policy may have ---------------------------------------------------------

/// @brief Optional: the policy's name, used by benchmarks, replays and the catalogue
/// (`static constexpr std::string_view name = "lru";`). Default: "custom".
template <class P>
concept policy_has_name = requires {
  { P::name } -> std::convertible_to<std::string_view>;
};

/// @brief Optional: bytes of bookkeeping the policy holds (`std::size_t metadata_bytes() const`),
/// added to `cache_stats::metadata_bytes`. Default: 0.
template <class P>
concept policy_has_metadata_bytes = requires(const P& p) {
  { p.metadata_bytes() } -> std::convertible_to<std::size_t>;
};

/// @brief Optional: the policy's settings type (`using options = ...;`), passed to
/// `prefix_cache::create`. A policy that declares it must also be constructible from them (see
/// @ref kvkit::eviction_has_options_constructor).
template <class P>
concept policy_has_options = requires {
  typename P::options;
};

// ---- block allocator -----------------------------------------------------------------------

/// @brief Required: `A(std::uint32_t capacity)` makes an allocator of a pool of `capacity`
/// blocks, all free.
template <class A>
concept allocator_from_capacity = std::constructible_from<A, std::uint32_t>;

/// @brief Required: `kvkit::block_id allocate()` hands out a free block, or `invalid_block` when
/// none is free.
template <class A>
concept allocator_has_allocate = requires(A& a) {
  { a.allocate() } -> std::same_as<block_id>;
};

/// @brief Required: `void deallocate(kvkit::block_id)` takes a block back.
template <class A>
concept allocator_has_deallocate = requires(A& a, block_id b) {
  { a.deallocate(b) } -> std::same_as<void>;
};

/// @brief Required: `std::uint32_t free_count() const`, the free blocks.
template <class A>
concept allocator_has_free_count = requires(const A& a) {
  { a.free_count() } -> std::convertible_to<std::uint32_t>;
};

/// @brief Hands out free block ids of a pool of `capacity` blocks: the conjunction of its
/// required members below. Optional: @ref kvkit::policy_has_name,
/// @ref kvkit::policy_has_metadata_bytes.
template <class A>
concept block_allocator = allocator_from_capacity<A> && allocator_has_allocate<A> &&
    allocator_has_deallocate<A> && allocator_has_free_count<A>;

// ---- prefix matcher ------------------------------------------------------------------------

/// @brief Required: `M(std::uint32_t capacity, std::uint64_t seed)` makes an empty matcher for a
/// pool of `capacity` blocks; `seed` is the cache's hash key.
template <class M>
concept matcher_from_capacity_and_seed = std::constructible_from<M, std::uint32_t, std::uint64_t>;

/// @brief Required: a copyable nested type `cursor`, a position in a chain of blocks (or the key
/// of a child of that position).
template <class M>
concept matcher_has_cursor = requires {
  typename M::cursor;
}
&&std::copyable<typename M::cursor>;

/// @brief Required: `cursor root(std::uint32_t ns_node, std::uint64_t ns_key) const` starts a
/// chain at namespace node `ns_node` (@ref kvkit::namespace_node), whose key `ns_key` hashes the
/// cache seed, tenant salt, session and extra keys.
template <class M>
concept matcher_has_root = requires(const M& m, std::uint32_t node, std::uint64_t key) {
  { m.root(node, key) } -> std::same_as<typename M::cursor>;
};

/// @brief Required: `cursor child(const cursor& parent, std::span<const kvkit::token_id> tokens)
/// const`, the key of the block holding `tokens` under `parent`.
template <class M>
concept matcher_has_child = requires(const M& m, const typename M::cursor& c,
                                     std::span<const token_id> t) {
  { m.child(c, t) } -> std::same_as<typename M::cursor>;
};

/// @brief Required: `template <class Verify> kvkit::block_id find(const cursor& child, Verify&&
/// verify) const`, a registered block with the key of `child` for which `verify(block)` is true
/// (the cache checks parent link and stored tokens), or `invalid_block`.
template <class M>
concept matcher_has_find = requires(const M& m, const typename M::cursor& c,
                                    detail::verifier_archetype v) {
  { m.find(c, v) } -> std::same_as<block_id>;
};

/// @brief Required: `void insert(const cursor& child, kvkit::block_id b)` registers `b` under the
/// key of `child`.
template <class M>
concept matcher_has_insert = requires(M& m, const typename M::cursor& c, block_id b) {
  { m.insert(c, b) } -> std::same_as<void>;
};

/// @brief Required: `void erase(kvkit::block_id b)` forgets a registered block (the cache erases
/// children before their parents).
template <class M>
concept matcher_has_erase = requires(M& m, block_id b) {
  { m.erase(b) } -> std::same_as<void>;
};

/// @brief Optional: `void bind(cursor& c, kvkit::block_id b) const`, called after the block `b`
/// was found or inserted for child cursor `c`, for matchers whose cursors name nodes. A matcher
/// with it gets its child cursors one at a time; one without may be asked for several ahead.
template <class M>
concept matcher_has_bind = requires(const M& m, typename M::cursor& c, block_id b) {
  { m.bind(c, b) } -> std::same_as<void>;
};

/// @brief Optional: partial-block reuse. `template <class Score, class Tree> kvkit::block_id
/// find_partial(const cursor& parent, std::span<const kvkit::token_id> tokens, Score&& score,
/// const Tree& tree) const` returns the child of `parent` with the highest `score(block)`
/// (leading tokens it shares with `tokens`, 0 rejects it), or `invalid_block`. `tree` is a
/// @ref kvkit::block_tree_reader over the cache's block tree.
template <class M>
concept matcher_has_find_partial = requires(const M& m, const typename M::cursor& c,
                                            std::span<const token_id> t, detail::score_archetype s,
                                            detail::tree_archetype tree) {
  { m.find_partial(c, t, s, tree) } -> std::same_as<block_id>;
};

/// @brief Optional: `void prefetch(const cursor& child) const` starts loading what a find() of
/// `child` will read; the cache calls it a few blocks ahead of the lookups of a long prompt (for
/// matchers without @ref kvkit::matcher_has_bind, whose child cursors do not depend on lookups).
template <class M>
concept matcher_has_prefetch = requires(const M& m, const typename M::cursor& c) {
  { m.prefetch(c) } -> std::same_as<void>;
};

/// @brief Optional: `kvkit::block_id peek(const cursor& child) const`, the block a find() of
/// `child` would offer the verifier first (`invalid_block` when none), without verifying it: a
/// hint the cache uses to start loading that block's state a few lookups ahead.
template <class M>
concept matcher_has_peek = requires(const M& m, const typename M::cursor& c) {
  { m.peek(c) } -> std::same_as<block_id>;
};

/// @brief Optional: `static constexpr bool cursor_is_block_key = true;` and a cursor member
/// `std::uint64_t hash`: the matcher's cursor of a block is the cache's chained content key of
/// that block (`prefix_cache::block_key`), so the cache takes it instead of hashing the block
/// again when it stores it.
template <class M>
concept matcher_cursor_is_block_key = requires(const typename M::cursor& c) {
  { M::cursor_is_block_key } -> std::convertible_to<bool>;
  { c.hash } -> std::convertible_to<std::uint64_t>;
}
&&static_cast<bool>(M::cursor_is_block_key);

/// @brief Finds cached blocks by content, one block at a time along a chain: the conjunction of
/// its required members below.
///
/// A cursor stands for a position in a chain. `root(ns_node, ns_key)` starts a chain in a
/// namespace; `child(c, tokens)` is the key of the block holding `tokens` under `c`;
/// `find(child, verify)` returns a registered block for that key that `verify` accepts;
/// `insert(child, b)` registers `b` under that key; `erase(b)` forgets `b`. Optional:
/// @ref kvkit::matcher_has_bind, @ref kvkit::matcher_has_find_partial,
/// @ref kvkit::matcher_has_prefetch, @ref kvkit::matcher_has_peek,
/// @ref kvkit::matcher_cursor_is_block_key, @ref kvkit::policy_has_name,
/// @ref kvkit::policy_has_metadata_bytes.
template <class M>
concept prefix_matcher =
    matcher_from_capacity_and_seed<M> && matcher_has_cursor<M> && matcher_has_root<M> &&
    matcher_has_child<M> && matcher_has_find<M> && matcher_has_insert<M> && matcher_has_erase<M>;

// ---- eviction policy -----------------------------------------------------------------------

/// @brief Required: `E(std::uint32_t capacity)` makes an empty policy for a pool of `capacity`
/// blocks.
template <class E>
concept eviction_from_capacity = std::constructible_from<E, std::uint32_t>;

/// @brief Required: `void insert(kvkit::block_id b)`: `b` became an eviction candidate.
template <class E>
concept eviction_has_insert = requires(E& e, block_id b) {
  { e.insert(b) } -> std::same_as<void>;
};

/// @brief Required: `void erase(kvkit::block_id b)`: `b` stops being a candidate (hit again, or
/// evicted as part of a subtree).
template <class E>
concept eviction_has_erase = requires(E& e, block_id b) {
  { e.erase(b) } -> std::same_as<void>;
};

/// @brief Required: `kvkit::block_id victim()` removes and returns the next block to evict
/// (`invalid_block` when there is none).
template <class E>
concept eviction_has_victim = requires(E& e) {
  { e.victim() } -> std::same_as<block_id>;
};

/// @brief Required: `std::uint32_t size() const`, the candidates.
template <class E>
concept eviction_has_size = requires(const E& e) {
  { e.size() } -> std::convertible_to<std::uint32_t>;
};

/// @brief Required of a policy with @ref kvkit::policy_has_options (declared settings):
/// `E(std::uint32_t capacity, const E::options&)`, to which `prefix_cache::create` passes the
/// settings.
template <class E>
concept eviction_has_options_constructor =
    policy_has_options<E> && std::constructible_from<E, std::uint32_t, const typename E::options&>;

/// @brief Optional: `void touch(kvkit::block_id b, const kvkit::access_info& info)`, called on
/// every hit and on every commit that registers a block (the block is referenced then).
template <class E>
concept eviction_has_touch = requires(E& e, block_id b, const access_info& a) {
  { e.touch(b, a) } -> std::same_as<void>;
};

/// @brief Optional: `void released(kvkit::block_id b)`: the block stopped being referenced and
/// stays cached. Called for every such block in release order (a finishing sequence's blocks tail
/// first), candidate or not, before `insert` when it becomes one, so that a `leaves_only` policy
/// can order by recency: a parent that becomes a candidate when its last child is evicted was
/// released earlier than the child.
template <class E>
concept eviction_has_released = requires(E& e, block_id b) {
  { e.released(b) } -> std::same_as<void>;
};

/// @brief Optional: `void forget(kvkit::block_id b)`: the block's content is gone (evicted,
/// expired or invalidated); reset per-block state.
template <class E>
concept eviction_has_forget = requires(E& e, block_id b) {
  { e.forget(b) } -> std::same_as<void>;
};

/// @brief Optional: time-based expiry. `bool expired(kvkit::block_id) const` (an expired
/// candidate is never returned as a hit) and `kvkit::block_id pop_expired()` (the next expired
/// candidate, removed from the policy, or `invalid_block`; `prefix_cache::expire()` frees them).
template <class E>
concept eviction_has_expiry = requires(E& e, const E& ce, block_id b) {
  { ce.expired(b) } -> std::convertible_to<bool>;
  { e.pop_expired() } -> std::same_as<block_id>;
};

/// @brief Optional: `void begin_batch() const` and `void end_batch() const`. The cache brackets
/// each of its operations (admit, commit, append, fork, pin, finish, match, expire) with them, so a
/// policy that keeps time can read its clock once per operation.
template <class E>
concept eviction_has_batches = requires(const E& e) {
  e.begin_batch();
  e.end_batch();
};

/// @brief Optional: `void prefetch(kvkit::block_id b) const`: start loading the state that
/// `erase(b)` and `touch(b, ...)` will read (the cache calls it a few hits ahead).
template <class E>
concept eviction_has_prefetch = requires(const E& e, block_id b) {
  { e.prefetch(b) } -> std::same_as<void>;
};

/// @brief Optional: `static constexpr bool leaves_only = true;` the policy sees only cached,
/// unreferenced blocks without cached children (tree leaves); when a leaf is evicted and its
/// parent becomes an unreferenced leaf, the parent is inserted then. Suits policies that order by
/// a key (creation time, frequency, priority). Default false: every cached, unreferenced block is
/// a candidate, inserted tail first, and a victim with cached children is evicted with its
/// subtree (counted as cascade evictions).
template <class E>
concept eviction_has_leaves_only = requires {
  { E::leaves_only } -> std::convertible_to<bool>;
}
&&static_cast<bool>(E::leaves_only);

/// @brief Chooses which cached, unreferenced block to evict first: the conjunction of its
/// required members below.
///
/// The cache calls `insert(b)` when `b` becomes an eviction candidate, `erase(b)` when it stops
/// being one, and `victim()` to remove and return the next block to evict. Which blocks are
/// candidates: see @ref kvkit::eviction_has_leaves_only. Optional:
/// @ref kvkit::policy_has_options (then @ref kvkit::eviction_has_options_constructor is
/// required), @ref kvkit::eviction_has_touch, @ref kvkit::eviction_has_released,
/// @ref kvkit::eviction_has_forget,
/// @ref kvkit::eviction_has_expiry, @ref kvkit::eviction_has_batches,
/// @ref kvkit::eviction_has_leaves_only, @ref kvkit::eviction_has_prefetch,
/// @ref kvkit::policy_has_name,
/// @ref kvkit::policy_has_metadata_bytes.
template <class E>
concept eviction_policy = eviction_from_capacity<E> && eviction_has_insert<E> &&
    eviction_has_erase<E> && eviction_has_victim<E> && eviction_has_size<E>;

// ---- KV storage ----------------------------------------------------------------------------

/// @brief Required: `const kvkit::kv_layout& layout() const`, the storage's shape. It is the
/// cache's one source of truth for `block_size` and `num_blocks`.
template <class S>
concept storage_has_layout = requires(const S& s) {
  { s.layout() } -> std::convertible_to<const kv_layout&>;
};

/// @brief Required: `void copy_block(kvkit::block_id src, kvkit::block_id dst)` copies a block's
/// K/V in every layer (copy on write of a shared block).
template <class S>
concept storage_has_copy_block = requires(S& s, block_id b) {
  s.copy_block(b, b);
};

/// @brief Required: `std::size_t bytes() const`, bytes of K/V memory held.
template <class S>
concept storage_has_bytes = requires(const S& s) {
  { s.bytes() } -> std::convertible_to<std::size_t>;
};

/// @brief Holds the K/V bytes of every block: movable, and the conjunction of its required
/// members below.
template <class S>
concept kv_storage =
    std::movable<S> && storage_has_layout<S> && storage_has_copy_block<S> && storage_has_bytes<S>;

// ---- cache listener ------------------------------------------------------------------------

/// @brief Why a cached block stopped being cached (see @ref kvkit::cache_listener).
enum class removal_reason : std::uint8_t {
  evicted,      ///< Chosen by the eviction policy (or evicted with such a block's subtree).
  invalidated,  ///< Freed by an invalidation of its namespace.
  expired,      ///< Freed by `expire()`, or replaced by a commit of the same block after expiry.
  released,     ///< Of an invalidated namespace, freed when its last sequence released it.
  cleared,      ///< Freed by `clear()`.
};

/// @brief A cached block as a listener sees it: valid only during the call.
struct block_event {
  block_id block = invalid_block;    ///< The block.
  std::uint64_t key = 0;             ///< Its chained content key (`prefix_cache::block_key`).
  std::uint64_t parent_key = 0;      ///< Its parent's key, or the namespace key.
  std::span<const token_id> tokens;  ///< Its tokens (`block_size` of them).
  std::uint64_t tenant_salt = 0;     ///< Tenant salt of its namespace.
  std::uint64_t session_id = 0;      ///< Session of its namespace.
  std::span<const std::uint64_t> extra_keys;  ///< Extra keys of its namespace.
  /// Its parent block, or `invalid_block` when its parent is the namespace root (the block
  /// starts a chain).
  block_id parent_block = invalid_block;
  /// In `on_stored` only: the matcher's 64-bit key of the block, when the matcher's cursor
  /// carries one (a `hash` member: `hash_matcher`'s equals `key`, `vllm_hash_matcher`'s is
  /// vLLM's block hash); empty otherwise.
  std::optional<std::uint64_t> matcher_key{};
};

/// @brief Optional listener member: `void on_stored(const kvkit::block_event&)`, called when a
/// block becomes cached (commit registers it).
template <class L>
concept listener_has_on_stored = requires(L& l, const block_event& e) {
  { l.on_stored(e) } -> std::same_as<void>;
};

/// @brief Optional listener member: `void on_removed(const kvkit::block_event&,
/// kvkit::removal_reason)`, called when a cached block is about to be freed, while its K/V bytes
/// are still in the storage.
template <class L>
concept listener_has_on_removed = requires(L& l, const block_event& e, removal_reason r) {
  { l.on_removed(e, r) } -> std::same_as<void>;
};

/// @brief Optional listener member: `void on_cleared()`, called when `clear()` starts, before the
/// blocks it frees are reported with `removal_reason::cleared`.
template <class L>
concept listener_has_on_cleared = requires(L& l) {
  { l.on_cleared() } -> std::same_as<void>;
};

/// @brief Optional listener member: `void on_operation_end() noexcept`, called once when a public
/// operation of the cache that can store or remove blocks returns (`admit`, `commit`, `append`,
/// `fork`, `pin`, `finish`, `invalidate_*`, `clear`, `expire`), on success and on failure, after
/// every `on_stored` / `on_removed` of the operation. A listener may collect the blocks of an
/// operation and hand them on together here (`kvkit::tiered` moves them to a remote tier in one
/// round trip). Called from a scope guard, so it must not throw.
template <class L>
concept listener_has_on_operation_end = requires(L& l) {
  { l.on_operation_end() } -> std::same_as<void>;
};

/// @brief Optional listener member: `bool listening() const`, false while the listener would
/// ignore every call (e.g. no sink attached): the cache then describes no block for it.
template <class L>
concept listener_has_listening = requires(const L& l) {
  { l.listening() } -> std::convertible_to<bool>;
};

/// @brief Optional listener member: `static constexpr bool removed_namespace = false;` declares
/// that `on_removed` does not read the namespace fields of its block_event (`tenant_salt`,
/// `session_id`, `extra_keys`, left empty then): the cache skips finding a removed block's
/// namespace, a walk up its chain.
template <class L>
concept listener_skips_removed_namespace = requires {
  { L::removed_namespace } -> std::convertible_to<bool>;
}
&&!static_cast<bool>(L::removed_namespace);

/// @brief What a `prefix_cache` reports its block life cycle to (its fifth template parameter):
/// any default-constructible type, every member optional. With @ref kvkit::no_listener (the
/// default) nothing is called and nothing is computed.
template <class L>
concept cache_listener = std::default_initializable<L>;

/// @brief The listener that listens to nothing (the default of `prefix_cache`).
struct no_listener {};

// ---- defaults of optional members ----------------------------------------------------------

/// @brief Settings of a policy that declares none.
struct no_options {};

namespace detail {
template <class P>
struct options_of {
  using type = no_options;
};
template <policy_has_options P>
struct options_of<P> {
  using type = typename P::options;
};
}  // namespace detail

/// @brief The settings type of a policy: `P::options` when declared, else @ref kvkit::no_options.
/// @tparam P A policy type.
template <class P>
using policy_options_t = typename detail::options_of<P>::type;

/// @brief Calls a policy's optional members, or does what a policy without them would: one place
/// for every default.
/// @tparam P A policy type.
template <class P>
struct policy_traits {
  /// @brief The policy's bytes of bookkeeping (0 when it does not say).
  /// @param p The policy.
  /// @return Bytes.
  static std::size_t metadata_bytes(const P& p) noexcept {
    if constexpr (policy_has_metadata_bytes<P>) {
      return p.metadata_bytes();
    } else {
      (void)p;
      return 0;
    }
  }
  /// @brief The policy's name, e.g. "lru" ("custom" when it does not say).
  /// @return The name.
  static constexpr std::string_view name() noexcept {
    if constexpr (policy_has_name<P>) {
      return P::name;
    } else {
      return "custom";
    }
  }
  /// @brief Whether an eviction policy sees only leaf blocks (see
  /// @ref kvkit::eviction_has_leaves_only).
  /// @return `P::leaves_only` when declared, else false.
  static constexpr bool leaves_only() noexcept { return eviction_has_leaves_only<P>; }
  /// @brief Makes the policy for a pool of @p capacity blocks, with @p options when it takes them.
  /// @param capacity Blocks in the pool.
  /// @param options The settings (@ref kvkit::no_options for a policy without any).
  /// @return The policy.
  static P make(std::uint32_t capacity, const policy_options_t<P>& options) {
    if constexpr (eviction_has_options_constructor<P>) {
      return P(capacity, options);
    } else {
      (void)options;
      return P(capacity);
    }
  }
  /// @brief Tells an eviction policy about an access (@ref kvkit::eviction_has_touch).
  /// @param p The policy.
  /// @param b The block.
  /// @param info Tick and request class.
  static void touch(P& p, block_id b, const access_info& info) {
    if constexpr (eviction_has_touch<P>) {
      p.touch(b, info);
    } else {
      (void)p, (void)b, (void)info;
    }
  }
  /// @brief Tells an eviction policy that a block stopped being referenced and stays cached
  /// (@ref kvkit::eviction_has_released).
  /// @param p The policy.
  /// @param b The block.
  static void released(P& p, block_id b) {
    if constexpr (eviction_has_released<P>) {
      p.released(b);
    } else {
      (void)p, (void)b;
    }
  }
  /// @brief Tells an eviction policy that a block's content is gone
  /// (@ref kvkit::eviction_has_forget).
  /// @param p The policy.
  /// @param b The block.
  static void forget(P& p, block_id b) {
    if constexpr (eviction_has_forget<P>) {
      p.forget(b);
    } else {
      (void)p, (void)b;
    }
  }
  /// @brief Whether a candidate has expired (@ref kvkit::eviction_has_expiry; never without it).
  /// @param p The policy.
  /// @param b A block.
  /// @return True when expired.
  static bool expired(const P& p, block_id b) {
    if constexpr (eviction_has_expiry<P>) {
      return p.expired(b);
    } else {
      (void)p, (void)b;
      return false;
    }
  }
  /// @brief The next expired candidate, removed from the policy (`invalid_block` without expiry).
  /// @param p The policy.
  /// @return A block, or `invalid_block`.
  static block_id pop_expired(P& p) {
    if constexpr (eviction_has_expiry<P>) {
      return p.pop_expired();
    } else {
      (void)p;
      return invalid_block;
    }
  }
  /// @brief Starts a batch (@ref kvkit::eviction_has_batches).
  /// @param p The policy.
  static void begin_batch(const P& p) {
    if constexpr (eviction_has_batches<P>) {
      p.begin_batch();
    } else {
      (void)p;
    }
  }
  /// @brief Starts loading a block's eviction state (@ref kvkit::eviction_has_prefetch).
  /// @param p The policy.
  /// @param b A block.
  static void prefetch(const P& p, block_id b) noexcept {
    if constexpr (eviction_has_prefetch<P>) {
      p.prefetch(b);
    } else {
      (void)p, (void)b;
    }
  }
  /// @brief Ends a batch (@ref kvkit::eviction_has_batches).
  /// @param p The policy.
  static void end_batch(const P& p) noexcept {
    if constexpr (eviction_has_batches<P>) {
      p.end_batch();
    } else {
      (void)p;
    }
  }
};

/// @brief Calls a matcher's optional members, or does what a matcher without them would.
/// @tparam M A @ref kvkit::prefix_matcher.
template <class M>
struct matcher_traits {
  /// @brief The matcher's cursor type.
  using cursor = typename M::cursor;
  /// @brief Whether the matcher reuses part of a block (@ref kvkit::matcher_has_find_partial).
  static constexpr bool partial_reuse = matcher_has_find_partial<M>;
  /// @brief Whether child cursors can be computed ahead of the lookups (no
  /// @ref kvkit::matcher_has_bind).
  static constexpr bool chains_ahead = !matcher_has_bind<M>;
  /// @brief Moves a child cursor onto the block found or inserted for it
  /// (@ref kvkit::matcher_has_bind; nothing without it).
  /// @param m The matcher.
  /// @param c The child cursor.
  /// @param b The block.
  static void bind(const M& m, cursor& c, block_id b) {
    if constexpr (matcher_has_bind<M>) {
      m.bind(c, b);
    } else {
      (void)m, (void)c, (void)b;
    }
  }
  /// @brief Starts loading what a find() of @p c reads (@ref kvkit::matcher_has_prefetch).
  /// @param m The matcher.
  /// @param c A child cursor.
  static void prefetch(const M& m, const cursor& c) {
    if constexpr (matcher_has_prefetch<M>) {
      m.prefetch(c);
    } else {
      (void)m, (void)c;
    }
  }
  /// @brief The block a find() of @p c would offer first (@ref kvkit::matcher_has_peek;
  /// `invalid_block` without it).
  /// @param m The matcher.
  /// @param c A child cursor.
  /// @return A block, or `invalid_block`.
  static block_id peek(const M& m, const cursor& c) noexcept {
    if constexpr (matcher_has_peek<M>) {
      return m.peek(c);
    } else {
      (void)m, (void)c;
      return invalid_block;
    }
  }
  /// @brief The best partial match (@ref kvkit::matcher_has_find_partial; none without it).
  /// @tparam Score Callable `std::uint32_t(block_id)`.
  /// @tparam Tree A @ref kvkit::block_tree_reader.
  /// @param m The matcher.
  /// @param parent The parent's cursor.
  /// @param tokens The prompt's tokens for the next block.
  /// @param score Leading tokens a candidate shares (0 rejects it).
  /// @param tree The cache's block tree.
  /// @return A block, or `invalid_block`.
  template <class Score, class Tree>
  static block_id find_partial(const M& m, const cursor& parent, std::span<const token_id> tokens,
                               Score&& score, const Tree& tree) {
    if constexpr (matcher_has_find_partial<M>) {
      return m.find_partial(parent, tokens, score, tree);
    } else {
      (void)m, (void)parent, (void)tokens, (void)score, (void)tree;
      return invalid_block;
    }
  }
};

/// @brief Calls a listener's optional members (@ref kvkit::cache_listener).
/// @tparam L A listener type.
template <class L>
struct listener_traits {
  /// @brief Whether the listener has any member the cache calls: when false, the cache computes
  /// nothing for it.
  static constexpr bool active =
      listener_has_on_stored<L> || listener_has_on_removed<L> || listener_has_on_cleared<L>;

  /// @brief Whether the listener wants to be told now (its `listening()`, else true).
  /// @param l The listener.
  /// @return False when the cache may skip describing blocks for it.
  static bool listening(const L& l) noexcept {
    if constexpr (listener_has_listening<L>) {
      return static_cast<bool>(l.listening());
    } else {
      (void)l;
      return true;
    }
  }
};

}  // namespace kvkit

namespace kvkit::detail {

/// @brief Checks every policy of a `prefix_cache` against its concept, one `static_assert` per
/// member, each naming the member and its signature.
template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
struct check_policies {
  static_assert(allocator_from_capacity<Allocator>,
                "kvkit::prefix_cache: Allocator must be constructible from the block count: "
                "Allocator(std::uint32_t capacity)");
  static_assert(allocator_has_allocate<Allocator>,
                "kvkit::prefix_cache: Allocator must provide `kvkit::block_id allocate()`");
  static_assert(allocator_has_deallocate<Allocator>,
                "kvkit::prefix_cache: Allocator must provide `void deallocate(kvkit::block_id)`");
  static_assert(allocator_has_free_count<Allocator>,
                "kvkit::prefix_cache: Allocator must provide `std::uint32_t free_count() const`");
  static_assert(matcher_from_capacity_and_seed<Matcher>,
                "kvkit::prefix_cache: Matcher must be constructible as "
                "Matcher(std::uint32_t capacity, std::uint64_t seed)");
  static_assert(matcher_has_cursor<Matcher>,
                "kvkit::prefix_cache: Matcher must define a copyable nested type `cursor`");
  static_assert(matcher_has_root<Matcher>,
                "kvkit::prefix_cache: Matcher must provide "
                "`cursor root(std::uint32_t ns_node, std::uint64_t ns_key) const`");
  static_assert(matcher_has_child<Matcher>,
                "kvkit::prefix_cache: Matcher must provide "
                "`cursor child(const cursor&, std::span<const kvkit::token_id>) const`");
  static_assert(matcher_has_find<Matcher>,
                "kvkit::prefix_cache: Matcher must provide "
                "`template <class Verify> kvkit::block_id find(const cursor&, Verify&&) const`");
  static_assert(matcher_has_insert<Matcher>,
                "kvkit::prefix_cache: Matcher must provide "
                "`void insert(const cursor&, kvkit::block_id)`");
  static_assert(matcher_has_erase<Matcher>,
                "kvkit::prefix_cache: Matcher must provide `void erase(kvkit::block_id)`");
  static_assert(eviction_from_capacity<Eviction>,
                "kvkit::prefix_cache: Eviction must be constructible from the block count: "
                "Eviction(std::uint32_t capacity)");
  static_assert(eviction_has_insert<Eviction>,
                "kvkit::prefix_cache: Eviction must provide `void insert(kvkit::block_id)`");
  static_assert(eviction_has_erase<Eviction>,
                "kvkit::prefix_cache: Eviction must provide `void erase(kvkit::block_id)`");
  static_assert(eviction_has_victim<Eviction>,
                "kvkit::prefix_cache: Eviction must provide `kvkit::block_id victim()`");
  static_assert(eviction_has_size<Eviction>,
                "kvkit::prefix_cache: Eviction must provide `std::uint32_t size() const`");
  static_assert(!policy_has_options<Eviction> || eviction_has_options_constructor<Eviction>,
                "kvkit::prefix_cache: Eviction declares `options` but has no constructor "
                "`Eviction(std::uint32_t capacity, const Eviction::options&)`, so the options "
                "given to prefix_cache::create would be dropped: add that constructor, or remove "
                "`options`");
  static_assert(std::movable<Storage>, "kvkit::prefix_cache: Storage must be movable");
  static_assert(
      storage_has_layout<Storage>,
      "kvkit::prefix_cache: Storage must provide `const kvkit::kv_layout& layout() const`");
  static_assert(storage_has_copy_block<Storage>,
                "kvkit::prefix_cache: Storage must provide "
                "`void copy_block(kvkit::block_id src, kvkit::block_id dst)`");
  static_assert(storage_has_bytes<Storage>,
                "kvkit::prefix_cache: Storage must provide `std::size_t bytes() const`");
  static_assert(cache_listener<Listener>,
                "kvkit::prefix_cache: Listener must be default-constructible");
  static constexpr bool value = true;
};

}  // namespace kvkit::detail
