// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief KV events: what a cache stores, removes and clears, told to an event sink in order.
///
/// A router (or any index of what an engine holds) keeps its view of the engine's cache from these
/// events. They carry what vLLM's KV events carry (`BlockStored`, `BlockRemoved`,
/// `AllBlocksCleared`): the block's 64-bit chained content key, its parent's key, its tokens, the
/// block size, the namespace (tenant salt and extra keys) and the storage medium. The wire format
/// (vLLM's msgpack schema over ZeroMQ) lives in the optional `kvkit::events` library
/// (`<kvkit/events/zmq_publisher.hpp>`); this header has no dependency. A `prefix_cache` reports
/// its events to a sink through kvkit::event_listener (`<kvkit/event_listener.hpp>`).
///
/// Event views (`std::span`, `std::string_view`) are valid only during the call that receives
/// them; a sink that keeps an event copies it (as kvkit::recording_event_sink does).
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/types.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvkit {

/// @brief Medium name of GPU memory, as vLLM reports it (`MEDIUM_GPU`).
inline constexpr std::string_view medium_gpu = "GPU";
/// @brief Medium name of host memory, as vLLM reports it (`MEDIUM_CPU`).
inline constexpr std::string_view medium_cpu = "CPU";
/// @brief Medium name of storage below memory, as vLLM reports it (`MEDIUM_STORAGE`).
inline constexpr std::string_view medium_storage = "STORAGE";

/// @brief Short name of a removal reason (@ref kvkit::removal_reason, from
/// `<kvkit/concepts.hpp>`), e.g. "evicted".
/// @param r The reason.
/// @return A static string.
constexpr std::string_view to_string(removal_reason r) noexcept {
  switch (r) {
    case removal_reason::evicted:
      return "evicted";
    case removal_reason::invalidated:
      return "invalidated";
    case removal_reason::expired:
      return "expired";
    case removal_reason::released:
      return "released";
    case removal_reason::cleared:
      return "cleared";
  }
  return "unknown";
}

/// @brief A block became reusable (committed into the cache).
struct block_stored_event {
  /// The block's 64-bit chained content key.
  std::uint64_t hash = 0;
  /// The parent block's key; empty for the first block of a chain (its parent is the namespace
  /// root).
  std::optional<std::uint64_t> parent_hash{};
  /// The block's tokens (`block_size` of them).
  std::span<const token_id> tokens{};
  /// Tokens per block.
  std::uint32_t block_size = 0;
  /// Tenant salt of the namespace (0: the shared namespace).
  std::uint64_t tenant_salt = 0;
  /// Extra keys of the namespace (adapter id, multimodal content ids...).
  std::span<const std::uint64_t> extra_keys{};
  /// Where the block lives (@ref medium_gpu, @ref medium_cpu...); empty: the sink's default.
  std::string_view medium{};
};

/// @brief A block stopped being reusable.
struct block_removed_event {
  std::uint64_t hash = 0;                           ///< The block's 64-bit chained content key.
  removal_reason reason = removal_reason::evicted;  ///< Why.
  std::string_view medium{};  ///< Where it was; empty: the sink's default medium.
};

/// @brief Every block of a medium stopped being reusable (the cache was reset).
struct all_blocks_cleared_event {
  std::string_view medium{};  ///< The medium cleared; empty: the sink's default medium.
};

/// @brief Receives a cache's KV events in the order they happen.
///
/// Required: `on_stored(const block_stored_event&)`, `on_removed(const block_removed_event&)`,
/// `on_cleared(const all_blocks_cleared_event&)`. Optional: `flush()`, which ends a batch (vLLM
/// publishes one batch per scheduler step); call it through flush_events(). A cache calls the
/// `on_*` members from inside its operations, so they must be cheap and must not call back into
/// the cache.
/// @tparam S The sink type.
template <class S>
concept event_sink = requires(S& s, const block_stored_event& stored,
                              const block_removed_event& removed,
                              const all_blocks_cleared_event& cleared) {
  s.on_stored(stored);
  s.on_removed(removed);
  s.on_cleared(cleared);
};

/// @brief Ends the current batch of @p sink when the sink batches (has `flush()`); else nothing.
/// @tparam S A type that satisfies `event_sink`.
/// @param sink The sink.
template <event_sink S>
void flush_events(S& sink) {
  if constexpr (requires { sink.flush(); })
    sink.flush();
}

/// @brief A sink that drops every event (the type to name when events are not wanted).
struct null_event_sink {
  /// @brief Ignores a stored block.
  /// @param e The event.
  void on_stored(const block_stored_event& e) noexcept { (void)e; }
  /// @brief Ignores a removed block.
  /// @param e The event.
  void on_removed(const block_removed_event& e) noexcept { (void)e; }
  /// @brief Ignores a clear.
  /// @param e The event.
  void on_cleared(const all_blocks_cleared_event& e) noexcept { (void)e; }
};

/// @brief Kind of a recorded event.
enum class event_kind : std::uint8_t {
  stored,   ///< @ref block_stored_event.
  removed,  ///< @ref block_removed_event.
  cleared,  ///< @ref all_blocks_cleared_event.
};

/// @brief An owning copy of one event (what kvkit::recording_event_sink keeps).
struct recorded_event {
  event_kind kind = event_kind::stored;             ///< Which event.
  std::uint64_t hash = 0;                           ///< Block key (stored, removed).
  std::optional<std::uint64_t> parent_hash{};       ///< Parent key (stored).
  std::vector<token_id> tokens{};                   ///< Block tokens (stored).
  std::uint32_t block_size = 0;                     ///< Tokens per block (stored).
  std::uint64_t tenant_salt = 0;                    ///< Tenant salt (stored).
  std::vector<std::uint64_t> extra_keys{};          ///< Extra keys (stored).
  removal_reason reason = removal_reason::evicted;  ///< Why (removed).
  std::string medium{};                             ///< Medium as given (may be empty).

  /// @brief Field-by-field equality.
  /// @return True when every field is equal.
  friend bool operator==(const recorded_event&, const recorded_event&) = default;
};

/// @brief What a subscriber knows about one stored block: its parent and tokens.
struct resident_block {
  std::optional<std::uint64_t> parent_hash{};  ///< Parent key (empty: first block of a chain).
  std::vector<token_id> tokens{};              ///< The block's tokens.
  std::uint32_t copies = 0;  ///< Stored events not yet matched by a removal (normally 1).

  /// @brief Field-by-field equality.
  /// @return True when every field is equal.
  friend bool operator==(const resident_block&, const resident_block&) = default;
};

/// @brief The blocks a stream of events leaves stored: what a router's index holds for one engine.
///
/// Apply events in order: a stored event adds its block, a removed event takes one copy of it
/// away, a clear empties the set (a clear of one medium empties the blocks of that medium). An
/// empty medium in a stored event stands for @ref medium_gpu, as on the wire
/// (`vllm_wire_options::medium`).
class resident_set {
 public:
  /// @brief Applies one event.
  /// @param e The event.
  void apply(const recorded_event& e) {
    switch (e.kind) {
      case event_kind::stored: {
        entry& b = blocks_[e.hash];
        if (b.block.copies == 0) {
          b.block.parent_hash = e.parent_hash;
          b.block.tokens = e.tokens;
          b.medium = e.medium.empty() ? std::string(medium_gpu) : e.medium;
        }
        ++b.block.copies;
        break;
      }
      case event_kind::removed: {
        auto it = blocks_.find(e.hash);
        if (it != blocks_.end() && --it->second.block.copies == 0)
          blocks_.erase(it);
        break;
      }
      case event_kind::cleared:
        std::erase_if(blocks_, [&e](const auto& kv) {
          return e.medium.empty() || kv.second.medium == e.medium;
        });
        break;
    }
  }

  /// @brief Stored blocks by key.
  /// @return Key -> block, one entry per distinct key.
  [[nodiscard]] std::unordered_map<std::uint64_t, resident_block> blocks() const {
    std::unordered_map<std::uint64_t, resident_block> out;
    out.reserve(blocks_.size());
    for (const auto& [hash, e] : blocks_)
      out.emplace(hash, e.block);
    return out;
  }

  /// @brief Distinct stored keys.
  /// @return The count.
  [[nodiscard]] std::size_t size() const noexcept { return blocks_.size(); }

  /// @brief Whether @p hash is stored.
  /// @param hash A block key.
  /// @return True when at least one copy is stored.
  [[nodiscard]] bool contains(std::uint64_t hash) const { return blocks_.contains(hash); }

 private:
  struct entry {
    resident_block block;
    std::string medium;
  };
  std::unordered_map<std::uint64_t, entry> blocks_;
};

/// @brief A sink that keeps a copy of every event and the batch boundaries (for tests, and for
/// checking what a subscriber should have rebuilt).
class recording_event_sink {
 public:
  /// @brief Records a stored block.
  /// @param e The event.
  void on_stored(const block_stored_event& e) {
    recorded_event r;
    r.kind = event_kind::stored;
    r.hash = e.hash;
    r.parent_hash = e.parent_hash;
    r.tokens.assign(e.tokens.begin(), e.tokens.end());
    r.block_size = e.block_size;
    r.tenant_salt = e.tenant_salt;
    r.extra_keys.assign(e.extra_keys.begin(), e.extra_keys.end());
    r.medium = std::string(e.medium);
    events_.push_back(std::move(r));
  }
  /// @brief Records a removed block.
  /// @param e The event.
  void on_removed(const block_removed_event& e) {
    recorded_event r;
    r.kind = event_kind::removed;
    r.hash = e.hash;
    r.reason = e.reason;
    r.medium = std::string(e.medium);
    events_.push_back(std::move(r));
  }
  /// @brief Records a clear.
  /// @param e The event.
  void on_cleared(const all_blocks_cleared_event& e) {
    recorded_event r;
    r.kind = event_kind::cleared;
    r.medium = std::string(e.medium);
    events_.push_back(std::move(r));
  }
  /// @brief Ends a batch: the events recorded since the last flush form one batch (an empty
  /// batch is not recorded, as a publisher sends none).
  void flush() {
    if (events_.size() > last_end())
      batch_ends_.push_back(events_.size());
  }

  /// @brief Every event so far, in order.
  /// @return The events.
  [[nodiscard]] const std::vector<recorded_event>& events() const noexcept { return events_; }
  /// @brief End index (exclusive) into events() of each flushed batch, in order.
  /// @return The batch ends.
  [[nodiscard]] const std::vector<std::size_t>& batch_ends() const noexcept { return batch_ends_; }

  /// @brief The blocks the recorded events leave stored.
  /// @return The resident set after every event.
  [[nodiscard]] resident_set resident() const {
    resident_set s;
    for (const recorded_event& e : events_)
      s.apply(e);
    return s;
  }

  /// @brief Forgets every event and batch.
  void clear() noexcept {
    events_.clear();
    batch_ends_.clear();
  }

 private:
  std::size_t last_end() const noexcept { return batch_ends_.empty() ? 0 : batch_ends_.back(); }

  std::vector<recorded_event> events_;
  std::vector<std::size_t> batch_ends_;
};

static_assert(event_sink<null_event_sink>);
static_assert(event_sink<recording_event_sink>);

}  // namespace kvkit
