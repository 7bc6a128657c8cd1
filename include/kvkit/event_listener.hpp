// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `event_listener`: the `prefix_cache` listener that reports the cache's KV events to an
/// event sink (a ZeroMQ publisher in vLLM's format, a recording sink, your own).
///
/// ```cpp
/// using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::vllm_hash_matcher,
///                                     kvkit::lru_eviction, kvkit::no_storage,
///                                     kvkit::event_listener<kvkit::zmq_event_publisher>>;
/// cache.listener().attach(publisher);      // before the cache stores anything
/// ... admit / commit / finish ...
/// cache.listener().flush();                // once per scheduler step: one batch
/// ```
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/events.hpp>
#include <kvkit/types.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvkit {

/// @brief A `prefix_cache` listener (its fifth template parameter) that turns the cache's block
/// life cycle into KV events for a sink: a stored block for every block a commit makes reusable,
/// a removed block for every block evicted, invalidated, expired or released after an
/// invalidation, and a clear for clear(), in the order they happen.
///
/// - Hash: the matcher's key of the block when it has one (`block_event::matcher_key`): with
///   `vllm_hash_matcher` vLLM's int block hash, with `hash_matcher` the cache's content key
///   (`prefix_cache::block_key`); otherwise the cache's content key. A removal carries the hash
///   its block was published with.
/// - Parent: empty for the first block of a chain (its parent is the namespace root), else the
///   parent block's published hash.
/// - Tokens, block size, tenant salt and extra keys of the block's namespace, and the medium given
///   to attach() (@ref medium_gpu by default; a lower tier reports its own).
/// - clear() is one `all_blocks_cleared_event`: the blocks it frees are not reported one by one,
///   and neither are blocks stored before it that sequences still held and release later (the
///   subscriber forgot them at the clear).
///
/// With no sink attached every member returns at once and nothing is kept. A sink sees the removal
/// of a block only when it saw the block stored: attach it before the cache stores anything (or
/// right after a clear()), or the subscriber's view lacks what was cached before.
///
/// Costs: the cache calls the listener on commits and removals only, never on a hit, and not at
/// all while no sink is attached (listening()). Per stored block, 16 bytes of bookkeeping
/// (indexed by block id, grown as blocks are seen).
/// @tparam Sink A type that satisfies @ref kvkit::event_sink.
template <event_sink Sink>
class event_listener {
 public:
  /// @brief The sink type.
  using sink_type = Sink;

  /// @brief A removal is reported by the hash the block was published with: the cache need not
  /// find a removed block's namespace (@ref kvkit::listener_skips_removed_namespace).
  static constexpr bool removed_namespace = false;

  /// @brief A listener with no sink: reports nothing.
  event_listener() = default;

  /// @brief Reports every later event to @p sink, in @p medium.
  /// @param sink The sink; must outlive the listener, or be detached first.
  /// @param medium The medium of every event (@ref medium_gpu, @ref medium_cpu,
  /// @ref medium_storage, or a tier's own name).
  void attach(Sink& sink, std::string_view medium = medium_gpu) {
    sink_ = &sink;
    medium_.assign(medium);
    for (slot& s : slots_)
      s = slot{};  // the new sink saw none of them (and blocks may have changed meanwhile)
    published_count_ = 0;
  }

  /// @brief Stops reporting (the sink is no longer used).
  void detach() noexcept { sink_ = nullptr; }

  /// @brief The attached sink.
  /// @return The sink, or nullptr.
  [[nodiscard]] Sink* sink() const noexcept { return sink_; }

  /// @brief Whether a sink is attached (the cache describes no block to a listener that is not
  /// listening, so a detached listener costs nothing).
  /// @return True when attached.
  [[nodiscard]] bool listening() const noexcept { return sink_ != nullptr; }

  /// @brief The medium of the events.
  /// @return The medium given to attach() (@ref medium_gpu before any).
  [[nodiscard]] std::string_view medium() const noexcept { return medium_; }

  /// @brief Ends the sink's current batch (kvkit::flush_events); call once per scheduler step.
  void flush() {
    if (sink_ != nullptr)
      flush_events(*sink_);
  }

  /// @brief Blocks published as stored and not removed or cleared since.
  /// @return The count (what a subscriber's index holds for this cache).
  [[nodiscard]] std::uint32_t published_blocks() const noexcept { return published_count_; }

  /// @brief Called by the cache when block `e.block` became cached: reports a stored block.
  /// @param e The block.
  void on_stored(const block_event& e) {
    if (sink_ == nullptr)
      return;
    if (e.block >= slots_.size())
      slots_.resize(std::size_t{e.block} + 1);
    slot& s = slots_[e.block];
    s.hash = e.matcher_key.value_or(e.key);
    s.known = true;
    if (!s.published) {
      s.published = true;
      ++published_count_;
    }
    block_stored_event out;
    out.hash = s.hash;
    if (e.parent_block != invalid_block)
      out.parent_hash = parent_hash(e);
    out.tokens = e.tokens;
    out.block_size = static_cast<std::uint32_t>(e.tokens.size());
    out.tenant_salt = e.tenant_salt;
    out.extra_keys = e.extra_keys;
    out.medium = medium_;
    sink_->on_stored(out);
  }

  /// @brief Called by the cache when block `e.block` is about to be freed: reports a removed
  /// block, unless the sink never saw it stored or a clear already covered it.
  /// @param e The block.
  /// @param why Why it is freed.
  void on_removed(const block_event& e, removal_reason why) {
    if (sink_ == nullptr || e.block >= slots_.size())
      return;
    slot& s = slots_[e.block];
    if (!s.published)
      return;
    s.published = false;
    --published_count_;
    sink_->on_removed(block_removed_event{s.hash, why, medium_});
  }

  /// @brief Called by the cache when clear() starts: reports a clear of the medium.
  void on_cleared() {
    if (sink_ == nullptr)
      return;
    for (slot& s : slots_)
      s.published = false;
    published_count_ = 0;
    sink_->on_cleared(all_blocks_cleared_event{medium_});
  }

 private:
  struct slot {
    std::uint64_t hash = 0;  // the hash the block was last published with
    bool known = false;      // hash is set
    bool published = false;  // stored, not removed or cleared since (as the sink knows it)
  };

  std::uint64_t parent_hash(const block_event& e) const noexcept {
    if (!e.matcher_key)
      return e.parent_key;  // the cache's content key is the published hash
    const bool known = e.parent_block < slots_.size() && slots_[e.parent_block].known;
    return known ? slots_[e.parent_block].hash : e.parent_key;
  }

  Sink* sink_ = nullptr;
  std::string medium_{medium_gpu};
  std::vector<slot> slots_;  // by block id
  std::uint32_t published_count_ = 0;
};

static_assert(listener_has_on_stored<event_listener<null_event_sink>>);
static_assert(listener_has_on_removed<event_listener<null_event_sink>>);
static_assert(listener_has_on_cleared<event_listener<null_event_sink>>);
static_assert(listener_has_listening<event_listener<null_event_sink>>);
static_assert(listener_skips_removed_namespace<event_listener<null_event_sink>>);
static_assert(cache_listener<event_listener<null_event_sink>>);

}  // namespace kvkit
