// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `host_tier`: a bounded host-memory tier below the pool, with its own capacity, any
/// eviction policy of the catalogue, an idle time to live and invalidation by tenant, session and
/// extra key.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/error.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/tier.hpp>
#include <kvkit/tiers/detail/flat_map.hpp>
#include <kvkit/tiers/detail/tier_common.hpp>
#include <kvkit/types.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace kvkit {

/// @brief Where a host tier's bytes come from: one allocation for the whole capacity.
///
/// Empty functions mean `operator new` aligned to 4096 bytes. To make promotions to a GPU run at
/// full PCIe speed, pass page-locked memory (e.g. `cudaHostAlloc` / `cudaFreeHost`): the arena is
/// one block of memory, so it is registered once.
struct host_arena {
  /// @brief Returns @p bytes of memory, or null when there is none.
  std::function<void*(std::size_t bytes)> allocate{};
  /// @brief Frees memory returned by @ref allocate (called once, with the same size).
  std::function<void(void* p, std::size_t bytes)> deallocate{};
};

/// @brief Settings of a @ref kvkit::host_tier.
/// @tparam Eviction The tier's eviction policy.
template <class Eviction>
struct host_tier_options {
  std::uint32_t capacity_blocks = 0;  ///< Blocks the tier holds (>= 1).
  /// @brief An entry not looked up, loaded or stored for longer than this is dropped (never
  /// returned, freed by expire()). The default never expires.
  std::chrono::nanoseconds idle_ttl = std::chrono::nanoseconds::max();
  /// @brief When blocks are copied in (see @ref kvkit::tier_write_policy); warming always is.
  tier_write_policy write = tier_write_policy::on_eviction;
  policy_options_t<Eviction> eviction{};  ///< Settings of the eviction policy.
  /// @brief The clock of the time to live, in nanoseconds from any fixed origin (must not go
  /// backwards). Empty: `std::chrono::steady_clock`; tests pass a manual clock.
  std::function<std::chrono::nanoseconds()> now{};
  host_arena arena{};  ///< Memory of the K/V bytes.
};

/// @brief A bounded host-memory tier: blocks the pool evicts are demoted here and promoted back
/// on a later admission.
///
/// Holds up to `capacity_blocks` blocks; their K/V bytes live in one arena (`capacity x
/// layout.block_bytes_all_layers()` bytes), their keys in an open-addressing index. When full, a
/// store evicts the entry that @p Eviction chooses; every policy of the catalogue works, indexed by
/// the tier's slot ids exactly as in the pool (`leaves_only` policies are offered only entries
/// without children in the tier). A hit is verified against the block's tokens, parent key and
/// namespace (tenant salt, session, extra keys compared exactly), so tenants never share an entry.
///
/// **Partial chains.** Demotion is tail first (the pool evicts chain tails first) and promotion
/// keeps the tier's copy, so the parent of an entry is often still in the pool: an entry whose
/// parent is not in the tier (a *fragment root*) is normal, and is reachable whenever the pool
/// or another tier holds its parent. When a parent entry arrives later, its waiting children are
/// linked under it. When an entry with children is dropped (eviction by a policy that is not
/// `leaves_only`, expiry, invalidation of its namespace only), its children stay as fragment roots
/// (counted in `tier_stats::detached`) rather than being dropped with it: their parent may still
/// be in the pool. A fragment nobody can reach gets no hits, so the eviction policy removes it
/// like any cold entry; the idle time to live bounds its life.
///
/// A hit refreshes its entries for the policy and the time to live as the pool does when a
/// sequence releases blocks: tail first, so a parent is never older than its children.
///
/// Not thread-safe; the owner serialises calls.
/// @tparam Eviction An @ref kvkit::eviction_policy (default @ref kvkit::lru_eviction).
template <class Eviction = lru_eviction>
class host_tier {
  static_assert(eviction_policy<Eviction>,
                "kvkit::host_tier: Eviction must satisfy kvkit::eviction_policy");

 public:
  /// @brief Tier name used in statistics and reports.
  static constexpr std::string_view name = "host";
  /// @brief Settings type.
  using options = host_tier_options<Eviction>;

  /// @brief Makes a tier for blocks of @p layout.
  /// @param layout Shape of every block (`num_blocks` is ignored).
  /// @param opts Capacity, time to live, policy settings, clock, arena.
  /// @return The tier, or `errc::invalid_config` naming the bad value (capacity 0 or above 2^31,
  /// a bad layout, arena too large or not allocated).
  [[nodiscard]] static result<host_tier> create(const kv_layout& layout, options opts);

  /// @brief Moves a tier.
  /// @param other The tier moved from (left empty).
  host_tier(host_tier&& other) noexcept = default;
  /// @brief Moves a tier.
  /// @param other The tier moved from (left empty).
  /// @return This tier.
  host_tier& operator=(host_tier&& other) noexcept = default;

  /// @brief Shape of the blocks (`num_blocks` is the capacity).
  /// @return The layout.
  [[nodiscard]] const kv_layout& layout() const noexcept { return layout_; }

  /// @brief Length of the longest leading run of @p chain held and verified; moves no bytes and
  /// changes no recency.
  /// @param chain The chain.
  /// @return Blocks.
  [[nodiscard]] std::uint32_t lookup(const tier_chain& chain);

  /// @brief Copies the K/V of the longest verified leading run of @p chain into @p dst.
  /// @param chain The chain.
  /// @param dst One view per block to fill (at most `dst.size()` blocks are loaded).
  /// @return Blocks loaded (their bytes are in `dst[0, n)`).
  [[nodiscard]] std::uint32_t load(const tier_chain& chain, std::span<const kv_block_view> dst);

  /// @brief Copies @p blocks in, if the tier accepts @p reason; evicts for room.
  ///
  /// A block already held (same key, tokens, parent and namespace) is only refreshed. A block
  /// whose key is held with other content (a collision) or whose namespace key is held by other
  /// request keys is not stored (`rejected_blocks`, `content_mismatch`); nor is a block whose
  /// token count is not the block size, without bytes, or whose key equals its parent key.
  /// @param blocks The blocks, in any order.
  /// @param reason Why they are offered.
  /// @return Blocks of @p blocks that the tier holds afterwards (0 when @p reason is not accepted).
  std::uint32_t store(std::span<const tier_block> blocks, tier_store_reason reason);

  /// @brief Drops every entry of every namespace in @p scope.
  /// @param scope Tenant, session or extra key.
  /// @return Entries dropped; always complete.
  tier_invalidation invalidate(tier_scope scope);

  /// @brief Drops every entry idle longer than the time to live (and every entry the eviction
  /// policy reports expired, for policies with `pop_expired`).
  /// @return Entries dropped.
  std::uint64_t expire();

  /// @brief Whether the tier stores blocks offered for @p reason.
  /// @param reason Why blocks are offered.
  /// @return True for warm, and for eviction or commit as `host_tier_options::write` says.
  [[nodiscard]] bool accepts(tier_store_reason reason) const noexcept {
    switch (reason) {
      case tier_store_reason::eviction:
        return write_ == tier_write_policy::on_eviction;
      case tier_store_reason::commit:
        return write_ == tier_write_policy::through;
      case tier_store_reason::warm:
        return true;
    }
    return false;
  }

  /// @brief Counters and gauges.
  /// @return A snapshot.
  [[nodiscard]] tier_stats stats() const;

  /// @brief Blocks held now.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return used_; }

  /// @brief Whether the tier holds a block with key @p key (no verification, no recency change).
  /// @param key A content key.
  /// @return True when held.
  [[nodiscard]] bool contains(std::uint64_t key) const noexcept {
    return index_.find(key) != detail::flat_u64_map::npos;
  }

  /// @brief The eviction policy (read-only), indexed by the tier's slot ids.
  /// @return The policy.
  [[nodiscard]] const Eviction& eviction() const noexcept { return evict_; }

  /// @brief Checks every internal invariant (O(capacity)); for tests.
  ///
  /// Checked: the index maps exactly the held keys to their slots; every held entry is linked
  /// under the entry of its parent key if the tier holds it, else waits in the list of its parent
  /// key; the eviction policy holds exactly the candidates (all entries, or the entries without
  /// children for `leaves_only` policies); namespace lists and counts agree; the free list holds
  /// exactly the unused slots.
  /// @return Ok, or `errc::invalid_argument` describing the first violation.
  [[nodiscard]] status check_invariants() const;

 private:
  static constexpr std::uint32_t npos = detail::flat_u64_map::npos;
  enum class removal : std::uint8_t { evicted, expired, invalidated };

  struct ns_record {
    bool live = false;
    std::uint64_t key = 0;
    std::uint64_t salt = 0;
    std::uint64_t session = 0;
    std::vector<std::uint64_t> extra_keys;
    std::uint32_t head = npos;  // first entry of the namespace
    std::uint32_t count = 0;
  };

  struct arena_deleter {
    std::function<void(void*, std::size_t)> deallocate;
    std::size_t bytes = 0;
    void operator()(std::byte* p) const noexcept;
  };

  host_tier(const kv_layout& layout, options&& opts,
            std::unique_ptr<std::byte[], arena_deleter> arena);

  [[nodiscard]] std::uint32_t walk(const tier_chain& chain, std::size_t max_blocks,
                                   std::vector<std::uint32_t>* found);
  [[nodiscard]] bool same_namespace(std::uint32_t ns, const tier_namespace& n) const noexcept;
  [[nodiscard]] bool holds(std::uint32_t s, const tier_namespace& ns, std::uint64_t parent,
                           std::span<const token_id> tokens) const noexcept;
  [[nodiscard]] bool is_expired(std::uint32_t s) const;
  [[nodiscard]] bool is_candidate(std::uint32_t s) const noexcept;
  void refresh(std::span<const std::uint32_t> slots, std::uint32_t request_class);
  [[nodiscard]] std::uint32_t acquire_slot();
  [[nodiscard]] std::uint32_t find_or_create_ns(const tier_namespace& n);
  void link(std::uint32_t s, std::uint32_t request_class);
  void remove(std::uint32_t s, removal why);
  void policy_insert(std::uint32_t s);
  void policy_erase(std::uint32_t s) noexcept;
  void idle_push_back(std::uint32_t s) noexcept;
  void idle_unlink(std::uint32_t s) noexcept;
  void waiting_push(std::uint64_t parent_key, std::uint32_t s);
  void waiting_unlink(std::uint32_t s);
  [[nodiscard]] std::byte* slot_bytes(std::uint32_t s) const noexcept {
    return arena_.get() + std::size_t{s} * block_bytes_;
  }
  [[nodiscard]] std::span<const token_id> slot_tokens(std::uint32_t s) const noexcept {
    return {tokens_.data() + std::size_t{s} * layout_.block_size, layout_.block_size};
  }

  kv_layout layout_;
  std::uint32_t capacity_;
  std::size_t block_bytes_;
  std::size_t segment_bytes_;
  std::int64_t ttl_;
  tier_write_policy write_;
  std::function<std::chrono::nanoseconds()> clock_;
  std::int64_t now_ = 0;  // read once per operation
  std::unique_ptr<std::byte[], arena_deleter> arena_;
  Eviction evict_;

  detail::flat_u64_map index_;     // key -> slot
  detail::flat_u64_map waiting_;   // parent key -> first fragment root waiting for it
  detail::flat_u64_map ns_index_;  // namespace key -> namespace record

  std::vector<std::uint64_t> key_;
  std::vector<std::uint64_t> parent_key_;
  std::vector<std::uint32_t> ns_of_;
  std::vector<token_id> tokens_;
  std::vector<std::uint32_t> up_;        // parent slot, or npos for a fragment root
  std::vector<std::uint32_t> child_;     // first child slot
  std::vector<std::uint32_t> sib_next_;  // siblings (or the fragment roots waiting for one key)
  std::vector<std::uint32_t> sib_prev_;
  std::vector<std::uint32_t> ns_next_;
  std::vector<std::uint32_t> ns_prev_;
  std::vector<std::uint32_t> idle_next_;
  std::vector<std::uint32_t> idle_prev_;
  std::vector<std::int64_t> last_;
  std::vector<std::uint8_t> flags_;
  std::vector<std::uint32_t> free_;
  std::uint32_t idle_head_ = npos;
  std::uint32_t idle_tail_ = npos;
  std::uint32_t used_ = 0;

  std::vector<ns_record> ns_;
  std::vector<std::uint32_t> free_ns_;
  std::vector<std::uint32_t> scratch_;

  tier_stats stats_{};
  detail::latency_histogram latency_{};
  std::uint64_t tick_ = 0;
};

}  // namespace kvkit

#include <kvkit/tiers/detail/host_tier_impl.hpp>
