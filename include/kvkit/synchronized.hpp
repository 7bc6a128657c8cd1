// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `synchronized_cache`: a @ref kvkit::prefix_cache that many threads may call at once,
/// serialised by one mutex.
///
/// Why one `std::mutex` and not shards or a reader-writer lock:
/// - A request's admit + commit + finish is a few microseconds of bookkeeping, far below the
///   prefill or decode step it schedules, so a single lock is rarely the bottleneck.
///   `BM_Synchronized_AdmitFinish` (`benchmarks/core/synchronized_bench.cpp`) measures the lock
///   and its contention beside the unsynchronized cache in the same run. TensorRT-LLM's block
///   manager makes the same choice: one lock around the whole pool.
/// - Sharding by prompt would split the block pool (a shard could run out of blocks while another
///   has free ones) and would lose hits: requests of different tenants' namespaces and requests
///   that share a prompt prefix must see the same tree to share cached blocks.
/// - Even the `const` members (match(), stats()) read state that admit() and commit() change, and
///   most calls write (reference counts, recency), so a `std::shared_mutex` would buy little and
///   costs more per acquisition than `std::mutex`.
///
/// Nothing that points into the cache leaves the lock: sequence() returns a copy
/// (@ref kvkit::sequence_snapshot), and the storage and policies are reached only inside
/// with_lock(), which is also how a scheduler step batches several calls under one acquisition.
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/metrics.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/types.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace kvkit {

/// @brief A copy of a live sequence's state, taken under the lock of a
/// @ref kvkit::synchronized_cache (unlike @ref kvkit::sequence_view, it stays valid whatever other
/// threads do next).
struct sequence_snapshot {
  std::vector<token_id> tokens;       ///< Prompt and appended tokens.
  std::vector<block_id> blocks;       ///< Block table: token `i` lives in `blocks[i / block_size]`.
  std::uint32_t computed_tokens = 0;  ///< Leading tokens whose K/V is written.
  request_stats request;              ///< Prompt and cached token counts at admission.

  /// @brief Field-by-field equality.
  /// @return True when every field is equal.
  friend bool operator==(const sequence_snapshot&, const sequence_snapshot&) = default;
};

/// @brief A @ref kvkit::prefix_cache shared by several threads: every member locks one
/// `std::mutex`, calls the same member of the cache and returns its result.
///
/// Each call is atomic with respect to the others. A sequence of calls that must see a consistent
/// cache (admit, then write K/V into the new blocks, then commit) or that should pay for one lock
/// acquisition only (a scheduler step) goes into with_lock(). Results never refer into the cache:
/// sequence() returns a @ref kvkit::sequence_snapshot.
///
/// The object is movable (the cache and its mutex live on the heap), so create() can return it;
/// moving it while other threads use it is a data race, and a moved-from object may only be
/// destroyed or assigned to.
///
/// @tparam Cache A @ref kvkit::prefix_cache specialisation (or a type with the same members).
template <class Cache>
class synchronized_cache {
 public:
  /// @brief The wrapped cache type.
  using cache_type = Cache;
  /// @brief The storage policy of the cache.
  using storage_type = typename Cache::storage_type;
  /// @brief Settings of the cache's eviction policy.
  using eviction_options = typename Cache::eviction_options;

  /// @brief Makes the cache (as `Cache::create`) and wraps it.
  /// @param config Hash seed.
  /// @param storage K/V storage (its layout gives the pool's shape).
  /// @param eviction Settings of the eviction policy.
  /// @return The synchronized cache, or the error `Cache::create` returned.
  [[nodiscard]] static result<synchronized_cache> create(const cache_config& config,
                                                         storage_type storage,
                                                         const eviction_options& eviction = {});

  /// @brief Wraps an existing cache (taken by move).
  /// @param cache The cache; from now on reach it only through this object.
  explicit synchronized_cache(Cache cache);

  /// @brief Locked @ref kvkit::prefix_cache::match.
  /// @param prompt The prompt's tokens.
  /// @param options Tenant salt and extra keys.
  /// @return Cached leading tokens.
  [[nodiscard]] std::uint32_t match(std::span<const token_id> prompt,
                                    const request_options& options = {}) const;

  /// @brief Locked @ref kvkit::prefix_cache::explain_miss (why admit() of @p prompt would stop
  /// its match where it does, if admitted now). Changes nothing and counts nothing.
  /// @param prompt The prompt's tokens.
  /// @param options Namespace keys.
  /// @return The reason and the block where the match stops.
  [[nodiscard]] miss_info explain_miss(std::span<const token_id> prompt,
                                       const request_options& options = {}) const;

  /// @brief Locked @ref kvkit::prefix_cache::admit.
  /// @param prompt The prompt's tokens (not empty).
  /// @param options Tenant salt, extra keys and request class.
  /// @return The admission, or the error (cache unchanged).
  [[nodiscard]] result<admission> admit(std::span<const token_id> prompt,
                                        const request_options& options = {});

  /// @brief Locked @ref kvkit::prefix_cache::commit (first @p num_computed_tokens tokens).
  /// @param seq A live sequence.
  /// @param num_computed_tokens New count of computed tokens.
  /// @return What was registered, or the error (cache unchanged).
  [[nodiscard]] result<commit_info> commit(sequence_id seq, std::uint32_t num_computed_tokens);

  /// @brief Locked @ref kvkit::prefix_cache::commit of every token of @p seq.
  /// @param seq A live sequence.
  /// @return What was registered, or the error (cache unchanged).
  [[nodiscard]] result<commit_info> commit(sequence_id seq);

  /// @brief Locked @ref kvkit::prefix_cache::append.
  /// @param seq A live sequence.
  /// @param tokens The new tokens (not empty).
  /// @return Ok, or the error (cache unchanged).
  [[nodiscard]] status append(sequence_id seq, std::span<const token_id> tokens);

  /// @brief Locked @ref kvkit::prefix_cache::fork.
  /// @param seq A live sequence whose tokens are all computed.
  /// @return The new sequence, or the error (cache unchanged).
  [[nodiscard]] result<sequence_id> fork(sequence_id seq);

  /// @brief Locked @ref kvkit::prefix_cache::pin.
  /// @param prompt The prefix's tokens.
  /// @param options Keys of the namespace.
  /// @return The pin, or the error (cache unchanged).
  [[nodiscard]] result<pin_info> pin(std::span<const token_id> prompt,
                                     const request_options& options = {});

  /// @brief Locked @ref kvkit::prefix_cache::finish.
  /// @param seq A live sequence.
  /// @return Ok, or the error (cache unchanged).
  [[nodiscard]] status finish(sequence_id seq);

  /// @brief A copy of the live sequence @p seq, taken under the lock.
  /// @param seq A sequence handle.
  /// @return The snapshot, or `errc::unknown_sequence` / `errc::finished_sequence`.
  [[nodiscard]] result<sequence_snapshot> sequence(sequence_id seq) const;

  /// @brief Locked @ref kvkit::prefix_cache::invalidate_if.
  /// @tparam Pred Callable `bool(std::uint64_t tenant_salt, std::uint64_t session_id,
  /// std::span<const std::uint64_t> extra_keys)`; it runs under the lock and must not call this
  /// object.
  /// @param pred Selects namespaces.
  /// @return Blocks freed now.
  template <class Pred>
  std::uint32_t invalidate_if(Pred&& pred);
  /// @brief Locked @ref kvkit::prefix_cache::invalidate_tenant.
  /// @param tenant_salt The tenant.
  /// @return Blocks freed now.
  std::uint32_t invalidate_tenant(std::uint64_t tenant_salt);
  /// @brief Locked @ref kvkit::prefix_cache::invalidate_session.
  /// @param session_id The session.
  /// @return Blocks freed now.
  std::uint32_t invalidate_session(std::uint64_t session_id);
  /// @brief Locked @ref kvkit::prefix_cache::invalidate_key.
  /// @param key An extra key value.
  /// @return Blocks freed now.
  std::uint32_t invalidate_key(std::uint64_t key);

  /// @brief Locked @ref kvkit::prefix_cache::clear.
  /// @return Blocks freed now.
  std::uint32_t clear();

  /// @brief Locked @ref kvkit::prefix_cache::expire.
  /// @return Blocks freed.
  std::uint32_t expire();

  /// @brief Locked @ref kvkit::prefix_cache::stats(std::uint32_t) const.
  /// @param request_class The class.
  /// @return Its counters.
  [[nodiscard]] class_stats stats(std::uint32_t request_class) const;

  /// @brief Locked @ref kvkit::prefix_cache::stats() const: one consistent snapshot.
  /// @return Counters and gauges.
  [[nodiscard]] cache_stats stats() const;

  /// @brief Locked @ref kvkit::prefix_cache::check_invariants.
  /// @return Ok, or `errc::invalid_argument` describing the first violation.
  [[nodiscard]] status check_invariants() const;

  /// @brief Locked @ref kvkit::prefix_cache::available_blocks. Another thread may change the
  /// count right after; admit() and append() check again.
  /// @return Free plus evictable blocks.
  [[nodiscard]] std::uint32_t available_blocks() const;

  /// @brief Tokens per block.
  /// @return The block size.
  [[nodiscard]] std::uint32_t block_size() const;
  /// @brief Blocks in the pool.
  /// @return The capacity.
  [[nodiscard]] std::uint32_t num_blocks() const;

  /// @brief Runs @p f on the cache under the lock: several calls as one atomic step (a scheduler
  /// step, admit + K/V write + commit), or access to the storage and policies.
  ///
  /// Do not let a pointer, reference or view into the cache (a `sequence_view`, a storage span,
  /// `Cache&` itself) outlive @p f, and do not call this object from @p f (the mutex is not
  /// recursive: that deadlocks).
  /// @tparam F Callable with `Cache&`.
  /// @param f The work.
  /// @return What @p f returns.
  template <class F>
  decltype(auto) with_lock(F&& f);

  /// @brief Runs @p f on the cache, read-only, under the lock.
  /// @tparam F Callable with `const Cache&`.
  /// @param f The work.
  /// @return What @p f returns.
  template <class F>
  decltype(auto) with_lock(F&& f) const;

 private:
  /// @cond KVKIT_PRIVATE
  struct state {
    explicit state(Cache&& c) : cache(std::move(c)) {}
    mutable std::mutex mutex;
    Cache cache;
  };

  /// Locks the mutex until the returned guard goes out of scope.
  [[nodiscard]] std::lock_guard<std::mutex> lock() const;

  std::unique_ptr<state> state_;
  /// @endcond
};

}  // namespace kvkit

#include <kvkit/detail/synchronized_impl.hpp>
