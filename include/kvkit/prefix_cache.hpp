// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `prefix_cache`: a paged KV cache that pays for a shared prompt prefix once, composed of
/// an allocator, a matcher, an eviction policy and a storage policy.
#pragma once

#include <kvkit/cache_types.hpp>
#include <kvkit/concepts.hpp>
#include <kvkit/detail/block_tree.hpp>
#include <kvkit/detail/cache_metrics.hpp>
#include <kvkit/detail/miss_record.hpp>
#include <kvkit/detail/namespace_table.hpp>
#include <kvkit/detail/sequence_table.hpp>
#include <kvkit/error.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/metrics.hpp>
#include <kvkit/types.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kvkit {

/// @brief A paged KV cache that reuses the K/V of shared prompt prefixes.
///
/// A request's life: admit() matches the prompt against cached blocks (taking a reference on each
/// hit) and allocates blocks for the rest; the runtime computes K/V of the uncached tokens into
/// those blocks and calls commit(), which makes every full block reusable by other requests;
/// append() adds decoded tokens (allocating blocks as needed), commit() again after their K/V is
/// written; finish() drops the references, and the cached blocks become evictable. Generated
/// tokens are cached like prompt tokens, so a next conversation turn reuses them.
///
/// Guarantees: a cached block is never evicted while referenced; eviction never leaves a cached
/// block unreachable (a victim with cached children is evicted with its subtree); a hit is verified
/// against the stored tokens and parent link, so a hash collision never returns another prompt's
/// K/V; every failed call returns an @ref error and leaves the cache exactly as it was.
/// Also: partial-block reuse with copy on write (matchers with `find_partial`), fork() with copy on
/// write of a shared partially filled block, pinning, invalidation by tenant / namespace / key,
/// time-based expiry (eviction policies with `pop_expired`), per-class metrics.
/// Not thread-safe: one thread at a time (see `kvkit::synchronized_cache`).
///
/// @tparam Allocator A @ref kvkit::block_allocator.
/// @tparam Matcher A @ref kvkit::prefix_matcher.
/// @tparam Eviction An @ref kvkit::eviction_policy.
/// @tparam Storage A @ref kvkit::kv_storage.
/// @tparam Listener A @ref kvkit::cache_listener, told about every block stored and removed
/// (@ref kvkit::no_listener, the default, costs nothing).
template <class Allocator, class Matcher, class Eviction, class Storage,
          class Listener = no_listener>
class prefix_cache {
  static_assert(detail::check_policies<Allocator, Matcher, Eviction, Storage, Listener>::value);

 public:
  /// @brief The allocator policy.
  using allocator_type = Allocator;
  /// @brief The matcher policy.
  using matcher_type = Matcher;
  /// @brief The eviction policy.
  using eviction_type = Eviction;
  /// @brief The storage policy.
  using storage_type = Storage;

  /// @brief Settings of the eviction policy (`Eviction::options`, or none).
  using eviction_options = policy_options_t<Eviction>;

  /// @brief The listener.
  using listener_type = Listener;

  /// @brief Makes a cache over @p storage. The pool's shape is the storage's: `num_blocks` blocks
  /// of `block_size` tokens, from `storage.layout()`.
  /// @param config Hash seed.
  /// @param storage K/V storage.
  /// @param eviction Settings of the eviction policy.
  /// @return The cache, or `errc::invalid_config` naming the storage layout's field and what is
  /// accepted (zero or non-power-of-two block size, zero or more than 2^31 blocks).
  [[nodiscard]] static result<prefix_cache> create(const cache_config& config, Storage storage,
                                                   const eviction_options& eviction = {});

  /// @brief Cached prompt tokens @p prompt would get from admit() now, if admit() succeeds (this
  /// probe does not check that the rest of the prompt fits in the pool). Changes nothing.
  /// @param prompt The prompt's tokens.
  /// @param options Namespace keys.
  /// @return Cached leading tokens (whole blocks, plus a partial block's shared tokens for
  /// matchers with `find_partial`), always less than the prompt's length.
  [[nodiscard]] std::uint32_t match(std::span<const token_id> prompt,
                                    const request_options& options = {}) const;

  /// @brief Why admit() of @p prompt would stop its match where it does, if admitted now (this
  /// probe does not check that the rest of the prompt fits in the pool). Changes nothing and
  /// counts nothing. Unlike admit(), it answers for a prompt the pool can never hold:
  /// `miss_reason::pool_too_small`.
  /// @param prompt The prompt's tokens.
  /// @param options Namespace keys.
  /// @return The reason and the block where the match stops (see @ref kvkit::miss_reason; an empty
  /// prompt gives `partial_last_block` at block 0).
  [[nodiscard]] miss_info explain_miss(std::span<const token_id> prompt,
                                       const request_options& options = {}) const;

  /// @brief Starts a sequence: takes the cached prefix of @p prompt and allocates blocks for the
  /// rest, evicting unreferenced cached blocks when the pool has too few free ones.
  /// @param prompt The prompt's tokens (not empty).
  /// @param options Tenant salt, extra keys and request class.
  /// @return The admission, or `errc::empty_input` / `errc::out_of_blocks` (cache unchanged).
  [[nodiscard]] result<admission> admit(std::span<const token_id> prompt,
                                        const request_options& options = {});

  /// @brief Records that the K/V of the first @p num_computed_tokens tokens of @p seq is written,
  /// and registers every full block among them as cached (reusable by other requests).
  ///
  /// When a block with the same content and prefix is already cached (computed meanwhile by
  /// another sequence), the sequence switches to that block and its own block is freed: re-read
  /// its block table after a commit that reports deduplicated blocks.
  /// @param seq A live sequence.
  /// @param num_computed_tokens New count of computed tokens (from the current count up to the
  /// sequence's length).
  /// @return What was registered, or `errc::unknown_sequence` / `errc::finished_sequence` /
  /// `errc::invalid_argument` (cache unchanged).
  [[nodiscard]] result<commit_info> commit(sequence_id seq, std::uint32_t num_computed_tokens);

  /// @brief commit() of every token of @p seq.
  /// @param seq A live sequence.
  /// @return As commit(sequence_id, std::uint32_t).
  [[nodiscard]] result<commit_info> commit(sequence_id seq);

  /// @brief Adds tokens (decoded ones) to @p seq, allocating blocks for them as needed.
  /// @param seq A live sequence.
  /// @param tokens The new tokens (not empty).
  /// @return Ok, or `errc::unknown_sequence` / `errc::finished_sequence` / `errc::empty_input` /
  /// `errc::out_of_blocks` (cache unchanged).
  [[nodiscard]] status append(sequence_id seq, std::span<const token_id> tokens);

  /// @brief Ends @p seq: drops its references; its cached blocks become evictable, its other
  /// blocks free.
  /// @param seq A live sequence.
  /// @return Ok, or `errc::unknown_sequence` / `errc::finished_sequence` (cache unchanged).
  [[nodiscard]] status finish(sequence_id seq);

  /// @brief Makes a second sequence that shares every block of @p seq (parallel sampling, beam
  /// search). A partially filled last block stays shared until either sequence appends to it;
  /// append() then copies it (copy on write), so neither sees the other's tokens.
  /// @param seq A live sequence whose tokens are all computed (commit() first).
  /// @return The new sequence, or `errc::unknown_sequence` / `errc::finished_sequence` /
  /// `errc::invalid_argument` (uncomputed tokens; cache unchanged).
  [[nodiscard]] result<sequence_id> fork(sequence_id seq);

  /// @brief Pins the cached prefix of @p prompt: its whole cached blocks are held, so no eviction
  /// policy can evict them, until finish() is called on the returned id. Warming a prefix is
  /// admit() + prefill + commit() (then pin() and finish(), or keep the sequence).
  /// @param prompt The prefix's tokens.
  /// @param options Keys of the namespace.
  /// @return The pin, or `errc::empty_input` / `errc::invalid_argument` (nothing of the prompt is
  /// cached; cache unchanged).
  [[nodiscard]] result<pin_info> pin(std::span<const token_id> prompt,
                                     const request_options& options = {});

  /// @brief Drops everything cached under every namespace for which @p pred is true.
  ///
  /// Unreferenced blocks are freed now; referenced ones stay with their sequences, are never hit
  /// again, and are freed when released. New requests with the same keys start afresh.
  /// @tparam Pred Callable `bool(std::uint64_t tenant_salt, std::uint64_t session_id,
  /// std::span<const std::uint64_t> extra_keys)`.
  /// @param pred Selects namespaces.
  /// @return Blocks freed now.
  template <class Pred>
  std::uint32_t invalidate_if(Pred&& pred);
  /// @brief Invalidates every namespace of tenant @p tenant_salt (see invalidate_if()).
  /// @param tenant_salt The tenant.
  /// @return Blocks freed now.
  std::uint32_t invalidate_tenant(std::uint64_t tenant_salt);
  /// @brief Invalidates every namespace of session @p session_id (closes the session).
  /// @param session_id The session.
  /// @return Blocks freed now.
  std::uint32_t invalidate_session(std::uint64_t session_id);
  /// @brief Invalidates every namespace whose extra keys contain @p key (e.g. a version).
  /// @param key An extra key value.
  /// @return Blocks freed now.
  std::uint32_t invalidate_key(std::uint64_t key);

  /// @brief Drops everything cached, in every namespace (invalidate_if() with a predicate that
  /// is always true; a listener is told `on_cleared()` first).
  /// @return Blocks freed now.
  std::uint32_t clear();

  /// @brief Frees every cached block the eviction policy reports expired (policies with
  /// `pop_expired`; a no-op otherwise). Expired blocks are never hit, even before this runs.
  /// @return Blocks freed.
  std::uint32_t expire();

  /// @brief Metrics of one request class.
  /// @param request_class The class.
  /// @return Its counters (all zero for a class never seen).
  [[nodiscard]] class_stats stats(std::uint32_t request_class) const;

  /// @brief The live sequence @p seq.
  /// @param seq A sequence handle.
  /// @return A view (valid until the cache next changes), or `errc::unknown_sequence` /
  /// `errc::finished_sequence`.
  [[nodiscard]] result<sequence_view> sequence(sequence_id seq) const;

  /// @brief Counters and gauges.
  /// @return A snapshot.
  [[nodiscard]] cache_stats stats() const;

  /// @brief Checks every internal invariant (O(blocks + sequences)); for tests and debugging.
  ///
  /// Checked: each block is exactly one of free / private to one sequence / cached; reference
  /// counts equal the number of block tables holding the block; a free block is held by nobody;
  /// the allocator and eviction policy sizes agree; every cached block's parent is cached or a live
  /// namespace and holds it as a child; a referenced block's parent is referenced; and every cached
  /// block is found by the matcher from its namespace root (no orphan, no stale entry).
  /// @return Ok, or `errc::invalid_argument` describing the first violation.
  [[nodiscard]] status check_invariants() const;

  /// @brief The chained content key of cached block @p b: the keyed xxHash3 of its parent's key
  /// and its tokens, rooted at its namespace's key (which hashes the seed, tenant salt, session
  /// and extra keys). Equal keys name equal prefixes in equal namespaces, up to hash collisions.
  /// @param b A cached block (`sequence()` block tables list them).
  /// @return The key (0 for a block that is not cached).
  [[nodiscard]] std::uint64_t block_key(block_id b) const noexcept;

  /// @brief Blocks that can be given to new tokens now: free plus evictable.
  /// @return The count.
  [[nodiscard]] std::uint32_t available_blocks() const noexcept;
  /// @brief Tokens per block.
  /// @return The block size.
  [[nodiscard]] std::uint32_t block_size() const noexcept { return tree_.block_size(); }
  /// @brief Blocks in the pool.
  /// @return The capacity.
  [[nodiscard]] std::uint32_t num_blocks() const noexcept { return tree_.capacity(); }
  /// @brief The hash seed in use.
  /// @return The seed.
  [[nodiscard]] std::uint64_t seed() const noexcept { return namespaces_.seed(); }
  /// @brief The K/V storage.
  /// @return The storage.
  [[nodiscard]] Storage& storage() noexcept { return storage_; }
  /// @copydoc storage()
  [[nodiscard]] const Storage& storage() const noexcept { return storage_; }
  /// @brief The allocator policy (read-only).
  /// @return The allocator.
  [[nodiscard]] const Allocator& allocator() const noexcept { return alloc_; }
  /// @brief The matcher policy (read-only).
  /// @return The matcher.
  [[nodiscard]] const Matcher& matcher() const noexcept { return matcher_; }
  /// @brief The eviction policy (read-only).
  /// @return The eviction policy.
  [[nodiscard]] const Eviction& eviction() const noexcept { return evict_; }
  /// @brief The listener.
  /// @return The listener.
  [[nodiscard]] Listener& listener() noexcept { return listener_; }
  /// @copydoc listener()
  [[nodiscard]] const Listener& listener() const noexcept { return listener_; }

 private:
  /// @cond KVKIT_PRIVATE
  using cursor = typename Matcher::cursor;
  using sequence_record = detail::sequence_state<cursor>;
  using eviction_traits = policy_traits<Eviction>;
  using matcher_ops = matcher_traits<Matcher>;

  /// Brackets one operation for an eviction policy with begin_batch() / end_batch().
  class batch_scope {
   public:
    explicit batch_scope(const Eviction& e) : e_(e) { eviction_traits::begin_batch(e_); }
    ~batch_scope() { eviction_traits::end_batch(e_); }
    batch_scope(const batch_scope&) = delete;
    batch_scope& operator=(const batch_scope&) = delete;

   private:
    const Eviction& e_;
  };

  /// Tells the listener, when one operation that can store or remove blocks returns, that the
  /// operation is over (its on_operation_end(), when it has one).
  class operation_scope {
   public:
    explicit operation_scope(Listener& l) noexcept : l_(l) {}
    ~operation_scope() {
      if constexpr (listener_has_on_operation_end<Listener>)
        l_.on_operation_end();
    }
    operation_scope(const operation_scope&) = delete;
    operation_scope& operator=(const operation_scope&) = delete;

   private:
    Listener& l_;
  };

  /// Where a prompt's lookup stopped.
  struct match_result {
    std::uint32_t hit_blocks = 0;      // leading whole blocks found
    cursor chain{};                    // cursor at the last found block (or the root)
    std::uint32_t node = 0;            // its tree node
    block_id partial = invalid_block;  // block sharing the most of the next block's tokens
    std::uint32_t partial_tokens = 0;  // tokens it shares
  };

  prefix_cache(std::uint64_t seed, std::uint32_t num_blocks, std::uint32_t block_size,
               Storage storage, const eviction_options& eviction);

  // ---- lookup (read only) ----
  [[nodiscard]] std::uint32_t find_namespace(const request_options& o, std::uint64_t key) const;
  void walk(std::uint32_t ns, std::span<const token_id> prompt, std::uint32_t max_blocks,
            std::vector<block_id>* hits, match_result& m) const;
  void walk_ahead(std::span<const token_id> prompt, std::uint32_t max_blocks,
                  std::vector<block_id>* hits, match_result& m) const;
  void find_partial(std::span<const token_id> tokens, match_result& m) const;
  /// Why a match stopped at prompt block @p k under node @p node (cursor @p chain) of namespace
  /// @p ns (invalid_block: none yet; @p ns_key its key). Miss side only (prefix_cache_misses.hpp).
  [[nodiscard]] detail::miss_decision stop_reason(std::uint32_t ns, std::uint64_t ns_key,
                                                  std::span<const token_id> prompt,
                                                  std::uint32_t eligible, std::uint32_t k,
                                                  std::uint32_t node, const cursor& chain) const;
  /// Whether lookups and releases load a few blocks ahead: in a pool whose per-block state is
  /// larger than a core's caches (at least 2^16 blocks: 6 MiB of nodes and tokens at block size
  /// 16), a block's state is rarely cached, and overlapping the loads pays; in a smaller pool it
  /// is, and the extra instructions would only cost.
  [[nodiscard]] bool prefetching() const noexcept { return tree_.capacity() >= (1u << 16); }
  [[nodiscard]] bool verify(block_id b, std::uint32_t parent,
                            std::span<const token_id> tokens) const noexcept;
  [[nodiscard]] bool expired(block_id b) const noexcept;
  [[nodiscard]] bool in_policy(block_id b) const noexcept;
  [[nodiscard]] std::span<const token_id> block_tokens(std::span<const token_id> all,
                                                       std::uint32_t k) const noexcept;

  // ---- the block life cycle: every change of a block's state goes through these ----
  block_id allocate_block();
  void take_ref(block_id b, std::uint32_t request_class);
  void drop_ref(block_id b, bool detached);
  void store(sequence_record& s, std::uint32_t k, block_id b, const cursor& at);
  std::uint32_t remove(block_id b, removal_reason why, bool detached,
                       std::uint32_t ns = invalid_block);
  std::uint32_t evict_subtree(block_id root, bool root_in_policy, removal_reason why);
  void evict_one();
  void after_removal(std::uint32_t parent);
  std::uint32_t extend_match(sequence_record& s, std::span<const token_id> prompt,
                             std::uint32_t eligible);
  [[nodiscard]] block_event describe(block_id b, std::uint32_t ns = invalid_block,
                                     bool with_namespace = true) const;

  // ---- namespaces and sequences ----
  std::uint32_t acquire_namespace(const request_options& o, std::uint64_t key);
  void release_namespace_if_unused(std::uint32_t ns);
  std::uint32_t invalidate_namespace(std::uint32_t ns, removal_reason why);
  [[nodiscard]] std::uint32_t root_node(std::uint32_t ns) const noexcept {
    return namespace_node(ns, tree_.capacity());
  }

  Allocator alloc_;
  Matcher matcher_;
  Eviction evict_;
  Storage storage_;
  [[no_unique_address]] Listener listener_;
  detail::block_tree tree_;
  detail::namespace_table namespaces_;
  detail::sequence_table<cursor> sequences_;
  detail::cache_metrics metrics_;
  detail::miss_tracker misses_;    // removal record and content index (miss reasons)
  std::vector<block_id> hits_;     // scratch: blocks a lookup found
  std::vector<block_id> subtree_;  // scratch: a subtree being evicted
  std::uint64_t tick_ = 0;         // logical clock: one tick per request event
  /// @endcond
};

}  // namespace kvkit

#include <kvkit/detail/prefix_cache_impl.hpp>
#include <kvkit/detail/prefix_cache_misses.hpp>
