// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The mini engine's `/metrics` endpoint: the cache's statistics and the admission
/// latency histogram in the Prometheus text format, served over HTTP by cpp-httplib (Debian
/// package libcpp-httplib-dev; target `kvkit_mini_engine_metrics`).
///
/// The engine is single-threaded, so the server never reads the cache: the engine's thread
/// renders a snapshot (render_metrics()) after each step and publish()es it; a scrape gets the
/// latest snapshot.
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/prometheus.hpp>

#include <atomic>
#include <cstdint>
#include <httplib.h>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace mini_engine {

/// @brief An HTTP server answering `GET /metrics` with the latest published text.
class metrics_server {
 public:
  /// @brief Binds @p host:@p port and starts serving on a thread of its own.
  /// @param host Address to bind (e.g. "127.0.0.1", "0.0.0.0").
  /// @param port TCP port; 0 picks a free one (see port()).
  /// @return The running server, or `errc::invalid_config` when the address cannot be bound.
  [[nodiscard]] static kvkit::result<std::unique_ptr<metrics_server>> start(
      const std::string& host = "127.0.0.1", int port = 0) {
    auto s = std::unique_ptr<metrics_server>(new metrics_server());
    // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which would let a second server
    // share a busy port instead of failing.
    s->server_.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    s->server_.Get("/metrics", [raw = s.get()](const httplib::Request&, httplib::Response& res) {
      std::string body;
      {
        std::lock_guard lock(raw->mutex_);
        body = raw->text_;
      }
      raw->scrapes_.fetch_add(1, std::memory_order_relaxed);
      res.set_content(body, std::string(kvkit::prometheus_content_type));
    });
    s->port_ = port == 0 ? s->server_.bind_to_any_port(host)
                         : (s->server_.bind_to_port(host, port) ? port : -1);
    if (s->port_ <= 0) {
      return kvkit::error{
          kvkit::errc::invalid_config,
          "mini_engine: cannot bind the metrics server to " + host + ":" + std::to_string(port)};
    }
    s->thread_ = std::thread([raw = s.get()] { raw->server_.listen_after_bind(); });
    // stop() only stops a server that is listening: return once it is.
    while (!s->server_.is_running())
      std::this_thread::yield();
    return s;
  }

  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;
  /// @brief Stops serving and joins the thread.
  ~metrics_server() {
    server_.stop();
    if (thread_.joinable())
      thread_.join();
  }

  /// @brief The bound port.
  /// @return The port.
  [[nodiscard]] int port() const noexcept { return port_; }
  /// @brief Replaces the text served.
  /// @param text Prometheus text (e.g. from render_metrics()).
  void publish(std::string text) {
    std::lock_guard lock(mutex_);
    text_ = std::move(text);
  }
  /// @brief Scrapes answered so far.
  /// @return The count.
  [[nodiscard]] std::uint64_t scrapes() const noexcept {
    return scrapes_.load(std::memory_order_relaxed);
  }

 private:
  metrics_server() = default;

  httplib::Server server_;
  std::thread thread_;
  int port_ = -1;
  std::mutex mutex_;
  std::string text_;
  std::atomic<std::uint64_t> scrapes_{0};
};

/// @brief Prometheus text of @p cache's statistics (request classes @p classes) and of the
/// admission latency histogram.
/// @tparam Cache A `kvkit::prefix_cache`.
/// @param cache The cache (read on the caller's thread).
/// @param classes Request classes to export.
/// @param admit_latency The engine's admission histogram (may be null).
/// @return The text.
template <class Cache>
[[nodiscard]] std::string render_metrics(const Cache& cache, std::span<const std::uint32_t> classes,
                                         const kvkit::latency_histogram* admit_latency) {
  std::string text;
  std::vector<std::string> names;
  const kvkit::prometheus_tier tier = kvkit::prometheus_cache_tier(cache, classes, names);
  (void)kvkit::write_prometheus(text, std::span(&tier, 1));
  if (admit_latency != nullptr) {
    const kvkit::prometheus_label labels[] = {{"tier", "pool"}};
    (void)kvkit::write_prometheus(text, *admit_latency, "admit_duration_seconds",
                                  "Time of one cache admission (match and allocate).", {}, labels);
  }
  return text;
}

}  // namespace mini_engine
