// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `prefix_cache`: a paged KV cache that pays for a shared prompt prefix once, composed of
/// an allocator, a matcher, an eviction policy and a storage policy.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/error.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/metrics.hpp>
#include <kvkit/types.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace kvkit {

/// @brief Configuration of a @ref prefix_cache.
struct cache_config {
  std::uint32_t num_blocks = 0;   ///< Blocks in the pool (>= 1); must equal the storage's.
  std::uint32_t block_size = 16;  ///< Tokens per block (power of two); must equal the storage's.
  std::optional<std::uint64_t> seed{};  ///< Hash key; a random one per cache when empty.
};

/// @brief Per-request keys and class, given at admission.
///
/// Requests share cached blocks only when their tenant salt and extra keys are equal, whatever
/// their tokens: the keys root every chain of hashes and are compared exactly.
struct request_options {
  std::uint64_t tenant_salt = 0;  ///< Tenant salt (0: the shared namespace).
  std::uint64_t session_id = 0;   ///< Conversation session (0: none); part of the keys.
  std::span<const std::uint64_t> extra_keys{};  ///< Adapter id, multimodal content ids, version...
  std::uint32_t request_class = 0;  ///< Class (tier): per-class metrics, eviction priority.
};

/// @brief Request classes are numbered below this bound.
inline constexpr std::uint32_t max_request_classes = 1024;

/// @brief Handle of a live sequence. A stale handle (finished sequence) is detected, not reused.
struct sequence_id {
  std::uint32_t index = 0xFFFFFFFFu;  ///< Slot.
  std::uint32_t generation = 0;       ///< Generation of the slot when issued.
  /// @brief Equality.
  /// @return True when both fields are equal.
  friend bool operator==(const sequence_id&, const sequence_id&) = default;
};

/// @brief What admit() did.
struct admission {
  sequence_id id;                   ///< The new sequence.
  request_stats request;            ///< Prompt and cached token counts.
  std::uint32_t cached_blocks = 0;  ///< Leading blocks taken from the cache.
  std::uint32_t new_blocks = 0;     ///< Blocks allocated for the rest of the prompt.
};

/// @brief What pin() did.
struct pin_info {
  sequence_id id;                   ///< Handle holding the pinned blocks; finish() unpins.
  std::uint32_t pinned_tokens = 0;  ///< Leading prompt tokens pinned (whole cached blocks).
};

/// @brief What commit() did.
struct commit_info {
  std::uint32_t registered_blocks = 0;    ///< Full blocks that became reusable by others.
  std::uint32_t deduplicated_blocks = 0;  ///< Full blocks replaced by an identical cached block
                                          ///< (the sequence's block table changed there).
};

/// @brief Read-only view of a live sequence. Valid until the next call that changes the cache.
struct sequence_view {
  std::span<const token_id> tokens;  ///< Prompt and appended tokens.
  std::span<const block_id> blocks;  ///< Block table: token `i` lives in `blocks[i / block_size]`.
  std::uint32_t computed_tokens =
      0;                  ///< Leading tokens whose K/V is written (cached or committed).
  request_stats request;  ///< Prompt and cached token counts at admission.
};

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
template <class Allocator, class Matcher, class Eviction, class Storage>
class prefix_cache {
  static_assert(detail::allocator_constructible<Allocator>,
                "kvkit::prefix_cache: Allocator must be constructible from the block count: "
                "Allocator(std::uint32_t capacity)");
  static_assert(detail::allocator_has_allocate<Allocator>,
                "kvkit::prefix_cache: Allocator must provide `kvkit::block_id allocate()`");
  static_assert(detail::allocator_has_deallocate<Allocator>,
                "kvkit::prefix_cache: Allocator must provide `void deallocate(kvkit::block_id)`");
  static_assert(detail::allocator_has_free_count<Allocator>,
                "kvkit::prefix_cache: Allocator must provide `std::uint32_t free_count() const`");
  static_assert(detail::matcher_constructible<Matcher>,
                "kvkit::prefix_cache: Matcher must be constructible as "
                "Matcher(std::uint32_t capacity, std::uint64_t seed)");
  static_assert(detail::matcher_has_cursor<Matcher>,
                "kvkit::prefix_cache: Matcher must define a copyable nested type `cursor`");
  static_assert(detail::matcher_has_root<Matcher>,
                "kvkit::prefix_cache: Matcher must provide "
                "`cursor root(std::uint32_t ns_node, std::uint64_t ns_key) const`");
  static_assert(detail::matcher_has_child<Matcher>,
                "kvkit::prefix_cache: Matcher must provide "
                "`cursor child(const cursor&, std::span<const kvkit::token_id>) const`");
  static_assert(detail::matcher_has_find<Matcher>,
                "kvkit::prefix_cache: Matcher must provide "
                "`template <class Verify> kvkit::block_id find(const cursor&, Verify&&) const`");
  static_assert(detail::matcher_has_insert<Matcher>,
                "kvkit::prefix_cache: Matcher must provide "
                "`void insert(const cursor&, kvkit::block_id)`");
  static_assert(detail::matcher_has_erase<Matcher>,
                "kvkit::prefix_cache: Matcher must provide `void erase(kvkit::block_id)`");
  static_assert(detail::eviction_constructible<Eviction>,
                "kvkit::prefix_cache: Eviction must be constructible from the block count: "
                "Eviction(std::uint32_t capacity)");
  static_assert(detail::eviction_has_insert<Eviction>,
                "kvkit::prefix_cache: Eviction must provide `void insert(kvkit::block_id)`");
  static_assert(detail::eviction_has_erase<Eviction>,
                "kvkit::prefix_cache: Eviction must provide `void erase(kvkit::block_id)`");
  static_assert(detail::eviction_has_victim<Eviction>,
                "kvkit::prefix_cache: Eviction must provide `kvkit::block_id victim()`");
  static_assert(detail::eviction_has_size<Eviction>,
                "kvkit::prefix_cache: Eviction must provide `std::uint32_t size() const`");
  static_assert(std::movable<Storage>, "kvkit::prefix_cache: Storage must be movable");
  static_assert(
      detail::storage_has_layout<Storage>,
      "kvkit::prefix_cache: Storage must provide `const kvkit::kv_layout& layout() const`");
  static_assert(detail::storage_has_copy_block<Storage>,
                "kvkit::prefix_cache: Storage must provide "
                "`void copy_block(kvkit::block_id src, kvkit::block_id dst)`");
  static_assert(detail::storage_has_bytes<Storage>,
                "kvkit::prefix_cache: Storage must provide `std::size_t bytes() const`");

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

  /// @brief Makes a cache over @p storage.
  /// @param config Pool size, block size and hash seed.
  /// @param storage K/V storage whose layout has the same `num_blocks` and `block_size`.
  /// @param eviction Settings of the eviction policy.
  /// @return The cache, or `errc::invalid_config` (zero or non-power-of-two block size, zero
  /// blocks) or `errc::layout_mismatch` (storage layout disagrees), naming the values.
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

  /// @brief Blocks that can be given to new tokens now: free plus evictable.
  /// @return The count.
  [[nodiscard]] std::uint32_t available_blocks() const noexcept;
  /// @brief Tokens per block.
  /// @return The block size.
  [[nodiscard]] std::uint32_t block_size() const noexcept { return block_size_; }
  /// @brief Blocks in the pool.
  /// @return The capacity.
  [[nodiscard]] std::uint32_t num_blocks() const noexcept { return num_blocks_; }
  /// @brief The hash seed in use.
  /// @return The seed.
  [[nodiscard]] std::uint64_t seed() const noexcept { return ns_hasher_.seed(); }
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

 private:
  using cursor = typename Matcher::cursor;
  using traits = policy_traits<Eviction>;
  enum class block_state : std::uint8_t { free, owned, cached };

  struct ns_entry {
    std::uint64_t salt = 0;
    std::uint64_t session = 0;
    bool indexed = false;
    std::vector<std::uint64_t> extra_keys;
    std::uint64_t key = 0;
    block_id first_child = invalid_block;
    std::uint32_t refs = 0;
    bool live = false;
  };

  struct seq_state {
    std::uint32_t generation = 1;
    bool active = false;
    std::uint32_t ns = 0;
    std::uint32_t request_class = 0;
    std::vector<token_id> tokens;
    std::vector<block_id> table;
    std::uint32_t computed = 0;
    std::uint32_t committed_blocks = 0;
    std::uint32_t prompt_tokens = 0;
    std::uint32_t cached_tokens = 0;
    std::uint32_t last_node = 0;
    cursor chain{};
    bool pin = false;
  };

  prefix_cache(const cache_config& config, std::uint64_t seed, Storage storage,
               const eviction_options& eviction);

  [[nodiscard]] std::uint64_t ns_key(const request_options& o) const noexcept;
  [[nodiscard]] std::uint32_t find_ns(const request_options& o, std::uint64_t key) const;
  std::uint32_t acquire_ns(const request_options& o, std::uint64_t key);
  void maybe_release_ns(std::uint32_t ns);
  [[nodiscard]] block_id& child_head(std::uint32_t node) noexcept;
  std::uint32_t walk(std::uint32_t ns, std::span<const token_id> prompt, std::uint32_t max_blocks,
                     std::vector<block_id>* hits, cursor* end, std::uint32_t* end_node) const;
  [[nodiscard]] bool verify(block_id b, std::uint32_t parent,
                            std::span<const token_id> tokens) const noexcept;
  [[nodiscard]] bool is_expired(block_id b) const noexcept;
  [[nodiscard]] bool in_policy(block_id b) const noexcept;
  struct partial_match {
    block_id source = invalid_block;
    std::uint32_t tokens = 0;
  };
  [[nodiscard]] partial_match find_partial(const cursor& at, std::uint32_t parent,
                                           std::span<const token_id> tokens) const;
  seq_state& new_sequence(std::uint32_t* index);
  [[nodiscard]] result<seq_state*> lookup(sequence_id seq, const char* op);
  [[nodiscard]] result<const seq_state*> lookup(sequence_id seq, const char* op) const;
  [[nodiscard]] std::span<const token_id> block_tokens(std::span<const token_id> all,
                                                       std::uint32_t k) const noexcept;
  void take_ref(block_id b, std::uint32_t request_class);
  void drop_ref(block_id b, bool detached = false);
  block_id allocate_block();
  void evict_one();
  std::uint32_t evict_subtree(block_id root, bool root_in_policy);
  void free_cached(block_id b);
  void after_removal(std::uint32_t parent);
  std::uint32_t invalidate_ns(std::uint32_t ns);
  void link_cached(block_id b, std::uint32_t parent, std::span<const token_id> tokens);
  void unlink_cached(block_id b);
  void touch(block_id b, std::uint32_t request_class);

  std::uint32_t num_blocks_;
  std::uint32_t block_size_;
  std::uint32_t block_shift_;
  xxh3_hasher ns_hasher_;
  Allocator alloc_;
  Matcher matcher_;
  Eviction evict_;
  Storage storage_;

  std::vector<std::uint32_t> ref_;
  std::vector<std::uint32_t> parent_;
  std::vector<block_id> first_child_;
  std::vector<block_id> next_sibling_;
  std::vector<block_id> prev_sibling_;
  std::vector<block_state> state_;
  std::vector<std::uint32_t> first_generated_;  // offset of the first generated token
  std::vector<token_id> tokens_;

  std::vector<ns_entry> ns_;
  std::vector<std::uint32_t> free_ns_;
  std::unordered_multimap<std::uint64_t, std::uint32_t> ns_index_;

  std::vector<seq_state> seqs_;
  std::vector<std::uint32_t> free_seqs_;

  std::vector<block_id> scratch_;
  std::vector<block_id> subtree_;
  std::uint64_t tick_ = 0;
  std::uint32_t cached_count_ = 0;
  std::uint32_t referenced_count_ = 0;
  std::uint32_t active_count_ = 0;
  std::uint32_t evictable_count_ = 0;
  cache_stats counters_;
  std::vector<class_stats> class_stats_;
};

}  // namespace kvkit

#include <kvkit/detail/prefix_cache_impl.hpp>
