// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A tiny KV-aware router: it subscribes to the KV-event streams of several engines (vLLM's format:
// msgpack KVEventBatch over ZeroMQ PUB, as kvkit::zmq_event_publisher and vLLM send it), keeps
// the set of block hashes each engine holds, and sends a request to the engine that holds the
// longest prefix of its prompt. A prompt's block hashes are vLLM's (sha256_cbor, int form), the
// same keys an engine with kvkit::vllm_hash_matcher (or vLLM itself) publishes.
//
// Missed batches. A subscriber misses what an engine published before it joined, and whatever
// the PUB socket drops. Given an engine's replay endpoint (vLLM's replay protocol, as
// kvkit::zmq_event_publisher serves it: a DEALER sends [empty, start sequence], the engine answers
// with its buffered batches from there and an end marker), the router fills a sequence gap from
// it before applying the batch after the gap, and catch_up() fetches whatever it has not seen.
// Batches the engine no longer buffers stay missed and are counted as gaps.
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/types.hpp>
#include <kvkit/vllm_hashing.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>
#include <zmq.h>

#include <msgpack.hpp>

namespace router {

/// What the router knows about one engine.
struct engine_view {
  std::string endpoint;                                     // its PUB endpoint
  std::string replay_endpoint;                              // its replay endpoint ("": none)
  std::unordered_map<std::uint64_t, std::uint32_t> blocks;  // block hash -> copies
  std::uint64_t next_seq = 0;                               // sequence number of the next batch
  std::uint64_t batches = 0;                                // batches applied
  std::uint64_t recovered = 0;  // batches fetched from its replay endpoint
  std::uint64_t gaps = 0;       // batches missed and not recovered (sequence gaps)
  std::uint64_t routed = 0;     // requests sent to it
};

/// Where a request goes.
struct decision {
  std::size_t engine = 0;                    // index of the chosen engine
  std::vector<std::uint32_t> cached_blocks;  // leading prompt blocks each engine holds
};

class kv_router {
 public:
  /// Subscribes to every endpoint in @p endpoints (topic @p topic) for prompts of @p block_size
  /// tokens per block. @p replay_endpoints, when not empty, gives each engine's replay endpoint
  /// ("" for an engine without one), in the order of @p endpoints.
  static kvkit::result<kv_router> create(const std::vector<std::string>& endpoints,
                                         std::string topic, std::uint32_t block_size,
                                         const std::vector<std::string>& replay_endpoints = {}) {
    if (endpoints.empty() || block_size == 0) {
      return kvkit::error{kvkit::errc::invalid_config,
                          "router: give at least one engine endpoint and a block size >= 1"};
    }
    if (!replay_endpoints.empty() && replay_endpoints.size() != endpoints.size()) {
      return kvkit::error{kvkit::errc::invalid_config,
                          "router: " + std::to_string(replay_endpoints.size()) +
                              " replay endpoints for " + std::to_string(endpoints.size()) +
                              " engines; give one per engine (\"\" for none) or none"};
    }
    kv_router r;
    r.ctx_ = zmq_ctx_new();
    r.topic_ = std::move(topic);
    r.block_size_ = block_size;
    for (const std::string& e : endpoints) {
      void* s = zmq_socket(r.ctx_, ZMQ_SUB);
      r.subs_.push_back(s);
      engine_view v;
      v.endpoint = e;
      if (!replay_endpoints.empty())
        v.replay_endpoint = replay_endpoints[r.engines_.size()];
      r.engines_.push_back(std::move(v));
      r.dealers_.push_back(nullptr);
      if (zmq_setsockopt(s, ZMQ_SUBSCRIBE, r.topic_.data(), r.topic_.size()) != 0 ||
          zmq_connect(s, e.c_str()) != 0) {
        return kvkit::error{kvkit::errc::invalid_config, "router: cannot subscribe to '" + e +
                                                             "': " + zmq_strerror(zmq_errno())};
      }
      if (!r.engines_.back().replay_endpoint.empty()) {
        if (auto st = r.connect_replay(r.engines_.size() - 1); !st)
          return kvkit::error{st.code(), st.message()};
      }
    }
    return r;
  }

  kv_router(kv_router&& o) noexcept
      : ctx_(std::exchange(o.ctx_, nullptr)),
        subs_(std::move(o.subs_)),
        dealers_(std::move(o.dealers_)),
        engines_(std::move(o.engines_)),
        topic_(std::move(o.topic_)),
        block_size_(o.block_size_) {}
  kv_router& operator=(kv_router&&) = delete;
  kv_router(const kv_router&) = delete;
  ~kv_router() {
    for (void* s : subs_)
      close(s);
    for (void* d : dealers_)
      close(d);
    if (ctx_ != nullptr)
      zmq_ctx_term(ctx_);
  }

  /// Applies every batch that arrived, waiting at most @p wait for the first one.
  /// @return Batches applied.
  std::size_t poll(std::chrono::milliseconds wait) {
    std::vector<zmq_pollitem_t> items;
    for (void* s : subs_)
      items.push_back(zmq_pollitem_t{s, 0, ZMQ_POLLIN, 0});
    if (zmq_poll(items.data(), static_cast<int>(items.size()), static_cast<long>(wait.count())) <=
        0)
      return 0;
    std::size_t applied = 0;
    for (std::size_t e = 0; e < subs_.size(); ++e) {
      std::vector<std::string> frames;
      while (receive(subs_[e], frames)) {
        if (frames.size() != 3 || frames[1].size() != 8)
          continue;  // not a KV-event message
        std::uint64_t seq = 0;
        for (const char c : frames[1])
          seq = (seq << 8) | static_cast<unsigned char>(c);
        engine_view& v = engines_[e];
        if (seq < v.next_seq)
          continue;  // applied already (from a replay)
        if (seq > v.next_seq) {
          applied += replay(e, seq);
          v.gaps += seq - v.next_seq;  // what the replay could not give
        }
        v.next_seq = seq + 1;
        apply(v, frames[2]);
        ++v.batches;
        ++applied;
      }
    }
    return applied;
  }

  /// Fetches from engine @p e's replay endpoint every batch it still buffers that the router has
  /// not applied (none without a replay endpoint).
  /// @return Batches applied.
  std::size_t catch_up(std::size_t e) {
    return replay(e, std::numeric_limits<std::uint64_t>::max());
  }

  /// vLLM's int block hashes of every full block of @p prompt.
  [[nodiscard]] std::vector<std::uint64_t> block_hashes(
      std::span<const kvkit::token_id> prompt) const {
    std::vector<std::uint64_t> out;
    auto digests = kvkit::vllm_request_block_hashes(prompt, block_size_);
    if (digests) {
      for (const kvkit::vllm_block_hash& d : *digests)
        out.push_back(kvkit::vllm_external_hash(d));
    }
    return out;
  }

  /// Leading blocks of @p hashes that engine @p e holds.
  [[nodiscard]] std::uint32_t cached_prefix(std::size_t e,
                                            std::span<const std::uint64_t> hashes) const {
    std::uint32_t n = 0;
    while (n < hashes.size() && engines_[e].blocks.contains(hashes[n]))
      ++n;
    return n;
  }

  /// Picks the engine holding the longest prefix of @p prompt; among equals, the one that was
  /// sent the fewest requests.
  decision route(std::span<const kvkit::token_id> prompt) {
    const auto hashes = block_hashes(prompt);
    decision d;
    for (std::size_t e = 0; e < engines_.size(); ++e) {
      d.cached_blocks.push_back(cached_prefix(e, hashes));
      const bool longer = d.cached_blocks[e] > d.cached_blocks[d.engine];
      const bool tie_less_loaded = d.cached_blocks[e] == d.cached_blocks[d.engine] &&
                                   engines_[e].routed < engines_[d.engine].routed;
      if (longer || tie_less_loaded)
        d.engine = e;
    }
    ++engines_[d.engine].routed;
    return d;
  }

  [[nodiscard]] const engine_view& engine(std::size_t e) const { return engines_[e]; }
  [[nodiscard]] std::size_t engines() const noexcept { return engines_.size(); }

 private:
  kv_router() = default;

  static void close(void* s) {
    if (s == nullptr)
      return;
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(s);
  }

  kvkit::status connect_replay(std::size_t e) {
    close(dealers_[e]);
    dealers_[e] = zmq_socket(ctx_, ZMQ_DEALER);
    const int timeout_ms = 2000;  // an engine that does not answer in time: the batches stay missed
    zmq_setsockopt(dealers_[e], ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    if (zmq_connect(dealers_[e], engines_[e].replay_endpoint.c_str()) != 0) {
      return kvkit::error{kvkit::errc::invalid_config,
                          "router: cannot connect to the replay endpoint '" +
                              engines_[e].replay_endpoint + "': " + zmq_strerror(zmq_errno())};
    }
    return {};
  }

  // Asks engine e's replay endpoint for its batches from next_seq on and applies those before
  // sequence number `until`, in order; a batch the engine no longer buffers counts as a gap.
  std::size_t replay(std::size_t e, std::uint64_t until) {
    engine_view& v = engines_[e];
    if (dealers_[e] == nullptr)
      return 0;
    char start[8];
    for (int i = 0; i < 8; ++i)
      start[i] = static_cast<char>(v.next_seq >> (56 - 8 * i));
    if (zmq_send(dealers_[e], "", 0, ZMQ_SNDMORE) < 0 || zmq_send(dealers_[e], start, 8, 0) < 0)
      return 0;
    std::size_t applied = 0;
    std::vector<std::string> frames;
    for (;;) {
      if (!receive(dealers_[e], frames, /*wait=*/true)) {
        (void)connect_replay(e);  // timed out: a late answer must not be read as the next one's
        return applied;
      }
      // [empty delimiter, topic, sequence (8 bytes), payload]; the end marker's sequence is -1.
      if (frames.size() != 4 || frames[2].size() != 8)
        continue;
      std::uint64_t seq = 0;
      for (const char c : frames[2])
        seq = (seq << 8) | static_cast<unsigned char>(c);
      if (seq == std::numeric_limits<std::uint64_t>::max())
        return applied;
      if (seq < v.next_seq || seq >= until)
        continue;
      v.gaps += seq - v.next_seq;
      v.next_seq = seq + 1;
      apply(v, frames[3]);
      ++v.batches;
      ++v.recovered;
      ++applied;
    }
  }

  static bool receive(void* s, std::vector<std::string>& frames, bool wait = false) {
    frames.clear();
    for (;;) {
      zmq_msg_t m;
      zmq_msg_init(&m);
      if (zmq_msg_recv(&m, s, frames.empty() && !wait ? ZMQ_DONTWAIT : 0) < 0) {
        zmq_msg_close(&m);
        return false;
      }
      frames.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
      const bool more = zmq_msg_more(&m) != 0;
      zmq_msg_close(&m);
      if (!more)
        return true;
    }
  }

  static std::string_view str(const msgpack::object& o) {
    return o.type == msgpack::type::STR ? std::string_view(o.via.str.ptr, o.via.str.size)
                                        : std::string_view();
  }
  static const msgpack::object* field(const msgpack::object& map, std::string_view key) {
    for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
      if (str(map.via.map.ptr[i].key) == key)
        return &map.via.map.ptr[i].val;
    }
    return nullptr;
  }
  // An int hash, or a bytes hash (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0): its last 8 bytes.
  static std::uint64_t hash_of(const msgpack::object& o) {
    if (o.type == msgpack::type::POSITIVE_INTEGER)
      return o.via.u64;
    if (o.type == msgpack::type::NEGATIVE_INTEGER)
      return static_cast<std::uint64_t>(o.via.i64);
    std::uint64_t v = 0;
    if (o.type == msgpack::type::BIN) {
      for (std::uint32_t i = o.via.bin.size >= 8 ? o.via.bin.size - 8 : 0; i < o.via.bin.size; ++i)
        v = (v << 8) | static_cast<unsigned char>(o.via.bin.ptr[i]);
    }
    return v;
  }

  // One KVEventBatch: [ts, [event...], data_parallel_rank], each event a map tagged by "type".
  static void apply(engine_view& v, const std::string& payload) {
    const msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
    const msgpack::object& batch = h.get();
    if (batch.type != msgpack::type::ARRAY || batch.via.array.size < 2 ||
        batch.via.array.ptr[1].type != msgpack::type::ARRAY)
      return;
    const msgpack::object& events = batch.via.array.ptr[1];
    for (std::uint32_t i = 0; i < events.via.array.size; ++i) {
      const msgpack::object& ev = events.via.array.ptr[i];
      if (ev.type != msgpack::type::MAP)
        continue;
      const msgpack::object* type = field(ev, "type");
      const std::string_view kind = type != nullptr ? str(*type) : std::string_view();
      if (kind == "AllBlocksCleared") {
        v.blocks.clear();
        continue;
      }
      const msgpack::object* hashes = field(ev, "block_hashes");
      if (hashes == nullptr || hashes->type != msgpack::type::ARRAY)
        continue;
      for (std::uint32_t k = 0; k < hashes->via.array.size; ++k) {
        const std::uint64_t hash = hash_of(hashes->via.array.ptr[k]);
        if (kind == "BlockStored") {
          ++v.blocks[hash];
        } else if (kind == "BlockRemoved") {
          if (auto it = v.blocks.find(hash); it != v.blocks.end() && --it->second == 0)
            v.blocks.erase(it);
        }
      }
    }
  }

  void* ctx_ = nullptr;
  std::vector<void*> subs_;
  std::vector<void*> dealers_;  // per engine: its replay endpoint's DEALER socket, or null
  std::vector<engine_view> engines_;
  std::string topic_;
  std::uint32_t block_size_ = 16;
};

}  // namespace router
