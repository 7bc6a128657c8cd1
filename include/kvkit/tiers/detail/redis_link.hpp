// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internals of kvkit::redis_tier: one hiredis connection with timeouts, reconnection with
// exponential back-off, and pipelines (many commands, one round trip). Not a public header.
#pragma once

#include <kvkit/tier.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <functional>
#include <optional>
#include <pthread.h>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hiredis/hiredis.h>

namespace kvkit::detail {

// Blocks SIGPIPE in this thread while a socket is written, and swallows one raised meanwhile, so a
// server that closes the connection never kills the process (hiredis writes with write(2)). The
// process's signal disposition is left alone.
class sigpipe_guard {
 public:
  sigpipe_guard() noexcept {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    pending_before_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~sigpipe_guard() {
    if (!pending_before_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        while (sigtimedwait(&set_, nullptr, &zero) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

 private:
  sigset_t set_{};
  sigset_t old_{};
  bool pending_before_ = false;
};

// Commands of one pipeline. Arguments are binary-safe; small ones are copied into the pipeline,
// large ones (values) are referenced and must outlive run().
class redis_pipeline {
 public:
  void clear() {
    text_.clear();
    args_.clear();
    commands_.clear();
  }
  // Starts a command.
  redis_pipeline& command() {
    commands_.push_back(args_.size());
    return *this;
  }
  // A copied argument.
  redis_pipeline& arg(std::string_view s) {
    args_.push_back(arg_ref{nullptr, text_.size(), s.size()});
    text_.append(s);
    return *this;
  }
  // A referenced argument.
  redis_pipeline& ref(const void* p, std::size_t n) {
    args_.push_back(arg_ref{static_cast<const char*>(p), 0, n});
    return *this;
  }
  [[nodiscard]] std::size_t size() const noexcept { return commands_.size(); }
  [[nodiscard]] bool empty() const noexcept { return commands_.empty(); }

  // Appends every command to a hiredis context's output buffer.
  [[nodiscard]] bool append_to(redisContext* c) {
    argv_.resize(args_.size());
    lens_.resize(args_.size());
    for (std::size_t i = 0; i < args_.size(); ++i) {
      argv_[i] = args_[i].ptr != nullptr ? args_[i].ptr : text_.data() + args_[i].offset;
      lens_[i] = args_[i].len;
    }
    for (std::size_t k = 0; k < commands_.size(); ++k) {
      const std::size_t first = commands_[k];
      const std::size_t last = k + 1 < commands_.size() ? commands_[k + 1] : args_.size();
      if (redisAppendCommandArgv(c, static_cast<int>(last - first), argv_.data() + first,
                                 lens_.data() + first) != REDIS_OK)
        return false;
    }
    return true;
  }

 private:
  struct arg_ref {
    const char* ptr;
    std::size_t offset;
    std::size_t len;
  };
  std::string text_;
  std::vector<arg_ref> args_;
  std::vector<std::size_t> commands_;
  std::vector<const char*> argv_;
  std::vector<std::size_t> lens_;
};

struct link_failure {
  tier_error kind;
  std::string message;
};

class redis_link {
 public:
  struct config {
    std::string host;
    int port = 6379;
    std::chrono::milliseconds connect_timeout{200};
    std::chrono::milliseconds command_timeout{200};
    std::chrono::milliseconds retry_initial{50};
    std::chrono::milliseconds retry_max{5000};
    std::function<std::chrono::nanoseconds()> now;
  };

  explicit redis_link(config cfg) : cfg_(std::move(cfg)) {}
  ~redis_link() { close(); }
  redis_link(redis_link&& o) noexcept
      : cfg_(std::move(o.cfg_)),
        ctx_(std::exchange(o.ctx_, nullptr)),
        backoff_ns_(o.backoff_ns_),
        next_attempt_ns_(o.next_attempt_ns_),
        round_trips_(o.round_trips_),
        connections_(o.connections_) {}
  redis_link& operator=(redis_link&&) = delete;
  redis_link(const redis_link&) = delete;
  redis_link& operator=(const redis_link&) = delete;

  // Runs `p` in one round trip; calls on_reply(i, reply) for each reply in order. On a link
  // failure the connection is dropped, a reconnection is scheduled with back-off, and the replies
  // received so far have been handed out.
  template <class OnReply>
  [[nodiscard]] std::optional<link_failure> run(redis_pipeline& p, OnReply&& on_reply) {
    if (p.empty())
      return std::nullopt;
    if (auto f = connect())
      return f;
    sigpipe_guard guard;
    if (!p.append_to(ctx_))
      return fail();
    ++round_trips_;
    for (std::size_t i = 0; i < p.size(); ++i) {
      void* r = nullptr;
      if (redisGetReply(ctx_, &r) != REDIS_OK || r == nullptr)
        return fail();
      on_reply(i, static_cast<const redisReply*>(r));
      freeReplyObject(r);
    }
    backoff_ns_ = 0;
    return std::nullopt;
  }

  // Whether a connection is open now.
  [[nodiscard]] bool connected() const noexcept { return ctx_ != nullptr; }
  // Whether an operation now would be skipped (waiting to reconnect).
  [[nodiscard]] bool backing_off() const {
    return ctx_ == nullptr && cfg_.now().count() < next_attempt_ns_;
  }
  [[nodiscard]] std::uint64_t round_trips() const noexcept { return round_trips_; }
  // Connections opened so far: changes when the server may have restarted.
  [[nodiscard]] std::uint64_t connections() const noexcept { return connections_; }

 private:
  [[nodiscard]] std::optional<link_failure> connect() {
    if (ctx_ != nullptr)
      return std::nullopt;
    const std::int64_t now = cfg_.now().count();
    if (now < next_attempt_ns_) {
      return link_failure{tier_error::unavailable,
                          "waiting " + std::to_string((next_attempt_ns_ - now) / 1'000'000) +
                              " ms before reconnecting to " + endpoint()};
    }
    const timeval ct = to_timeval(cfg_.connect_timeout);
    redisContext* c = redisConnectWithTimeout(cfg_.host.c_str(), cfg_.port, ct);
    if (c == nullptr || c->err != 0) {
      std::string why = c != nullptr ? c->errstr : "out of memory";
      if (c != nullptr)
        redisFree(c);
      schedule_retry();
      return link_failure{tier_error::connect, "cannot connect to " + endpoint() + ": " + why};
    }
    if (redisSetTimeout(c, to_timeval(cfg_.command_timeout)) != REDIS_OK) {
      std::string why = c->errstr;
      redisFree(c);
      schedule_retry();
      return link_failure{tier_error::connect, "cannot set timeouts on " + endpoint() + ": " + why};
    }
    (void)redisEnableKeepAlive(c);
    ctx_ = c;
    ++connections_;
    return std::nullopt;
  }

  [[nodiscard]] link_failure fail() {
    const int saved = errno;
    link_failure f{tier_error::disconnected, endpoint() + ": "};
    if (ctx_ != nullptr) {
      const bool timed_out = ctx_->err == REDIS_ERR_IO &&
                             (saved == EAGAIN || saved == EWOULDBLOCK || saved == ETIMEDOUT ||
                              std::strstr(ctx_->errstr, "temporarily unavailable") != nullptr ||
                              std::strstr(ctx_->errstr, "timed out") != nullptr);
      if (timed_out) {
        f.kind = tier_error::timeout;
        f.message += "no reply within " + std::to_string(cfg_.command_timeout.count()) + " ms";
      } else {
        f.message += ctx_->err == REDIS_ERR_EOF ? std::string("server closed the connection")
                                                : std::string(ctx_->errstr);
      }
    }
    close();
    schedule_retry();
    return f;
  }

  void schedule_retry() {
    const std::int64_t initial =
        std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.retry_initial).count();
    const std::int64_t max =
        std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.retry_max).count();
    backoff_ns_ = backoff_ns_ == 0 ? initial : std::min(backoff_ns_ * 2, max);
    next_attempt_ns_ = cfg_.now().count() + backoff_ns_;
  }

  void close() noexcept {
    if (ctx_ != nullptr) {
      redisFree(ctx_);
      ctx_ = nullptr;
    }
  }

  [[nodiscard]] std::string endpoint() const {
    return "redis " + cfg_.host + ":" + std::to_string(cfg_.port);
  }

  static timeval to_timeval(std::chrono::milliseconds ms) noexcept {
    const auto total = std::max<std::int64_t>(ms.count(), 1);
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(total / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((total % 1000) * 1000);
    return tv;
  }

  config cfg_;
  redisContext* ctx_ = nullptr;
  std::int64_t backoff_ns_ = 0;
  std::int64_t next_attempt_ns_ = 0;
  std::uint64_t round_trips_ = 0;
  std::uint64_t connections_ = 0;
};

}  // namespace kvkit::detail
