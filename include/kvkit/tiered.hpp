// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `tiered<Tiers...>`: tiers under a `prefix_cache`'s pool. Given as the cache's listener,
/// it demotes the blocks the pool evicts into its tiers, writes committed blocks through to tiers
/// that ask for it, promotes a prompt's continuation from the tiers at admission, and carries the
/// cache's invalidations down.
#pragma once

#include <kvkit/cache_types.hpp>
#include <kvkit/concepts.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/prometheus.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/tier.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace kvkit {

/// @brief What the composition did with one tier, since construction.
struct tier_level_stats {
  std::string_view name;                ///< The tier's name ("host", "redis", ...).
  bool attached = false;                ///< Whether a tier is attached at this level.
  std::uint64_t promotions = 0;         ///< Admissions that promoted at least one block from it.
  std::uint64_t promoted_blocks = 0;    ///< Blocks promoted from it into the pool.
  std::uint64_t promoted_tokens = 0;    ///< Their tokens (counted as cached by the requests).
  std::uint64_t promotion_lookups = 0;  ///< Continuations asked of it.
  std::uint64_t demoted_blocks = 0;     ///< Evicted pool blocks it holds after their demotion.
  std::uint64_t written_blocks = 0;     ///< Committed blocks it holds after write-through.
  std::uint64_t warmed_blocks = 0;      ///< Blocks it holds after warming.
  std::uint64_t invalidations = 0;      ///< Invalidations carried down to it.
  tier_stats tier;                      ///< The tier's own counters (lookups, bytes, errors...).
};

/// @brief Statistics of a @ref kvkit::tiered composition: one entry per tier, in order.
struct tiered_stats {
  std::size_t count = 0;                                   ///< Tiers (levels used).
  std::array<tier_level_stats, max_cache_tiers> levels{};  ///< Levels `[0, count)`.
};

/// @brief How a @ref kvkit::tiered composition reaches the bytes of a pool's storage: where block
/// `b` is (`base + b * step`, segments `stride` apart) and, for memory the host cannot read
/// (a GPU's), how to copy a block to and from a host buffer.
struct kv_binding {
  std::byte* base = nullptr;  ///< Segment 0 of block 0.
  std::size_t stride = 0;     ///< Bytes from one segment of a block to the next.
  std::size_t step = 0;       ///< Bytes from block `b` to block `b + 1` in a segment.
  /// @brief Passed to the copy functions (a stream); unused for host memory.
  void* context = nullptr;
  /// @brief Null for host memory (the tiers read and write it directly). Otherwise copies block
  /// view @p src of the pool into the contiguous host buffer @p dst and waits for the copy;
  /// returns false when the copy failed (the block is then not offered to the tiers).
  bool (*to_host)(void* context, kv_block_cview src, std::byte* dst, const kv_layout& l) = nullptr;
  /// @brief Enqueues the copy of the contiguous host buffer @p src into block view @p dst of the
  /// pool (asynchronous, ordered before later work on the storage's stream); false on failure.
  bool (*to_pool)(void* context, const std::byte* src, kv_block_view dst,
                  const kv_layout& l) = nullptr;
  /// @brief Waits until the copies to_pool() enqueued have read their host buffers.
  void (*wait)(void* context) = nullptr;
};

/// @brief How a storage type is bound to a @ref kvkit::tiered composition: a specialisation has
/// `static kv_binding make(Storage&)`. Given for `host_storage<T>` here, and for
/// `device_storage<T>` by `<kvkit/tiers/device_binding.hpp>` (which needs the CUDA runtime).
/// @tparam Storage A @ref kvkit::kv_storage.
template <class Storage>
struct tier_storage_binding;

/// @brief Binding of a host storage: the tiers copy its bytes with `memcpy`.
/// @tparam T Element type.
template <class T>
struct tier_storage_binding<host_storage<T>> {
  /// @brief The binding.
  /// @param s The storage.
  /// @return Its addresses (no copy functions).
  static kv_binding make(host_storage<T>& s) {
    const kv_block_view v = block_view(s, 0);
    kv_binding b;
    b.base = v.data;
    b.stride = v.stride;
    b.step = kv_segment_bytes(s.layout());
    return b;
  }
};

/// @brief Tiers under a pool, composed at compile time: the listener of a `prefix_cache`.
///
/// ```cpp
/// using tiers_t = kvkit::tiered<kvkit::host_tier<kvkit::lru_eviction>, kvkit::redis_tier>;
/// using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
///                                     kvkit::lru_eviction, kvkit::host_storage<kvkit::bf16>,
///                                     tiers_t>;
/// auto cache = cache_t::create(config, std::move(storage)).value();
/// cache.listener().attach<0>(std::move(host));    // kvkit::host_tier
/// cache.listener().attach<1>(std::move(remote));  // kvkit::redis_tier
/// ```
///
/// **Demotion.** When the pool evicts a cached block (`removal_reason::evicted`), its K/V bytes
/// (still in the storage) are offered to every attached tier that accepts
/// `tier_store_reason::eviction`. Expired, invalidated and cleared blocks are not demoted.
///
/// **Write-through.** When a block is committed, it is offered with `tier_store_reason::commit`
/// to every tier whose write policy is `tier_write_policy::through` (another engine sees it at
/// once).
///
/// **One store per operation.** Demoted and written-through blocks are copied (bytes, tokens,
/// namespace) into a staging area, reused from one operation to the next, while the cache reports
/// them; when the cache's operation returns (the listener's `on_operation_end`), each tier gets
/// every staged block of the operation in one `store` call, in the order the cache reported them:
/// one pipelined round trip to a remote tier for an admission that evicts many blocks or a commit
/// that registers many. Staged blocks are stored before the tiers are read or changed otherwise:
/// promote(), invalidate() and warm_block() store them first. An admission makes every eviction
/// it needs before it asks the tiers (the cache frees room for the whole prompt first when its
/// listener promotes), so its demotions are one store, made before the promotion, and the tiers
/// it then asks hold exactly what they would had each block been stored at its eviction. The
/// staging area holds at most staging_limit() bytes (64 MiB by default; an operation moving more
/// stores them in pieces of that size).
///
/// **Promotion.** In `admit`, after the pool's own match, the cache allocates blocks for the
/// eligible rest of the prompt and asks the tiers in order: tier 0 loads the longest verified
/// continuation it holds, tier 1 continues from where tier 0 stopped, and so on. Loaded blocks
/// are registered as cached and counted as cached tokens of the request, per tier
/// (`admission::tier_cached_tokens`). Blocks evicted to make room are demoted before the tiers are
/// asked. A tier that fails (a server down, a corrupt value) loads fewer blocks: a miss, counted
/// by the tier once per error episode, never a failed admission and never a byte in a block it did
/// not return.
///
/// **Invalidation.** `invalidate_tenant`, `invalidate_session` and `invalidate_key` of the cache
/// reach every tier with the same scope. `clear()` drops the pool only (a shared remote tier
/// holds other engines' blocks). `invalidate_if` with a free predicate cannot be expressed as a
/// scope and stays in the pool; call invalidate() here for the tiers.
///
/// **Time to live** is each tier's own (`host_tier_options::idle_ttl`, `redis_tier_options::ttl`);
/// expire() frees the host tier's idle entries.
///
/// Without tiers attached every member returns at once. A cache whose listener is not a
/// `tiered` (the default `no_listener`) has no tier code at all.
///
/// Storage: `host_storage` (the bytes are copied with `memcpy`). Not thread-safe: the cache's
/// owner serialises calls (`synchronized_cache` does).
/// @tparam Tiers One to four @ref kvkit::cache_tier types, nearest the pool first.
template <cache_tier... Tiers>
class tiered {
  static_assert(sizeof...(Tiers) >= 1 && sizeof...(Tiers) <= max_cache_tiers,
                "kvkit::tiered: give between 1 and kvkit::max_cache_tiers (4) tiers");

 public:
  /// @brief Number of tier levels.
  static constexpr std::size_t tier_count = sizeof...(Tiers);
  /// @brief Type of the tier at level @p I.
  /// @tparam I The level.
  template <std::size_t I>
  using tier_type = std::tuple_element_t<I, std::tuple<Tiers...>>;

  /// @brief A composition with no tier attached (every operation does nothing).
  tiered() = default;

  /// @brief Attaches @p tier at level @p I (replacing the one there).
  /// @tparam I The level.
  /// @param tier The tier; its layout must match the pool's storage (checked at the next
  /// admission: a mismatched tier is detached and never used, see attached()).
  template <std::size_t I>
  void attach(tier_type<I> tier) {
    std::get<I>(tiers_).emplace(std::move(tier));
    levels_[I] = tier_level_stats{};
  }

  /// @brief Detaches the tier at level @p I.
  /// @tparam I The level.
  template <std::size_t I>
  void detach() noexcept {
    std::get<I>(tiers_).reset();
  }

  /// @brief The tier at level @p I.
  /// @tparam I The level.
  /// @return It, or null when none is attached.
  template <std::size_t I>
  [[nodiscard]] tier_type<I>* tier() noexcept {
    auto& t = std::get<I>(tiers_);
    return t ? &*t : nullptr;
  }
  /// @copydoc tier()
  template <std::size_t I>
  [[nodiscard]] const tier_type<I>* tier() const noexcept {
    const auto& t = std::get<I>(tiers_);
    return t ? &*t : nullptr;
  }

  /// @brief Whether a tier is attached at level @p I.
  /// @tparam I The level.
  /// @return True when attached.
  template <std::size_t I>
  [[nodiscard]] bool attached() const noexcept {
    return std::get<I>(tiers_).has_value();
  }

  // ---- the listener ----------------------------------------------------------------------------

  /// @brief Write-through: stages a committed block (a copy of its bytes) for the tiers that
  /// accept `tier_store_reason::commit`; on_operation_end() hands them over. Called by the cache.
  /// @param e The block.
  void on_stored(const block_event& e) {
    if (promoting_ || base_ == nullptr)
      return;
    if (stage(e, tier_store_reason::commit) && full())
      (void)flush();  // a very large operation: stored in pieces of staging_limit() bytes
  }

  /// @brief Demotion: stages an evicted block (a copy of its bytes, taken while they are still
  /// in the storage) for the tiers that accept `tier_store_reason::eviction`; on_operation_end()
  /// hands them over. Called by the cache.
  /// @param e The block.
  /// @param why Why it is removed (only `evicted` demotes).
  void on_removed(const block_event& e, removal_reason why) {
    if (why != removal_reason::evicted || base_ == nullptr)
      return;
    if (stage(e, tier_store_reason::eviction) && full())
      (void)flush();
  }

  /// @brief The cache's operation returns: hands every block staged during it to each tier that
  /// accepts it, in one `store` call per tier (per run of blocks with the same reason, in the order
  /// they were staged), so a remote tier moves them in one pipelined round trip. Called by the
  /// cache.
  void on_operation_end() noexcept { (void)flush(); }

  /// @brief Carries an invalidation of the cache down to every tier. Called by the cache.
  /// @param scope The tenant, session or extra key invalidated.
  void on_invalidated(tier_scope scope) { (void)invalidate(scope); }

  // ---- what prefix_cache calls at admission ----------------------------------------------------

  /// @brief Records where the storage's bytes are and the cache's hash seed. Called by the cache
  /// at every admission (the storage's memory does not move when the cache does).
  /// @tparam Storage A storage with a @ref kvkit::tier_storage_binding (`host_storage`; with
  /// `<kvkit/tiers/device_binding.hpp>`, `device_storage`).
  /// @param storage The pool's storage.
  /// @param seed The cache's hash seed.
  template <class Storage>
  void bind(Storage& storage, std::uint64_t seed) {
    static_assert(
        requires { tier_storage_binding<Storage>::make(storage); },
        "kvkit::tiered: this storage has no kvkit::tier_storage_binding; tiers work "
        "over host_storage, and over device_storage with "
        "<kvkit/tiers/device_binding.hpp> included");
    tokens_.fill(0);  // this admission's promotion, if any, sets them
    const kv_layout& l = storage.layout();
    layout_ = l;
    seed_ = seed;
    hasher_ = xxh3_hasher(seed);
    bound_ = tier_storage_binding<Storage>::make(storage);
    base_ = bound_.base;
    stride_ = bound_.stride;
    step_ = bound_.step;
    check_layouts(std::index_sequence_for<Tiers...>{});
  }

  /// @brief Whether any tier is attached (the cache asks before it allocates for a promotion).
  /// @return True when at least one level holds a tier.
  [[nodiscard]] bool active() const noexcept {
    return std::apply([](const auto&... t) { return (t.has_value() || ...); }, tiers_);
  }

  /// @brief Scratch space for the keys of a chain. Called by the cache.
  /// @param n Keys.
  /// @return `n` keys.
  std::span<std::uint64_t> scratch_keys(std::uint32_t n) {
    keys_.resize(n);
    return keys_;
  }

  /// @brief Loads the longest continuation the tiers hold into @p blocks, tier after tier.
  /// Called by the cache.
  /// @param chain The continuation (keys of the blocks after the pool's match).
  /// @param blocks Pool blocks, one per key, to receive the bytes.
  /// @return Blocks loaded (leading ones of @p blocks).
  std::uint32_t promote(const tier_chain& chain, std::span<const block_id> blocks) {
    (void)flush();  // the blocks this admission evicted are in the tiers before they are asked
    counts_.fill(0);
    if (base_ == nullptr || chain.keys.empty())
      return 0;
    views_.resize(blocks.size());
    const bool staged = bound_.to_pool != nullptr;  // pool memory the host cannot write
    const std::size_t bytes = layout_.block_bytes_all_layers();
    if (staged) {
      wait_staging();
      staging_.resize(blocks.size() * bytes);
    }
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      views_[i] = staged ? contiguous_block_view(staging_.data() + i * bytes, layout_)
                         : kv_block_view{base_ + std::size_t{blocks[i]} * step_, stride_};
    }
    std::uint32_t n = 0;
    promote_from(chain, n, std::index_sequence_for<Tiers...>{});
    if (staged) {
      for (std::uint32_t i = 0; i < n; ++i) {
        const kv_block_view dst{base_ + std::size_t{blocks[i]} * step_, stride_};
        if (!bound_.to_pool(bound_.context, staging_.data() + i * bytes, dst, layout_)) {
          n = i;  // the rest stay uncached: the request prefills them
          break;
        }
        staging_busy_ = true;
      }
    }
    promoting_ = n != 0;
    return n;
  }

  /// @brief The cache registered the first @p n loaded blocks (fewer than loaded when one could
  /// not be registered); per-tier counts are trimmed from the last tier. Called by the cache.
  /// @param n Blocks registered.
  void registered(std::uint32_t n) {
    promoting_ = false;
    std::uint32_t total = 0;
    for (std::size_t i = 0; i < tier_count; ++i) {
      const std::uint32_t take = std::min(counts_[i], n - total);
      counts_[i] = take;
      total += take;
      if (take != 0) {
        ++levels_[i].promotions;
        levels_[i].promoted_blocks += take;
        levels_[i].promoted_tokens += std::uint64_t{take} * layout_.block_size;
      }
    }
    tokens_.fill(0);
    for (std::size_t i = 0; i < tier_count; ++i)
      tokens_[i] = counts_[i] * layout_.block_size;
  }

  /// @brief Tokens the last admission promoted from each tier. Called by the cache.
  /// @return Tokens per level.
  [[nodiscard]] std::array<std::uint32_t, max_cache_tiers> promoted_tokens() const noexcept {
    return tokens_;
  }

  // ---- operations of the owner -----------------------------------------------------------------

  /// @brief Drops every block of the namespaces in @p scope from every tier.
  /// @param scope Tenant, session or extra key.
  /// @return Entries dropped (tiers that count them); `complete` false when a remote tier could
  /// not be reached yet (it holds locally and is retried).
  tier_invalidation invalidate(tier_scope scope) {
    (void)flush();  // staged blocks are stored before the scope drops them
    tier_invalidation r;
    for_each([&](auto& t, std::size_t i) {
      const tier_invalidation x = t.invalidate(scope);
      r.dropped += x.dropped;
      r.complete = r.complete && x.complete;
      ++levels_[i].invalidations;
    });
    return r;
  }

  /// @brief Frees the tiers' entries past their time to live.
  /// @return Entries freed.
  std::uint64_t expire() {
    std::uint64_t n = 0;
    for_each([&](auto& t, std::size_t) { n += t.expire(); });
    return n;
  }

  /// @brief Warming: stores blocks in every tier (`tier_store_reason::warm`, which every tier
  /// accepts), ahead of traffic. See also kvkit::warm_tiers().
  /// @param blocks The blocks (keys from the cache's seed, see kvkit::tier_keys()).
  /// @return Per level, blocks the tier holds afterwards among @p blocks.
  std::array<std::uint32_t, max_cache_tiers> warm(std::span<const tier_block> blocks) {
    std::array<std::uint32_t, max_cache_tiers> held{};
    for_each([&](auto& t, std::size_t i) {
      held[i] = t.store(blocks, tier_store_reason::warm);
      levels_[i].warmed_blocks += held[i];
    });
    return held;
  }

  /// @brief Warming from the pool: stores one cached block of the bound storage in every tier
  /// (`tier_store_reason::warm`). See kvkit::warm_tiers().
  /// @param e The block, as the cache describes it (its key, parent key, tokens, namespace).
  /// @return Per level, 1 when the tier holds it afterwards.
  std::array<std::uint32_t, max_cache_tiers> warm_block(const block_event& e) {
    if (base_ == nullptr)
      return {};
    (void)flush();
    if (!stage(e, tier_store_reason::warm))
      return {};
    return flush();
  }

  /// @brief Warming from the pool: stores cached blocks of the bound storage in every tier
  /// (`tier_store_reason::warm`), all in one `store` call per tier (one round trip to Redis).
  /// See kvkit::warm_tiers().
  /// @param blocks The blocks, as the cache describes them.
  /// @return Per level, blocks the tier holds afterwards among @p blocks.
  std::array<std::uint32_t, max_cache_tiers> warm_blocks(std::span<const block_event> blocks) {
    std::array<std::uint32_t, max_cache_tiers> held{};
    if (base_ == nullptr)
      return held;
    (void)flush();
    const auto add = [&](const std::array<std::uint32_t, max_cache_tiers>& h) {
      for (std::size_t i = 0; i < max_cache_tiers; ++i)
        held[i] += h[i];
    };
    for (const block_event& e : blocks) {
      if (stage(e, tier_store_reason::warm) && full())
        add(flush());
    }
    add(flush());
    return held;
  }

  /// @brief Bounds the staging area: an operation whose staged blocks reach @p bytes of K/V
  /// stores them then and goes on staging (one store per @p bytes instead of one per operation).
  /// The area keeps its largest size, at most @p bytes plus one block. Default: 64 MiB.
  /// @param bytes The bound (0: every block is stored as soon as it is staged).
  void staging_limit(std::size_t bytes) noexcept { staging_limit_ = bytes; }

  /// @brief The bound of the staging area.
  /// @return Bytes (see the setter).
  [[nodiscard]] std::size_t staging_limit() const noexcept { return staging_limit_; }

  /// @brief Statistics per level (the tiers' own counters included).
  /// @return A snapshot.
  [[nodiscard]] tiered_stats stats() const {
    tiered_stats s;
    s.count = tier_count;
    fill_stats(s, std::index_sequence_for<Tiers...>{});
    return s;
  }

  /// @brief The block's bytes in the bound storage, for reading.
  /// @param b A pool block.
  /// @return Its view (empty before the first admission).
  [[nodiscard]] kv_block_cview block_bytes(block_id b) const noexcept {
    if (base_ == nullptr)
      return {};
    return {base_ + std::size_t{b} * step_, stride_};
  }

  /// @brief The namespace of @p e's keys under the bound seed.
  /// @param tenant_salt Tenant salt.
  /// @param session_id Session.
  /// @param extra_keys Extra keys.
  /// @return The namespace (its key computed).
  [[nodiscard]] tier_namespace namespace_of(std::uint64_t tenant_salt, std::uint64_t session_id,
                                            std::span<const std::uint64_t> extra_keys) const {
    return tier_namespace{hasher_.root(tenant_salt, session_id, extra_keys), tenant_salt,
                          session_id, extra_keys};
  }

 private:
  template <class F>
  void for_each(F&& f) {
    for_each_impl(f, std::index_sequence_for<Tiers...>{});
  }
  template <class F, std::size_t... I>
  void for_each_impl(F& f, std::index_sequence<I...>) {
    (
        [&] {
          if (auto& t = std::get<I>(tiers_); t)
            f(*t, I);
        }(),
        ...);
  }

  template <std::size_t... I>
  void check_layouts(std::index_sequence<I...>) {
    (
        [&] {
          auto& t = std::get<I>(tiers_);
          if (t && !same_shape(t->layout(), layout_))
            t.reset();  // a tier of another shape would hand back bytes of the wrong size
        }(),
        ...);
  }

  static bool same_shape(const kv_layout& a, const kv_layout& b) noexcept {
    return a.num_layers == b.num_layers && a.num_kv_heads == b.num_kv_heads &&
           a.head_dim == b.head_dim && a.block_size == b.block_size && a.type == b.type &&
           a.order == b.order;
  }

  template <std::size_t... I>
  void promote_from(const tier_chain& chain, std::uint32_t& n, std::index_sequence<I...>) {
    (
        [&] {
          auto& t = std::get<I>(tiers_);
          if (!t || n == chain.keys.size())
            return;
          tier_chain rest = chain;
          rest.parent = n == 0 ? chain.parent : chain.keys[n - 1];
          rest.keys = chain.keys.subspan(n);
          rest.tokens = chain.tokens.subspan(std::size_t{n} * layout_.block_size);
          ++levels_[I].promotion_lookups;
          const std::uint32_t got =
              t->load(rest, std::span<const kv_block_view>(views_).subspan(n));
          counts_[I] = got;
          n += got;
        }(),
        ...);
  }

  // Whether an attached tier stores blocks offered for `reason`.
  bool accepted(tier_store_reason reason) {
    bool any = false;
    for_each([&](auto& t, std::size_t) {
      any = any || tier_traits<std::remove_cvref_t<decltype(t)>>::accepts(t, reason);
    });
    return any;
  }

  // Copies block `e` (bytes, tokens, namespace) into the staging area, to be stored by flush().
  // False when no tier takes it or its bytes could not be read (it is then not offered).
  bool stage(const block_event& e, tier_store_reason reason) {
    if (!accepted(reason))
      return false;
    const std::size_t bytes = layout_.block_bytes_all_layers();
    const std::size_t at = staged_.size();
    if (out_bytes_.size() < (at + 1) * bytes)  // grows only: kept from one operation to the next
      out_bytes_.resize(std::max((at + 1) * bytes, 2 * out_bytes_.size()));
    std::byte* dst = out_bytes_.data() + at * bytes;
    const kv_block_cview kv = block_bytes(e.block);
    if (bound_.to_host != nullptr) {  // pool memory the host cannot read
      if (!bound_.to_host(bound_.context, kv, dst, layout_))
        return false;
    } else {
      const std::size_t seg = kv_segment_bytes(layout_);
      for (std::size_t i = 0; i < kv_segments(layout_); ++i)
        std::memcpy(dst + i * seg, kv.data + i * kv.stride, seg);
    }
    staged_block sb;
    sb.reason = reason;
    sb.key = e.key;
    sb.parent = e.parent_key;
    sb.ns_key = hasher_.root(e.tenant_salt, e.session_id, e.extra_keys);
    sb.tenant_salt = e.tenant_salt;
    sb.session_id = e.session_id;
    sb.tokens_at = out_tokens_.size();
    sb.tokens_count = e.tokens.size();
    sb.extra_at = out_extra_.size();
    sb.extra_count = e.extra_keys.size();
    out_tokens_.insert(out_tokens_.end(), e.tokens.begin(), e.tokens.end());
    out_extra_.insert(out_extra_.end(), e.extra_keys.begin(), e.extra_keys.end());
    staged_.push_back(sb);
    out_blocks_.resize(staged_.size());  // so that flush() does not allocate
    return true;
  }

  // Whether the staged blocks reach staging_limit().
  [[nodiscard]] bool full() const noexcept {
    return staged_.size() * layout_.block_bytes_all_layers() >= staging_limit_;
  }

  // Stores the staged blocks: each run of one reason in one store() call per tier accepting it.
  // Returns, per level, the blocks the tier holds afterwards among them.
  std::array<std::uint32_t, max_cache_tiers> flush() noexcept {
    std::array<std::uint32_t, max_cache_tiers> held{};
    if (staged_.empty())
      return held;
    const std::size_t bytes = layout_.block_bytes_all_layers();
    for (std::size_t i = 0; i < staged_.size(); ++i) {
      const staged_block& sb = staged_[i];
      tier_block& b = out_blocks_[i];
      b.ns = tier_namespace{
          sb.ns_key, sb.tenant_salt, sb.session_id,
          std::span<const std::uint64_t>(out_extra_).subspan(sb.extra_at, sb.extra_count)};
      b.key = sb.key;
      b.parent = sb.parent;
      b.tokens = std::span<const token_id>(out_tokens_).subspan(sb.tokens_at, sb.tokens_count);
      b.kv = contiguous_block_cview(out_bytes_.data() + i * bytes, layout_);
      b.request_class = 0;
    }
    for (std::size_t first = 0; first < staged_.size();) {
      const tier_store_reason reason = staged_[first].reason;
      std::size_t last = first + 1;
      while (last < staged_.size() && staged_[last].reason == reason)
        ++last;
      const std::span<const tier_block> run =
          std::span<const tier_block>(out_blocks_).subspan(first, last - first);
      for_each([&](auto& t, std::size_t i) {
        using T = std::remove_cvref_t<decltype(t)>;
        if (!tier_traits<T>::accepts(t, reason))
          return;
        const std::uint32_t h = t.store(run, reason);
        held[i] += h;
        (reason == tier_store_reason::eviction ? levels_[i].demoted_blocks
         : reason == tier_store_reason::commit ? levels_[i].written_blocks
                                               : levels_[i].warmed_blocks) += h;
      });
      first = last;
    }
    staged_.clear();
    out_tokens_.clear();
    out_extra_.clear();
    return held;
  }

  void wait_staging() {
    if (staging_busy_ && bound_.wait != nullptr)
      bound_.wait(bound_.context);
    staging_busy_ = false;
  }

  template <std::size_t... I>
  void fill_stats(tiered_stats& s, std::index_sequence<I...>) const {
    (
        [&] {
          s.levels[I] = levels_[I];
          s.levels[I].name = tier_traits<tier_type<I>>::name();
          const auto& t = std::get<I>(tiers_);
          s.levels[I].attached = t.has_value();
          if (t)
            s.levels[I].tier = t->stats();
        }(),
        ...);
  }

  std::tuple<std::optional<Tiers>...> tiers_;
  std::array<tier_level_stats, max_cache_tiers> levels_{};
  std::array<std::uint32_t, max_cache_tiers> counts_{};
  std::array<std::uint32_t, max_cache_tiers> tokens_{};
  kv_layout layout_{};
  std::uint64_t seed_ = 0;
  xxh3_hasher hasher_{0};
  kv_binding bound_{};
  std::vector<std::byte> staging_;  // host copies of blocks of a pool the host cannot address
  bool staging_busy_ = false;       // copies out of staging_ may still be running
  std::byte* base_ = nullptr;
  std::size_t stride_ = 0;
  std::size_t step_ = 0;
  bool promoting_ = false;
  std::vector<std::uint64_t> keys_;
  std::vector<kv_block_view> views_;

  // Blocks of the current operation waiting for on_operation_end() (demotions, write-through).
  struct staged_block {
    tier_store_reason reason = tier_store_reason::eviction;
    std::uint64_t key = 0;
    std::uint64_t parent = 0;
    std::uint64_t ns_key = 0;
    std::uint64_t tenant_salt = 0;
    std::uint64_t session_id = 0;
    std::size_t tokens_at = 0;  // in out_tokens_
    std::size_t tokens_count = 0;
    std::size_t extra_at = 0;  // in out_extra_
    std::size_t extra_count = 0;
  };
  std::vector<staged_block> staged_;
  std::vector<token_id> out_tokens_;
  std::vector<std::uint64_t> out_extra_;
  std::vector<std::byte> out_bytes_;  // contiguous copies of the staged blocks' K/V
  std::vector<tier_block> out_blocks_;
  std::size_t staging_limit_ = std::size_t{64} << 20;
};

/// @brief The content keys of the whole blocks of @p prompt under @p cache's seed and @p options'
/// namespace: the keys every tier stores them under.
/// @tparam Cache A `prefix_cache`.
/// @param cache The cache.
/// @param prompt Tokens (only whole blocks count).
/// @param options Tenant salt, session, extra keys.
/// @return One key per whole block.
template <class Cache>
[[nodiscard]] std::vector<std::uint64_t> tier_keys(const Cache& cache,
                                                   std::span<const token_id> prompt,
                                                   const request_options& options = {}) {
  const xxh3_hasher h(cache.seed());
  const std::uint32_t bs = cache.block_size();
  std::vector<std::uint64_t> keys(prompt.size() / bs);
  std::uint64_t parent = h.root(options.tenant_salt, options.session_id, options.extra_keys);
  for (std::size_t k = 0; k < keys.size(); ++k)
    parent = keys[k] = h.chain(parent, prompt.subspan(k * bs, bs));
  return keys;
}

/// @brief Warming from the pool: stores the committed blocks of sequence @p seq (a prompt the
/// engine has prefilled and committed) into every tier of @p cache's `tiered` listener, so that
/// other engines sharing a remote tier, or this one after an eviction, find it.
/// @tparam Cache A `prefix_cache` whose listener is a @ref kvkit::tiered.
/// @param cache The cache.
/// @param seq A live sequence.
/// @param options The keys the sequence was admitted with.
/// @return Per level, blocks the tier holds afterwards; `errc::unknown_sequence` /
/// `errc::finished_sequence` for a bad handle (nothing stored).
template <class Cache>
[[nodiscard]] result<std::array<std::uint32_t, max_cache_tiers>> warm_tiers(
    Cache& cache, sequence_id seq, const request_options& options = {}) {
  auto view = cache.sequence(seq);
  if (!view.ok())
    return view.error();
  auto& tiers = cache.listener();
  const std::uint32_t bs = cache.block_size();
  const std::uint32_t whole = view->computed_tokens / bs;
  const std::vector<std::uint64_t> keys =
      tier_keys(cache, view->tokens.subspan(0, std::size_t{whole} * bs), options);
  const std::uint64_t root =
      tiers.namespace_of(options.tenant_salt, options.session_id, options.extra_keys).key;
  std::vector<block_event> events(whole);
  for (std::uint32_t k = 0; k < whole; ++k) {
    block_event& e = events[k];
    e.block = view->blocks[k];
    e.key = keys[k];
    e.parent_key = k == 0 ? root : keys[k - 1];
    e.tokens = view->tokens.subspan(std::size_t{k} * bs, bs);
    e.tenant_salt = options.tenant_salt;
    e.session_id = options.session_id;
    e.extra_keys = options.extra_keys;
  }
  return tiers.warm_blocks(events);  // one store per tier: one round trip to Redis
}

/// @brief Writes the statistics of every attached tier of a @ref kvkit::tiered in the Prometheus
/// text format, each family once with one sample per tier, labelled `tier` with the tier's name
/// (`"host"`, `"redis"`; a name used by two levels gets its level number appended, `"host_1"`).
///
/// Families (after the prefix, `kvkit_` by default): `tier_lookups_total`,
/// `tier_lookup_blocks_total`, `tier_hits_total`, `tier_hit_blocks_total`, `tier_hit_tokens_total`,
/// `tier_promotions_total`, `tier_promoted_blocks_total`, `tier_promoted_tokens_total` (tokens the
/// requests counted as cached), `tier_demoted_blocks_total`, `tier_written_blocks_total`,
/// `tier_warmed_blocks_total`, `tier_bytes_total` (label `direction`: `in` for demotions and
/// writes, `out` for promotions), `tier_stored_blocks_total`, `tier_evictions_total`,
/// `tier_expirations_total`, `tier_invalidated_total`, `tier_round_trips_total`,
/// `tier_errors_total` (label `kind`: every @ref kvkit::tier_error), `tier_error_episodes_total`,
/// `tier_promotion_latency_seconds` (gauge, label `quantile`: 0.5, 0.9, 0.99, 1 for the largest)
/// with `tier_promotion_latency_count_total`, and the gauges `tier_entries`,
/// `tier_capacity_blocks`, `tier_used_bytes`, `tier_metadata_bytes`.
/// @param out The exposition text (appended to).
/// @param stats The composition's statistics (`cache.listener().stats()`).
/// @param options Prefix and constant labels.
/// @return Ok, or `errc::invalid_argument` naming a bad prefix or label.
inline status write_prometheus(std::string& out, const tiered_stats& stats,
                               const prometheus_options& options = {}) {
  std::vector<std::string> names;
  std::vector<const tier_level_stats*> levels;
  for (std::size_t i = 0; i < stats.count; ++i) {
    const tier_level_stats& l = stats.levels[i];
    if (!l.attached)
      continue;
    std::string n(l.name);
    for (std::size_t j = 0; j < stats.count; ++j) {
      if (j != i && stats.levels[j].attached && stats.levels[j].name == l.name) {
        n += "_" + std::to_string(i);
        break;
      }
    }
    names.push_back(std::move(n));
    levels.push_back(&l);
  }
  prometheus_writer w(out, options);
  const auto each = [&](std::string_view name, prometheus_type type, std::string_view help,
                        auto value) {
    w.family(name, type, help);
    for (std::size_t i = 0; i < levels.size(); ++i) {
      const prometheus_label labels[] = {{"tier", names[i]}};
      w.sample("", labels, static_cast<std::uint64_t>(value(*levels[i])));
    }
  };
  using L = const tier_level_stats&;
  constexpr auto counter = prometheus_type::counter;
  constexpr auto gauge = prometheus_type::gauge;
  each("tier_lookups_total", counter, "Chains looked up or loaded in the tier.",
       [](L l) { return l.tier.lookups; });
  each("tier_lookup_blocks_total", counter, "Blocks asked of the tier.",
       [](L l) { return l.tier.lookup_blocks; });
  each("tier_hits_total", counter, "Chains of which the tier held at least one block.",
       [](L l) { return l.tier.hits; });
  each("tier_hit_blocks_total", counter, "Blocks the tier found and verified.",
       [](L l) { return l.tier.hit_blocks; });
  each("tier_hit_tokens_total", counter, "Tokens of the blocks the tier found.",
       [](L l) { return l.tier.hit_tokens; });
  each("tier_promotions_total", counter, "Admissions that promoted blocks from the tier.",
       [](L l) { return l.promotions; });
  each("tier_promoted_blocks_total", counter, "Blocks promoted from the tier into the pool.",
       [](L l) { return l.promoted_blocks; });
  each("tier_promoted_tokens_total", counter,
       "Prompt tokens promoted from the tier and counted as cached by their requests.",
       [](L l) { return l.promoted_tokens; });
  each("tier_demoted_blocks_total", counter, "Evicted pool blocks the tier holds after demotion.",
       [](L l) { return l.demoted_blocks; });
  each("tier_written_blocks_total", counter, "Committed blocks written through to the tier.",
       [](L l) { return l.written_blocks; });
  each("tier_warmed_blocks_total", counter, "Blocks stored in the tier by warming.",
       [](L l) { return l.warmed_blocks; });
  w.family("tier_bytes_total", counter, "K/V bytes copied into (in) and out of (out) the tier.");
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const prometheus_label in[] = {{"tier", names[i]}, {"direction", "in"}};
    const prometheus_label out_labels[] = {{"tier", names[i]}, {"direction", "out"}};
    w.sample("", in, levels[i]->tier.bytes_in);
    w.sample("", out_labels, levels[i]->tier.bytes_out);
  }
  each("tier_stored_blocks_total", counter, "Blocks the tier stored (new copies).",
       [](L l) { return l.tier.stored_blocks; });
  each("tier_evictions_total", counter, "Entries the tier evicted for capacity.",
       [](L l) { return l.tier.evictions; });
  each("tier_expirations_total", counter, "Entries the tier dropped for idle time.",
       [](L l) { return l.tier.expirations; });
  each("tier_invalidated_total", counter, "Entries the tier dropped by invalidation.",
       [](L l) { return l.tier.invalidated; });
  each("tier_round_trips_total", counter, "Network round trips of the tier (remote tiers).",
       [](L l) { return l.tier.round_trips; });
  w.family("tier_errors_total", counter, "Errors of the tier, by kind (each one a miss).");
  for (std::size_t i = 0; i < levels.size(); ++i) {
    for (std::size_t k = 0; k < tier_error_kinds; ++k) {
      const prometheus_label labels[] = {{"tier", names[i]},
                                         {"kind", to_string(static_cast<tier_error>(k))}};
      w.sample("", labels, levels[i]->tier.errors[k]);
    }
  }
  each("tier_error_episodes_total", counter, "Error episodes of the tier (each reported once).",
       [](L l) { return l.tier.error_episodes; });
  w.family(
      "tier_promotion_latency_seconds", gauge,
      "Duration of the tier's loads that promoted blocks: quantiles since start (1: largest).");
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const latency_summary& q = levels[i]->tier.promotion_latency;
    const std::pair<std::string_view, std::uint64_t> points[] = {
        {"0.5", q.p50_ns}, {"0.9", q.p90_ns}, {"0.99", q.p99_ns}, {"1", q.max_ns}};
    for (const auto& [quantile, ns] : points) {
      const prometheus_label labels[] = {{"tier", names[i]}, {"quantile", quantile}};
      w.sample("", labels, static_cast<double>(ns) * 1e-9);
    }
  }
  each("tier_promotion_latency_count_total", counter, "Loads that promoted blocks.",
       [](L l) { return l.tier.promotion_latency.count; });
  each("tier_entries", gauge, "Blocks the tier holds now (tiers that know).",
       [](L l) { return l.tier.entries; });
  each("tier_capacity_blocks", gauge, "Blocks the tier can hold (0: bounded elsewhere).",
       [](L l) { return l.tier.capacity; });
  each("tier_used_bytes", gauge, "K/V bytes the tier holds now (tiers that know).",
       [](L l) { return l.tier.bytes_used; });
  each("tier_metadata_bytes", gauge, "Bookkeeping bytes of the tier.",
       [](L l) { return l.tier.metadata_bytes; });
  return w.outcome();
}

}  // namespace kvkit
