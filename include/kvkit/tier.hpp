// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Cache tiers below a `prefix_cache`'s pool: the `cache_tier` concept and the vocabulary
/// it speaks (chains of content keys, block views, statistics, error kinds).
///
/// A tier keeps copies of evicted blocks (demotion) and hands them back on a later admission
/// (promotion), so a prefix survives its eviction from the pool, a restart, or another engine
/// computing it. Tiers are addressed by content: every block is named by its 64-bit chained key
/// (`xxh3_hasher::chain(parent_key, tokens)`, rooted in the namespace key
/// `xxh3_hasher::root(tenant_salt, session_id, extra_keys)` under the cache's seed). A key only
/// locates a candidate; a tier verifies every candidate against the block's tokens, its parent key
/// and its namespace before it returns bytes, so a collision or a corrupted copy is a miss, never
/// wrong K/V.
///
/// Shipped tiers: `kvkit::host_tier` (`<kvkit/tiers/host_tier.hpp>`, bounded host memory with any
/// eviction policy of the catalogue) and `kvkit::redis_tier` (`<kvkit/tiers/redis_tier.hpp>`, a
/// shared Redis server; CMake target `kvkit::redis`). `kvkit::tiered` (`<kvkit/tiered.hpp>`) puts
/// them under a `prefix_cache`'s pool.
#pragma once

#include <kvkit/cache_types.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/types.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace kvkit {

/// @brief Bytes of one segment of a block: one layer's K (or V) of one block.
/// @param layout The K/V layout.
/// @return `layout.block_elements() * dtype_size(layout.type)`.
constexpr std::size_t kv_segment_bytes(const kv_layout& layout) noexcept {
  return layout.block_elements() * dtype_size(layout.type);
}

/// @brief Segments of one block: K and V of every layer (`2 * num_layers`).
/// @param layout The K/V layout.
/// @return The count.
constexpr std::size_t kv_segments(const kv_layout& layout) noexcept {
  return 2 * std::size_t{layout.num_layers};
}

/// @brief Where one block's K/V bytes are, to be written: `2 * num_layers` segments of
/// kv_segment_bytes() each, in the order `[layer][K|V]`; segment `i` starts at `data + i * stride`.
///
/// Every storage built from a @ref kvkit::kv_layout has this shape: in `host_storage`, the stride
/// is one pool (`num_blocks` blocks) of one layer's K or V; in a contiguous buffer it is the
/// segment size. Inside a segment the memory order is the layout's (NHD or HND).
struct kv_block_view {
  std::byte* data = nullptr;  ///< Start of segment 0 (layer 0, K).
  std::size_t stride = 0;     ///< Bytes from one segment's start to the next one's.
};

/// @brief Where one block's K/V bytes are, to be read (see @ref kvkit::kv_block_view).
struct kv_block_cview {
  const std::byte* data = nullptr;  ///< Start of segment 0 (layer 0, K).
  std::size_t stride = 0;           ///< Bytes from one segment's start to the next one's.
};

/// @brief The view of block @p b of a host storage, to be written.
/// @tparam T Element type of the storage.
/// @param storage The storage.
/// @param b A block of the storage.
/// @return The view.
template <class T>
[[nodiscard]] kv_block_view block_view(host_storage<T>& storage, block_id b) noexcept {
  const kv_layout& l = storage.layout();
  return {reinterpret_cast<std::byte*>(storage.block(0, 0, b).data()),
          std::size_t{l.num_blocks} * kv_segment_bytes(l)};
}

/// @brief The view of block @p b of a host storage, to be read.
/// @tparam T Element type of the storage.
/// @param storage The storage.
/// @param b A block of the storage.
/// @return The view.
template <class T>
[[nodiscard]] kv_block_cview block_view(const host_storage<T>& storage, block_id b) noexcept {
  const kv_layout& l = storage.layout();
  return {reinterpret_cast<const std::byte*>(storage.block(0, 0, b).data()),
          std::size_t{l.num_blocks} * kv_segment_bytes(l)};
}

/// @brief The view of one block stored contiguously (`[layer][K|V]` segments back to back).
/// @param data Start of the block's bytes (`layout.block_bytes_all_layers()` bytes).
/// @param layout The K/V layout.
/// @return The view.
[[nodiscard]] inline kv_block_view contiguous_block_view(std::byte* data,
                                                         const kv_layout& layout) noexcept {
  return {data, kv_segment_bytes(layout)};
}

/// @brief The read view of one block stored contiguously.
/// @param data Start of the block's bytes.
/// @param layout The K/V layout.
/// @return The view.
[[nodiscard]] inline kv_block_cview contiguous_block_cview(const std::byte* data,
                                                           const kv_layout& layout) noexcept {
  return {data, kv_segment_bytes(layout)};
}

/// @brief The namespace of a chain: the request keys that root it.
///
/// Blocks of different namespaces are never shared: their keys differ (the namespace key roots
/// every chain), and tiers compare the tenant salt, session and extra keys exactly where they
/// keep them.
struct tier_namespace {
  std::uint64_t key = 0;  ///< `xxh3_hasher(seed).root(tenant_salt, session_id, extra_keys)`.
  std::uint64_t tenant_salt = 0;                ///< Tenant salt (0: the shared namespace).
  std::uint64_t session_id = 0;                 ///< Conversation session (0: none).
  std::span<const std::uint64_t> extra_keys{};  ///< Adapter id, content ids, version...
};

/// @brief A run of consecutive blocks of one prompt, to look up or load from a tier.
///
/// Block `i` has content key `keys[i]`, tokens `tokens[i * block_size, (i + 1) * block_size)` and
/// parent key `keys[i - 1]` (for `i = 0`: `parent`). A tier returns the longest leading run it
/// holds and can verify.
struct tier_chain {
  tier_namespace ns;                    ///< The chain's namespace.
  std::uint64_t parent = 0;             ///< Key of the block before `keys[0]` (`ns.key` if none).
  std::span<const std::uint64_t> keys;  ///< Content keys of consecutive blocks.
  std::span<const token_id> tokens;     ///< `keys.size() * block_size` tokens.
  std::uint32_t request_class = 0;      ///< Request class, passed to the tier's eviction policy.
};

/// @brief One block to store (demote) into a tier.
struct tier_block {
  tier_namespace ns;                 ///< The block's namespace.
  std::uint64_t key = 0;             ///< Its content key.
  std::uint64_t parent = 0;          ///< Its parent's key (`ns.key` for a first block).
  std::span<const token_id> tokens;  ///< Its `block_size` tokens.
  kv_block_cview kv;                 ///< Its K/V bytes.
  std::uint32_t request_class = 0;   ///< Request class, passed to the tier's eviction policy.
};

/// @brief Why a block is offered to a tier; a tier stores only the reasons it accepts.
enum class tier_store_reason : std::uint8_t {
  eviction,  ///< The pool evicts the block (demotion).
  commit,    ///< The block was just computed and registered (write-through).
  warm,      ///< Loaded ahead of traffic (warming); every tier accepts it.
};

/// @brief When a tier copies a block: when the pool evicts it, or as soon as it is committed.
enum class tier_write_policy : std::uint8_t {
  on_eviction,  ///< Store on eviction (a victim cache; nothing is written for blocks never
                ///< evicted).
  through,      ///< Store on commit (write-through; another engine sees a block at once).
};

/// @brief Which namespaces an invalidation drops.
struct tier_scope {
  /// @brief What @ref value names.
  enum class kind : std::uint8_t {
    tenant,     ///< Every namespace of tenant salt `value`.
    session,    ///< Every namespace of session `value`.
    extra_key,  ///< Every namespace whose extra keys contain `value`.
  };
  kind what = kind::tenant;  ///< What @ref value names.
  std::uint64_t value = 0;   ///< The tenant salt, session id or extra key.

  /// @brief Every namespace of a tenant.
  /// @param salt The tenant salt.
  /// @return The scope.
  static constexpr tier_scope tenant(std::uint64_t salt) noexcept { return {kind::tenant, salt}; }
  /// @brief Every namespace of a session.
  /// @param id The session id.
  /// @return The scope.
  static constexpr tier_scope session(std::uint64_t id) noexcept { return {kind::session, id}; }
  /// @brief Every namespace whose extra keys contain @p key.
  /// @param key The extra key.
  /// @return The scope.
  static constexpr tier_scope extra_key(std::uint64_t key) noexcept {
    return {kind::extra_key, key};
  }
};

/// @brief What an invalidation did.
struct tier_invalidation {
  std::uint64_t dropped = 0;  ///< Entries removed now (tiers that count them; 0 otherwise).
  /// @brief False when the invalidation could not reach the tier's store yet (a remote server
  /// down): it holds locally at once and is retried until it reaches the store.
  bool complete = true;
};

/// @brief Kinds of error a tier counts. Every error is a miss for the request that met it.
enum class tier_error : std::uint8_t {
  connect,            ///< Could not connect to the server (refused, connect timeout).
  timeout,            ///< A command timed out (server paused or overloaded).
  disconnected,       ///< The connection broke in the middle of a command (server gone).
  unavailable,        ///< An operation skipped while waiting to reconnect (back-off).
  server,             ///< The server answered with an error (other than out of memory).
  out_of_memory,      ///< The server refused a write: its memory limit is reached.
  malformed,          ///< A value too short, with a bad magic or inconsistent sizes (truncated).
  version_mismatch,   ///< A value of another format version.
  layout_mismatch,    ///< A value of another model or K/V layout (fingerprint differs).
  checksum_mismatch,  ///< The K/V bytes do not match the value's checksum.
  content_mismatch,   ///< Key, parent, tokens or namespace differ: a collision or a stray value.
};

/// @brief Number of @ref kvkit::tier_error kinds.
inline constexpr std::size_t tier_error_kinds =
    static_cast<std::size_t>(tier_error::content_mismatch) + 1;

/// @brief Name of an error kind, e.g. "timeout".
/// @param e The kind.
/// @return A static string.
constexpr std::string_view to_string(tier_error e) noexcept {
  switch (e) {
    case tier_error::connect:
      return "connect";
    case tier_error::timeout:
      return "timeout";
    case tier_error::disconnected:
      return "disconnected";
    case tier_error::unavailable:
      return "unavailable";
    case tier_error::server:
      return "server";
    case tier_error::out_of_memory:
      return "out_of_memory";
    case tier_error::malformed:
      return "malformed";
    case tier_error::version_mismatch:
      return "version_mismatch";
    case tier_error::layout_mismatch:
      return "layout_mismatch";
    case tier_error::checksum_mismatch:
      return "checksum_mismatch";
    case tier_error::content_mismatch:
      return "content_mismatch";
  }
  return "unknown";
}

/// @brief Percentiles of a latency distribution, in nanoseconds (upper bounds of histogram
/// buckets 1/16 of an octave wide, so within 6.25%).
struct latency_summary {
  std::uint64_t count = 0;   ///< Samples.
  std::uint64_t p50_ns = 0;  ///< Median.
  std::uint64_t p90_ns = 0;  ///< 90th percentile.
  std::uint64_t p99_ns = 0;  ///< 99th percentile.
  std::uint64_t max_ns = 0;  ///< Largest sample (exact).
};

/// @brief Counters (since construction) and gauges (now) of one tier.
struct tier_stats {
  std::uint64_t lookups = 0;           ///< Chains looked up or loaded.
  std::uint64_t lookup_blocks = 0;     ///< Blocks asked for by those chains.
  std::uint64_t hits = 0;              ///< Chains of which at least one block was found.
  std::uint64_t hit_blocks = 0;        ///< Blocks found (verified).
  std::uint64_t hit_tokens = 0;        ///< Tokens of the blocks found.
  std::uint64_t loaded_blocks = 0;     ///< Blocks whose bytes were copied out (promotions).
  std::uint64_t bytes_out = 0;         ///< K/V bytes copied out of the tier (promotions).
  std::uint64_t bytes_in = 0;          ///< K/V bytes copied into the tier (demotions, writes).
  std::uint64_t stored_blocks = 0;     ///< Blocks stored (new copies).
  std::uint64_t refreshed_blocks = 0;  ///< Blocks offered that the tier already held.
  std::uint64_t rejected_blocks = 0;   ///< Blocks offered and not stored (conflict, error).
  std::uint64_t evictions = 0;         ///< Entries evicted for capacity.
  std::uint64_t expirations = 0;       ///< Entries dropped for idle time.
  std::uint64_t invalidated = 0;       ///< Entries dropped by invalidation.
  std::uint64_t detached = 0;     ///< Entries whose parent entry was dropped while they stayed.
  std::uint64_t chain_gaps = 0;   ///< Lookups that stopped at a missing block while a later block
                                  ///< of the chain was present (part of a chain evicted/expired).
  std::uint64_t round_trips = 0;  ///< Network round trips (remote tiers).
  std::array<std::uint64_t, tier_error_kinds> errors{};  ///< Errors, by @ref kvkit::tier_error.
  std::uint64_t error_episodes = 0;   ///< Error episodes begun (each reported once).
  latency_summary promotion_latency;  ///< Duration of loads that promoted at least one block.
  std::uint64_t entries = 0;          ///< Blocks held now (tiers that know; 0 otherwise).
  std::uint64_t capacity = 0;         ///< Blocks the tier can hold (0: bounded elsewhere).
  std::uint64_t bytes_used = 0;       ///< Bytes of K/V held now (tiers that know).
  std::uint64_t metadata_bytes = 0;   ///< Bytes of bookkeeping (index, links, tokens).

  /// @brief Errors of every kind.
  /// @return Their sum.
  [[nodiscard]] std::uint64_t total_errors() const noexcept {
    std::uint64_t n = 0;
    for (const std::uint64_t e : errors)
      n += e;
    return n;
  }
  /// @brief Errors of one kind.
  /// @param e The kind.
  /// @return The count.
  [[nodiscard]] std::uint64_t error_count(tier_error e) const noexcept {
    return errors[static_cast<std::size_t>(e)];
  }
};

/// @brief A report of a tier to its owner: an error episode began or ended.
///
/// An episode of a kind begins with the first error of that kind and is reported once; further
/// errors of the kind are only counted until the episode ends (the connection works again, or,
/// for errors of values and replies, a quiet period passes without one). So an outage is one
/// report, not one per request.
struct tier_event {
  /// @brief Whether the episode begins or ends.
  enum class kind : std::uint8_t {
    episode_begin,  ///< The first error of an episode.
    episode_end,    ///< The episode is over.
  };
  kind what = kind::episode_begin;         ///< Begin or end.
  tier_error error = tier_error::connect;  ///< The error kind of the episode.
  std::string_view tier;                   ///< The tier's name, e.g. "redis".
  std::string_view message;                ///< What happened (the first error's description).
  std::uint64_t errors = 0;                ///< Errors counted in the episode (at its end).
  std::uint64_t duration_ns = 0;           ///< Length of the episode (at its end).
};

namespace detail {

// ---- cache tier requirements -------------------------------------------------------------------
template <class T>
concept tier_has_layout = requires(const T& t) {
  { t.layout() } -> std::convertible_to<const kv_layout&>;
};
template <class T>
concept tier_has_lookup = requires(T& t, const tier_chain& c) {
  { t.lookup(c) } -> std::same_as<std::uint32_t>;
};
template <class T>
concept tier_has_load = requires(T& t, const tier_chain& c, std::span<const kv_block_view> dst) {
  { t.load(c, dst) } -> std::same_as<std::uint32_t>;
};
template <class T>
concept tier_has_store = requires(T& t, std::span<const tier_block> b, tier_store_reason r) {
  { t.store(b, r) } -> std::same_as<std::uint32_t>;
};
template <class T>
concept tier_has_invalidate = requires(T& t, tier_scope s) {
  { t.invalidate(s) } -> std::same_as<tier_invalidation>;
};
template <class T>
concept tier_has_expire = requires(T& t) {
  { t.expire() } -> std::same_as<std::uint64_t>;
};
template <class T>
concept tier_has_stats = requires(const T& t) {
  { t.stats() } -> std::same_as<tier_stats>;
};

// ---- what a prefix_cache asks of a listener that drives tiers -----------------------------------
// A listener with these members is a tier driver (`kvkit::tiered`): the cache binds its storage
// and hash seed to it, asks it to promote a prompt's continuation into blocks it allocated, and
// tells it the scope of every invalidation by tenant, session or extra key.
template <class L, class Storage>
concept listener_promotes = requires(L& l, Storage& s, std::uint64_t seed, const tier_chain& c,
                                     std::span<const block_id> blocks, std::uint32_t n) {
  { l.bind(s, seed) } -> std::same_as<void>;
  { std::as_const(l).active() } -> std::convertible_to<bool>;
  { l.promote(c, blocks) } -> std::same_as<std::uint32_t>;
  { l.registered(n) } -> std::same_as<void>;
  { l.promoted_tokens() } -> std::convertible_to<std::array<std::uint32_t, max_cache_tiers>>;
  { l.scratch_keys(n) } -> std::same_as<std::span<std::uint64_t>>;
};
template <class L>
concept listener_has_on_invalidated = requires(L& l, tier_scope s) {
  { l.on_invalidated(s) } -> std::same_as<void>;
};

}  // namespace detail

/// @brief A cache tier: holds copies of blocks by content key, below a pool.
///
/// Required members (`t` a tier, all batch operations over chains, none of them throws):
/// - `const kv_layout& layout() const`: the shape of every block it holds (`num_blocks` unused).
/// - `std::uint32_t lookup(const tier_chain& c)`: the length of the longest leading run of `c`
///   the tier holds and has verified (tokens, parent key, namespace), moving no K/V bytes.
/// - `std::uint32_t load(const tier_chain& c, std::span<const kv_block_view> dst)`: copies the
///   K/V of the longest verified leading run of `c` (at most `dst.size()` blocks) into `dst`, all
///   layers of each block, and returns its length. Bytes are written only for returned blocks;
///   a block that fails verification ends the run (a miss, counted), never returns wrong bytes.
/// - `std::uint32_t store(std::span<const tier_block> b, tier_store_reason r)`: copies blocks in
///   (demotion, write-through, warming) when the tier accepts @p r; returns the blocks it holds
///   afterwards among @p b (stored or already present). A remote tier moves a batch in one round
///   trip.
/// - `tier_invalidation invalidate(tier_scope s)`: drops every namespace in `s`; no later lookup
///   returns their blocks.
/// - `std::uint64_t expire()`: drops entries past their time to live; returns how many (a tier
///   whose store expires by itself returns 0).
/// - `tier_stats stats() const`.
///
/// Optional, detected by `kvkit::tier_traits`: `static constexpr std::string_view name`,
/// `bool accepts(tier_store_reason) const` (default: eviction and warm).
///
/// Tiers are not thread-safe: the owner serialises calls (as it does for `prefix_cache`).
template <class T>
concept cache_tier = detail::tier_has_layout<T> && detail::tier_has_lookup<T> &&
    detail::tier_has_load<T> && detail::tier_has_store<T> && detail::tier_has_invalidate<T> &&
    detail::tier_has_expire<T> && detail::tier_has_stats<T>;

/// @brief Defaults for the optional members of a tier.
/// @tparam T A @ref kvkit::cache_tier.
template <class T>
struct tier_traits {
  /// @brief The tier's name ("custom" when it does not say).
  /// @return The name.
  static constexpr std::string_view name() noexcept {
    if constexpr (requires {
                    { T::name } -> std::convertible_to<std::string_view>;
                  }) {
      return T::name;
    } else {
      return "custom";
    }
  }
  /// @brief Whether @p t stores blocks offered for @p reason.
  /// @param t The tier.
  /// @param reason Why the blocks are offered.
  /// @return `t.accepts(reason)` when declared; else true for eviction and warm.
  static bool accepts(const T& t, tier_store_reason reason) noexcept {
    if constexpr (requires {
                    { t.accepts(reason) } -> std::convertible_to<bool>;
                  }) {
      return t.accepts(reason);
    } else {
      (void)t;
      return reason != tier_store_reason::commit;
    }
  }
};

/// @brief Copies the longest run of @p chain that @p from holds into @p to (warming one tier from
/// another, e.g. the host tier from a shared Redis at start-up), through a host buffer.
/// @tparam From A @ref kvkit::cache_tier.
/// @tparam To A @ref kvkit::cache_tier with the same layout.
/// @param from The tier to read.
/// @param to The tier to write (with `tier_store_reason::warm`).
/// @param chain The chain.
/// @return Blocks that @p to holds afterwards among those copied.
template <cache_tier From, cache_tier To>
std::uint32_t copy_chain(From& from, To& to, const tier_chain& chain) {
  const kv_layout& l = from.layout();
  const std::size_t block_bytes = l.block_bytes_all_layers();
  std::vector<std::byte> buffer(chain.keys.size() * block_bytes);
  std::vector<kv_block_view> dst(chain.keys.size());
  for (std::size_t i = 0; i < dst.size(); ++i)
    dst[i] = contiguous_block_view(buffer.data() + i * block_bytes, l);
  const std::uint32_t n = from.load(chain, dst);
  std::vector<tier_block> blocks(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    blocks[i].ns = chain.ns;
    blocks[i].key = chain.keys[i];
    blocks[i].parent = i == 0 ? chain.parent : chain.keys[i - 1];
    blocks[i].tokens = chain.tokens.subspan(std::size_t{i} * l.block_size, l.block_size);
    blocks[i].kv = contiguous_block_cview(buffer.data() + i * block_bytes, l);
    blocks[i].request_class = chain.request_class;
  }
  return n == 0 ? 0 : to.store(blocks, tier_store_reason::warm);
}

}  // namespace kvkit
