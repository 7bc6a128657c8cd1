// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// ZeroMQ publisher of vLLM-format KV events.
//
// Producer side (the cache's thread): events are copied into the current vllm_event_batch;
// flush() numbers the batch and moves it into a bounded queue, then rings a doorbell (a pipe).
// I/O thread: waits in zmq_poll on the doorbell and the replay ROUTER socket; encodes queued
// batches, sends them on the PUB socket without blocking (PUB drops for a subscriber past its
// high-water mark), keeps the last buffer_steps payloads, and answers replay requests.
#include <kvkit/events/zmq_publisher.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>
#include <zmq.h>

namespace kvkit {

struct zmq_event_publisher::impl {
  struct queued {
    std::uint64_t seq = 0;
    double ts = 0;
    vllm_event_batch batch;
  };

  zmq_publisher_options opt;
  void* ctx = nullptr;
  void* pub = nullptr;
  void* router = nullptr;
  int doorbell[2] = {-1, -1};
  std::string endpoint;
  std::string replay_endpoint;

  // Producer side.
  vllm_event_batch current;
  std::atomic<std::uint64_t> next_seq{0};
  std::uint64_t events_added = 0;  // mirrored into `events` with a plain store

  // Shared between the producer and the I/O thread.
  std::mutex mutex;
  std::deque<queued> queue;
  std::vector<vllm_event_batch> spare;  // emptied batches, reused to keep their capacity
  bool stopping = false;

  // I/O thread.
  std::thread io;
  std::deque<std::pair<std::uint64_t, std::vector<std::uint8_t>>> ring;
  std::vector<std::uint8_t> payload;

  // Counters.
  std::atomic<std::uint64_t> events{0}, batches_flushed{0}, batches_dropped{0},
      batches_published{0}, bytes_published{0}, replay_requests{0}, batches_replayed{0},
      bad_replay_requests{0};
  bool closed = false;

  explicit impl(zmq_publisher_options o) : opt(std::move(o)), current(opt.wire) {}

  ~impl() { release_sockets(); }

  void release_sockets() noexcept {
    if (pub != nullptr)
      zmq_close(pub);
    if (router != nullptr)
      zmq_close(router);
    if (ctx != nullptr)
      zmq_ctx_term(ctx);
    pub = router = ctx = nullptr;
    for (int& fd : doorbell) {
      if (fd >= 0)
        ::close(fd);
      fd = -1;
    }
  }

  void ring_doorbell() noexcept {
    const char b = 1;
    // A full pipe already holds a wake-up: EAGAIN is fine.
    [[maybe_unused]] const ssize_t n = ::write(doorbell[1], &b, 1);
  }

  void drain_doorbell() noexcept {
    char buf[64];
    while (::read(doorbell[0], buf, sizeof buf) > 0) {
    }
  }

  static void big_endian(std::uint64_t v, unsigned char out[8]) noexcept {
    for (int i = 7; i >= 0; --i) {
      out[i] = static_cast<unsigned char>(v & 0xFF);
      v >>= 8;
    }
  }

  static constexpr unsigned char empty_frame[1] = {0};

  // Sends the frames as one multipart message without blocking.
  static void send_frames(
      void* socket, std::initializer_list<std::pair<const void*, std::size_t>> frames) noexcept {
    std::size_t i = 0;
    for (const auto& [data, size] : frames) {
      const int flags = ZMQ_DONTWAIT | (++i < frames.size() ? ZMQ_SNDMORE : 0);
      if (zmq_send(socket, data, size, flags) < 0)
        return;  // first frame refused (HWM): nothing was queued
    }
  }

  void publish(const queued& q) {
    payload.clear();
    q.batch.encode(q.ts, payload);
    unsigned char seq[8];
    big_endian(q.seq, seq);
    send_frames(pub,
                {{opt.topic.data(), opt.topic.size()}, {seq, 8}, {payload.data(), payload.size()}});
    batches_published.fetch_add(1, std::memory_order_relaxed);
    bytes_published.fetch_add(payload.size(), std::memory_order_relaxed);
    if (router != nullptr) {
      if (ring.size() >= opt.buffer_steps) {
        std::vector<std::uint8_t> reuse = std::move(ring.front().second);
        ring.pop_front();
        reuse.assign(payload.begin(), payload.end());
        ring.emplace_back(q.seq, std::move(reuse));
      } else {
        ring.emplace_back(q.seq, payload);
      }
    }
  }

  void serve_replay() {
    for (;;) {
      zmq_pollitem_t item{router, 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&item, 1, 0) <= 0 || (item.revents & ZMQ_POLLIN) == 0)
        return;
      std::vector<std::vector<unsigned char>> frames;
      int more = 0;
      do {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, router, ZMQ_DONTWAIT) < 0) {
          zmq_msg_close(&msg);
          return;
        }
        const auto* p = static_cast<const unsigned char*>(zmq_msg_data(&msg));
        frames.emplace_back(p, p + zmq_msg_size(&msg));
        more = zmq_msg_more(&msg);
        zmq_msg_close(&msg);
      } while (more != 0);
      // [identity, empty delimiter, start sequence (big-endian)]
      if (frames.size() != 3 || !frames[1].empty() || frames[2].empty() || frames[2].size() > 8) {
        bad_replay_requests.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      std::uint64_t start = 0;
      for (const unsigned char b : frames[2])
        start = (start << 8) | b;
      const std::vector<unsigned char>& id = frames[0];
      std::uint64_t sent = 0;
      for (const auto& [seq, bytes] : ring) {
        if (seq < start)
          continue;
        unsigned char s[8];
        big_endian(seq, s);
        send_frames(router, {{id.data(), id.size()},
                             {empty_frame, 0},
                             {opt.topic.data(), opt.topic.size()},
                             {s, 8},
                             {bytes.data(), bytes.size()}});
        ++sent;
      }
      static constexpr unsigned char end_seq[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
      send_frames(router, {{id.data(), id.size()},
                           {empty_frame, 0},
                           {empty_frame, 0},
                           {end_seq, 8},
                           {empty_frame, 0}});
      replay_requests.fetch_add(1, std::memory_order_relaxed);
      batches_replayed.fetch_add(sent, std::memory_order_relaxed);
    }
  }

  void run() {
    std::deque<queued> work;
    for (;;) {
      zmq_pollitem_t items[2] = {{nullptr, doorbell[0], ZMQ_POLLIN, 0}, {router, 0, ZMQ_POLLIN, 0}};
      const int n = router != nullptr ? 2 : 1;
      if (zmq_poll(items, n, -1) < 0 && zmq_errno() != EINTR)
        break;
      drain_doorbell();
      bool stop = false;
      {
        std::lock_guard lock(mutex);
        work.swap(queue);
        stop = stopping;
      }
      for (queued& q : work) {
        publish(q);
        q.batch.clear();
      }
      if (!work.empty()) {
        std::lock_guard lock(mutex);
        for (queued& q : work)
          spare.push_back(std::move(q.batch));
      }
      work.clear();
      if (router != nullptr)
        serve_replay();
      if (stop)
        break;
    }
  }

  // After an event was added: count it, and flush a batch that reached max_batch_events.
  void added() {
    events.store(++events_added, std::memory_order_relaxed);
    if (opt.max_batch_events != 0 && current.added() >= opt.max_batch_events)
      flush();
  }

  void flush() {
    if (current.empty())
      return;
    const std::uint64_t seq = next_seq.fetch_add(1, std::memory_order_relaxed);
    batches_flushed.fetch_add(1, std::memory_order_relaxed);
    const double ts =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    {
      std::lock_guard lock(mutex);
      if (queue.size() >= opt.max_queue_batches) {
        batches_dropped.fetch_add(1, std::memory_order_relaxed);
        current.clear();
        return;
      }
      vllm_event_batch next = spare.empty() ? vllm_event_batch(opt.wire) : std::move(spare.back());
      if (!spare.empty())
        spare.pop_back();
      queue.push_back(queued{seq, ts, std::move(current)});
      current = std::move(next);
    }
    ring_doorbell();
  }
};

namespace {

bool binds(const std::string& endpoint) {
  return endpoint.find('*') != std::string::npos || endpoint.find("::") != std::string::npos ||
         endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://");
}

std::string last_endpoint(void* socket) {
  char buf[1024];
  std::size_t size = sizeof buf;
  if (zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, buf, &size) != 0 || size == 0)
    return {};
  return std::string(buf, strnlen(buf, size));
}

error config_error(const std::string& what) {
  return error{errc::invalid_config, "kvkit: zmq_event_publisher: " + what};
}

}  // namespace

result<zmq_event_publisher> zmq_event_publisher::create(zmq_publisher_options options) {
  if (options.endpoint.empty())
    return config_error("endpoint is empty; give a ZeroMQ endpoint such as tcp://*:5557");
  if (!options.replay_endpoint.empty() && options.buffer_steps == 0) {
    return config_error("buffer_steps must be >= 1 with a replay endpoint ('" +
                        options.replay_endpoint + "'), got 0");
  }
  if (options.max_queue_batches == 0)
    return config_error("max_queue_batches must be >= 1, got 0");
  if (options.hwm < 0)
    return config_error("hwm must be >= 0 (0: no limit), got " + std::to_string(options.hwm));

  auto p = std::make_unique<impl>(std::move(options));
  const zmq_publisher_options& o = p->opt;
  if (::pipe(p->doorbell) != 0)
    return config_error(std::string("cannot make the I/O thread's wake-up pipe: ") +
                        std::strerror(errno));
  for (const int fd : p->doorbell)
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  p->ctx = zmq_ctx_new();
  if (p->ctx == nullptr)
    return config_error(std::string("cannot make a ZeroMQ context: ") + zmq_strerror(zmq_errno()));
  p->pub = zmq_socket(p->ctx, ZMQ_PUB);
  const int hwm = o.hwm;
  zmq_setsockopt(p->pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
  if (binds(o.endpoint)) {
    if (zmq_bind(p->pub, o.endpoint.c_str()) != 0) {
      return config_error("cannot bind the PUB socket to '" + o.endpoint +
                          "': " + zmq_strerror(zmq_errno()));
    }
    p->endpoint = last_endpoint(p->pub);
  } else {
    if (zmq_connect(p->pub, o.endpoint.c_str()) != 0) {
      return config_error("cannot connect the PUB socket to '" + o.endpoint +
                          "': " + zmq_strerror(zmq_errno()));
    }
    p->endpoint = o.endpoint;
  }
  if (!o.replay_endpoint.empty()) {
    p->router = zmq_socket(p->ctx, ZMQ_ROUTER);
    // A full replay and its end marker fit even when the reader acknowledges late (as vLLM).
    const int replay_hwm =
        static_cast<int>(std::min<std::size_t>(2 * (o.buffer_steps + 1), INT_MAX));
    zmq_setsockopt(p->router, ZMQ_SNDHWM, &replay_hwm, sizeof replay_hwm);
    if (zmq_bind(p->router, o.replay_endpoint.c_str()) != 0) {
      return config_error("cannot bind the replay ROUTER socket to '" + o.replay_endpoint +
                          "': " + zmq_strerror(zmq_errno()));
    }
    p->replay_endpoint = last_endpoint(p->router);
  }
  impl* raw = p.get();
  p->io = std::thread([raw] { raw->run(); });
  return zmq_event_publisher(std::move(p));
}

zmq_event_publisher::zmq_event_publisher(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
zmq_event_publisher::zmq_event_publisher(zmq_event_publisher&& other) noexcept = default;
zmq_event_publisher& zmq_event_publisher::operator=(zmq_event_publisher&& other) noexcept {
  if (this != &other) {
    close();
    impl_ = std::move(other.impl_);
  }
  return *this;
}
zmq_event_publisher::~zmq_event_publisher() {
  close();
}

void zmq_event_publisher::on_stored(const block_stored_event& e) {
  impl_->current.add(e);
  impl_->added();
}

void zmq_event_publisher::on_removed(const block_removed_event& e) {
  impl_->current.add(e);
  impl_->added();
}

void zmq_event_publisher::on_cleared(const all_blocks_cleared_event& e) {
  impl_->current.add(e);
  impl_->added();
}

void zmq_event_publisher::flush() {
  impl_->flush();
}

void zmq_event_publisher::close() noexcept {
  if (!impl_ || impl_->closed)
    return;
  impl* p = impl_.get();
  p->closed = true;
  try {
    p->flush();
  } catch (...) {
    // Out of memory while queueing the last batch: it is lost, the rest still goes out.
  }
  {
    std::lock_guard lock(p->mutex);
    p->stopping = true;
  }
  p->ring_doorbell();
  if (p->io.joinable())
    p->io.join();
  const int linger = static_cast<int>(std::min<long long>(p->opt.close_timeout.count(), INT_MAX));
  if (p->pub != nullptr)
    zmq_setsockopt(p->pub, ZMQ_LINGER, &linger, sizeof linger);
  if (p->router != nullptr) {
    const int zero = 0;
    zmq_setsockopt(p->router, ZMQ_LINGER, &zero, sizeof zero);
  }
  p->release_sockets();
}

const std::string& zmq_event_publisher::endpoint() const noexcept {
  return impl_->endpoint;
}
const std::string& zmq_event_publisher::replay_endpoint() const noexcept {
  return impl_->replay_endpoint;
}
std::uint64_t zmq_event_publisher::next_sequence() const noexcept {
  return impl_->next_seq.load(std::memory_order_relaxed);
}

zmq_publisher_stats zmq_event_publisher::stats() const noexcept {
  const impl& p = *impl_;
  zmq_publisher_stats s;
  s.events = p.events.load(std::memory_order_relaxed);
  s.batches_flushed = p.batches_flushed.load(std::memory_order_relaxed);
  s.batches_dropped = p.batches_dropped.load(std::memory_order_relaxed);
  s.batches_published = p.batches_published.load(std::memory_order_relaxed);
  s.bytes_published = p.bytes_published.load(std::memory_order_relaxed);
  s.replay_requests = p.replay_requests.load(std::memory_order_relaxed);
  s.batches_replayed = p.batches_replayed.load(std::memory_order_relaxed);
  s.bad_replay_requests = p.bad_replay_requests.load(std::memory_order_relaxed);
  return s;
}

}  // namespace kvkit
