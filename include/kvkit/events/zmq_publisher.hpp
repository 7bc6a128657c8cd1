// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief An event sink that publishes KV events as vLLM's `ZmqEventPublisher`
/// does: msgpack `KVEventBatch`es on a ZeroMQ PUB socket, with sequence numbers and a ROUTER
/// socket that replays missed batches (part of the optional `kvkit::events` library; needs
/// libzmq and msgpack-cxx).
///
/// Wire protocol (vLLM v0.33.0, `vllm/distributed/kv_events.py`):
/// - PUB: each batch is a three-frame message `[topic, seq, payload]`: `topic` as configured
///   (subscribers filter on it), `seq` the batch's sequence number as 8 bytes big-endian
///   (0, 1, 2, ... with no gap unless a batch was dropped), `payload` the msgpack batch
///   (@ref kvkit::vllm_event_batch).
/// - Replay (ROUTER): a client sends `[empty, start]` (a DEALER; `start` 8 bytes big-endian) and
///   receives `[empty, topic, seq, payload]` for every buffered batch with `seq >= start`, oldest
///   first, then the end marker `[empty, "", 0xFFFFFFFFFFFFFFFF, ""]` (seq -1). The buffer keeps
///   the last `buffer_steps` batches.
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/events.hpp>
#include <kvkit/events/vllm_wire.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace kvkit {

/// @brief Settings of a @ref zmq_event_publisher (vLLM's `KVEventsConfig` names, same defaults).
struct zmq_publisher_options {
  /// @brief PUB endpoint. As vLLM: bound when it contains `*` or `::` or is `ipc://` or
  /// `inproc://`, connected otherwise. `tcp://127.0.0.1:*` binds a free loopback port
  /// (see zmq_event_publisher::endpoint()).
  std::string endpoint = "tcp://*:5557";
  /// @brief ROUTER endpoint for replay requests (always bound); empty: no replay socket.
  std::string replay_endpoint;
  /// @brief Topic frame of every message.
  std::string topic;
  /// @brief Batches kept for replay (>= 1 when there is a replay endpoint).
  std::size_t buffer_steps = 10000;
  /// @brief PUB high-water mark (messages queued per subscriber). A subscriber that falls this
  /// far behind loses the newer batches (ZeroMQ drops them for that subscriber; the cache never
  /// waits) and sees a gap in the sequence numbers, which it fills from the replay socket.
  int hwm = 100000;
  /// @brief Batches waiting for the I/O thread (>= 1). When full, flush() drops the batch, counts
  /// it in zmq_publisher_stats::batches_dropped and still uses up its sequence number, so
  /// subscribers see the gap.
  std::size_t max_queue_batches = 100000;
  /// @brief A batch is flushed by itself once this many events were added to it (0: only by
  /// flush()).
  std::size_t max_batch_events = 4096;
  /// @brief Schema fields kvkit's events do not carry (medium, group, data-parallel rank).
  vllm_wire_options wire;
  /// @brief How long close() waits for queued messages to leave.
  std::chrono::milliseconds close_timeout{1000};
};

/// @brief Counters of a publisher (since it was made).
struct zmq_publisher_stats {
  std::uint64_t events = 0;             ///< Events added (blocks stored and removed, clears).
  std::uint64_t batches_flushed = 0;    ///< Non-empty batches handed to the I/O thread or dropped.
  std::uint64_t batches_dropped = 0;    ///< Batches dropped because the queue was full.
  std::uint64_t batches_published = 0;  ///< Batches sent on the PUB socket.
  std::uint64_t bytes_published = 0;    ///< Their payload bytes.
  std::uint64_t replay_requests = 0;    ///< Replay requests served.
  std::uint64_t batches_replayed = 0;   ///< Batches sent in answer to them.
  std::uint64_t bad_replay_requests = 0;  ///< Replay requests ignored (not `[id, "", seq]`).
};

/// @brief Publishes a cache's KV events in vLLM's format over ZeroMQ.
///
/// The `on_*` members and flush() copy events into the current batch and hand finished batches
/// to an I/O thread; they never wait for the network. The I/O thread encodes, publishes, keeps
/// the replay buffer and answers replay requests. Call the `on_*` members and flush() from one
/// thread at a time (e.g. under the cache's lock); stats() may be called from any thread.
class zmq_event_publisher {
 public:
  /// @brief Opens the sockets and starts the I/O thread.
  /// @param options Settings.
  /// @return The publisher, or `errc::invalid_config` naming the bad setting (an endpoint that
  /// cannot be bound or connected, with ZeroMQ's reason).
  [[nodiscard]] static result<zmq_event_publisher> create(zmq_publisher_options options);

  /// @brief Takes over @p other's sockets and thread.
  /// @param other A publisher; left empty (only destruction and assignment are valid).
  zmq_event_publisher(zmq_event_publisher&& other) noexcept;
  /// @brief Closes this publisher, then takes over @p other's.
  /// @param other A publisher; left empty.
  /// @return This.
  zmq_event_publisher& operator=(zmq_event_publisher&& other) noexcept;
  /// @brief close().
  ~zmq_event_publisher();

  /// @brief Adds a stored block to the current batch.
  /// @param e The event.
  void on_stored(const block_stored_event& e);
  /// @brief Adds a removed block to the current batch.
  /// @param e The event.
  void on_removed(const block_removed_event& e);
  /// @brief Adds an `AllBlocksCleared` to the current batch.
  /// @param e The event.
  void on_cleared(const all_blocks_cleared_event& e);
  /// @brief Ends the current batch: stamps it with the wall clock, gives it the next sequence
  /// number and queues it for publishing. Does nothing when the batch is empty.
  void flush();

  /// @brief Flushes, publishes what is queued, and closes the sockets (waiting at most
  /// `close_timeout` for messages to leave). Later calls do nothing.
  void close() noexcept;

  /// @brief The PUB endpoint as bound (a wildcard port resolved), or as connected.
  /// @return The endpoint.
  [[nodiscard]] const std::string& endpoint() const noexcept;
  /// @brief The bound replay endpoint (empty without one).
  /// @return The endpoint.
  [[nodiscard]] const std::string& replay_endpoint() const noexcept;
  /// @brief The sequence number the next flushed batch gets.
  /// @return The number.
  [[nodiscard]] std::uint64_t next_sequence() const noexcept;
  /// @brief Counters.
  /// @return A snapshot.
  [[nodiscard]] zmq_publisher_stats stats() const noexcept;

 private:
  struct impl;
  explicit zmq_event_publisher(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

static_assert(event_sink<zmq_event_publisher>);

}  // namespace kvkit
