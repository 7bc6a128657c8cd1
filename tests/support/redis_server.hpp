// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief A real `redis-server` for tests and benchmarks: started on a free 127.0.0.1 port with
/// no persistence, ready when it answers PING, stopped when the object goes out of scope (also
/// when a test fails, and with the test process: the server gets SIGKILL if its parent dies).
/// Fault injection: kill it, pause it (SIGSTOP/SIGCONT), restart it empty, limit its memory.
///
/// Linux only; talks to the server through hiredis. Errors throw `std::runtime_error` with what
/// went wrong and the server's log.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#ifndef KVKIT_REDIS_SERVER
#define KVKIT_REDIS_SERVER "redis-server"
#endif

namespace kvkit::test {

/// @brief Settings of a @ref redis_server.
struct redis_server_options {
  std::string binary = KVKIT_REDIS_SERVER;         ///< Path of redis-server.
  std::uint64_t maxmemory = 0;                     ///< Memory limit in bytes (0: none).
  std::string maxmemory_policy = "noeviction";     ///< What Redis does at the limit.
  std::chrono::milliseconds start_timeout{10000};  ///< Longest wait for the first PONG.
};

/// @brief One `redis-server` process owned by a test.
class redis_server {
 public:
  /// @brief Settings of the server.
  using options = redis_server_options;

  /// @brief Starts a server on a free loopback port and waits until it answers PING.
  /// @param o Settings.
  explicit redis_server(options o = options()) : opts_(std::move(o)) {
    char dir[] = "/tmp/kvkit-redis-XXXXXX";
    if (::mkdtemp(dir) == nullptr)
      throw std::runtime_error(std::string("redis_server: mkdtemp failed: ") +
                               std::strerror(errno));
    dir_ = dir;
    std::string last_error;
    for (int attempt = 0; attempt < 5; ++attempt) {  // a free port can be taken meanwhile
      port_ = free_port();
      if (spawn_and_wait(&last_error))
        return;
    }
    std::filesystem::remove_all(dir_);
    throw std::runtime_error("redis_server: could not start " + opts_.binary + ": " + last_error);
  }

  /// @brief Stops the server (resuming it first if paused) and removes its folder.
  ~redis_server() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  /// @brief The server's port on 127.0.0.1.
  /// @return The port.
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  /// @brief Whether the process is alive (running or paused).
  /// @return True when started and not killed.
  [[nodiscard]] bool running() const noexcept { return pid_ > 0; }

  /// @brief Kills the server with SIGKILL (no shutdown, no save) and reaps it.
  void kill() {
    if (pid_ <= 0)
      return;
    ::kill(pid_, SIGKILL);
    reap();
  }

  /// @brief Stops the process (SIGSTOP): connections stay open but nothing is answered.
  void pause() {
    if (pid_ > 0 && !paused_) {
      ::kill(pid_, SIGSTOP);
      paused_ = true;
    }
  }

  /// @brief Resumes a paused process (SIGCONT).
  void resume() {
    if (pid_ > 0 && paused_) {
      ::kill(pid_, SIGCONT);
      paused_ = false;
    }
  }

  /// @brief Kills the server if it runs and starts an empty one on the same port.
  void restart() {
    kill();
    std::string error;
    if (!spawn_and_wait(&error))
      throw std::runtime_error("redis_server: restart on port " + std::to_string(port_) +
                               " failed: " + error);
  }

  /// @brief Sets the memory limit and the eviction policy (`CONFIG SET`).
  /// @param bytes The limit (0: none).
  /// @param policy E.g. "noeviction", "allkeys-lru", "volatile-lru".
  void set_maxmemory(std::uint64_t bytes, const std::string& policy) {
    command({"CONFIG", "SET", "maxmemory", std::to_string(bytes)});
    command({"CONFIG", "SET", "maxmemory-policy", policy});
  }

  /// @brief Runs one command on a new connection.
  /// @param args The command and its arguments (binary-safe).
  /// @return The reply as text: a string, status or error as is, an integer in decimal, nil as
  /// "(nil)", an array's elements joined by newlines.
  std::string command(const std::vector<std::string>& args) const {
    redisContext* c = connect(std::chrono::milliseconds(2000));
    if (c == nullptr)
      throw std::runtime_error("redis_server: cannot connect to port " + std::to_string(port_));
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (r == nullptr) {
      std::string why = c->errstr;
      redisFree(c);
      throw std::runtime_error("redis_server: command failed: " + why);
    }
    std::string out = text(r);
    freeReplyObject(r);
    redisFree(c);
    return out;
  }

  /// @brief How many times the server ran command @p name since start or reset_stats()
  /// (`INFO commandstats`).
  /// @param name Lower-case command name, e.g. "get".
  /// @return The count.
  [[nodiscard]] std::uint64_t calls(std::string_view name) const {
    const std::string info = command({"INFO", "commandstats"});
    const std::string key = "cmdstat_" + std::string(name) + ":calls=";
    const auto at = info.find(key);
    return at == std::string::npos ? 0 : std::stoull(info.substr(at + key.size()));
  }

  /// @brief Resets the server's statistics (`CONFIG RESETSTAT`).
  void reset_stats() const { command({"CONFIG", "RESETSTAT"}); }

  /// @brief The server's log so far.
  /// @return Its text.
  [[nodiscard]] std::string log() const {
    std::ifstream in(dir_ + "/redis.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  static std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      throw std::runtime_error("redis_server: socket() failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof(a);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(fd);
      throw std::runtime_error("redis_server: cannot find a free port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
  }

  redisContext* connect(std::chrono::milliseconds timeout) const {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (c == nullptr || c->err != 0) {
      if (c != nullptr)
        redisFree(c);
      return nullptr;
    }
    redisSetTimeout(c, tv);
    return c;
  }

  static std::string text(const redisReply* r) {
    switch (r->type) {
      case REDIS_REPLY_STRING:
      case REDIS_REPLY_STATUS:
      case REDIS_REPLY_ERROR:
        return std::string(r->str, r->len);
      case REDIS_REPLY_INTEGER:
        return std::to_string(r->integer);
      case REDIS_REPLY_NIL:
        return "(nil)";
      case REDIS_REPLY_ARRAY: {
        std::string out;
        for (std::size_t i = 0; i < r->elements; ++i) {
          if (i != 0)
            out += '\n';
          out += text(r->element[i]);
        }
        return out;
      }
      default:
        return "";
    }
  }

  bool spawn_and_wait(std::string* error) {
    const std::string port = std::to_string(port_);
    const std::string maxmemory = std::to_string(opts_.maxmemory);
    const std::string log = dir_ + "/redis.log";
    std::vector<std::string> args = {opts_.binary,
                                     "--port",
                                     port,
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--daemonize",
                                     "no",
                                     "--dir",
                                     dir_,
                                     "--logfile",
                                     log,
                                     "--databases",
                                     "1",
                                     "--maxmemory",
                                     maxmemory,
                                     "--maxmemory-policy",
                                     opts_.maxmemory_policy};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      *error = std::string("fork failed: ") + std::strerror(errno);
      return false;
    }
    if (pid == 0) {
      // The child: dies with the test process, writes nothing to the test's output.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      const int devnull = ::open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        ::dup2(devnull, 0);
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
      }
      ::execv(argv[0], argv.data());
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    paused_ = false;
    const auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        *error = "redis-server exited (status " + std::to_string(st) + ") on port " + port +
                 "; log:\n" + this->log();
        return false;
      }
      if (redisContext* c = connect(std::chrono::milliseconds(200))) {
        auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
        const bool pong = r != nullptr && r->type == REDIS_REPLY_STATUS &&
                          std::string_view(r->str, r->len) == "PONG";
        if (r != nullptr)
          freeReplyObject(r);
        redisFree(c);
        if (pong)
          return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    *error = "no PONG within " + std::to_string(opts_.start_timeout.count()) + " ms; log:\n" +
             this->log();
    kill();
    return false;
  }

  void reap() {
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    paused_ = false;
  }

  void stop() noexcept {
    if (pid_ <= 0)
      return;
    if (paused_)
      ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int st = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid_, SIGKILL);
    reap();
  }

  options opts_;
  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
};

}  // namespace kvkit::test
