// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief vLLM's KV-event wire format: one `KVEventBatch` encoded with msgpack, as vLLM's
/// `ZmqEventPublisher` sends it (part of the optional `kvkit::events` library).
///
/// The schema is vLLM's `vllm/distributed/kv_events.py` (v0.33.0): the batch is a positional
/// array `[ts, events, data_parallel_rank]`; each event is a msgpack map tagged by its class name
/// under the key `"type"`, with the fields in declaration order and fields equal to their default
/// left out:
///
/// - `BlockStored`: `block_hashes` (list of int), `parent_block_hash` (int or nil), `token_ids`,
///   `block_size`, `lora_id` (nil), `medium`, `lora_name` (nil), `extra_keys` (one entry per
///   block: nil, or the namespace's extra keys as ints followed, on the first block of a salted
///   namespace, by the tenant salt as a 16-hex-digit string, as vLLM puts `cache_salt` after the
///   LoRA and multimodal keys of a request's first block), then `group_idx`;
/// - `BlockRemoved`: `block_hashes`, `medium`, `group_idx`;
/// - `AllBlocksCleared`: no field.
///
/// Consecutive stored blocks of one chain (each block's parent is the previous block) become one
/// `BlockStored` with several hashes, as vLLM reports a request's newly cached blocks; consecutive
/// removals become one `BlockRemoved`.
#pragma once

#include <kvkit/events.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvkit {

/// @brief Fields of vLLM's schema that kvkit's events do not carry.
struct vllm_wire_options {
  std::string medium = std::string(medium_gpu);  ///< Medium of events that name none.
  std::optional<std::int64_t> group_idx = 0;     ///< KV cache group (vLLM's single group: 0);
                                                 ///< empty leaves the field out.
  std::int64_t data_parallel_rank = 0;           ///< The batch's `data_parallel_rank`.
};

/// @brief One `KVEventBatch` being built: events are copied in as they come, and encoded once.
///
/// Not thread-safe; a publisher fills one batch and hands it to its I/O thread.
class vllm_event_batch {
 public:
  /// @brief An empty batch.
  /// @param options Fields kvkit's events do not carry.
  explicit vllm_event_batch(vllm_wire_options options = {});

  /// @brief Adds a stored block (appended to the previous `BlockStored` when it continues its
  /// chain in the same medium with the same block size).
  /// @param e The event.
  void add(const block_stored_event& e);
  /// @brief Adds a removed block (appended to the previous `BlockRemoved` of the same medium).
  /// @param e The event.
  void add(const block_removed_event& e);
  /// @brief Adds an `AllBlocksCleared`.
  /// @param e The event.
  void add(const all_blocks_cleared_event& e);

  /// @brief Whether no event was added.
  /// @return True when empty.
  [[nodiscard]] bool empty() const noexcept { return events_.empty(); }
  /// @brief Events on the wire (after coalescing).
  /// @return The count.
  [[nodiscard]] std::size_t wire_events() const noexcept { return events_.size(); }
  /// @brief Events added (blocks stored and removed, clears).
  /// @return The count.
  [[nodiscard]] std::size_t added() const noexcept { return added_; }

  /// @brief Appends the msgpack encoding of `KVEventBatch(ts, events, data_parallel_rank)`.
  /// @param ts The batch's timestamp (seconds since the Unix epoch, as `time.time()`).
  /// @param out Receives the bytes.
  void encode(double ts, std::vector<std::uint8_t>& out) const;

  /// @brief Empties the batch (keeps its capacity and options).
  void clear() noexcept;

 private:
  struct wire_event {
    event_kind kind;
    std::uint32_t medium;  // index into media_
    std::uint32_t first_hash, hash_count;
    std::uint32_t first_token, token_count;
    std::uint32_t block_size;
    bool has_parent;
    std::uint64_t parent;
  };
  struct block_keys {
    std::uint64_t salt;
    std::uint32_t first_extra, extra_count;
    bool first_in_chain;
  };
  std::uint32_t medium_index(std::string_view medium);

  vllm_wire_options options_;
  std::vector<wire_event> events_;
  std::vector<std::uint64_t> hashes_;
  std::vector<block_keys> keys_;  // parallel to hashes_ (used for stored blocks)
  std::vector<token_id> tokens_;
  std::vector<std::uint64_t> extras_;
  std::vector<std::string> media_;
  std::size_t added_ = 0;
};

}  // namespace kvkit
