// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internals of the tiers: a latency histogram, the error-episode book-keeping and the clock.
// Not a public header.
#pragma once

#include <kvkit/tier.hpp>

#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace kvkit::detail {

inline std::chrono::nanoseconds tier_steady_now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
}

// Log-linear histogram of nanosecond durations: exact below 16, then 16 buckets per octave.
class latency_histogram {
 public:
  void record(std::uint64_t ns) noexcept {
    ++counts_[index(ns)];
    ++count_;
    max_ = std::max(max_, ns);
  }

  [[nodiscard]] latency_summary summary() const noexcept {
    latency_summary s;
    s.count = count_;
    s.max_ns = max_;
    if (count_ == 0)
      return s;
    s.p50_ns = std::min(percentile(0.50), max_);
    s.p90_ns = std::min(percentile(0.90), max_);
    s.p99_ns = std::min(percentile(0.99), max_);
    return s;
  }

 private:
  static constexpr std::size_t buckets = 16 + 60 * 16;

  static std::size_t index(std::uint64_t v) noexcept {
    if (v < 16)
      return static_cast<std::size_t>(v);
    const auto e = static_cast<std::size_t>(std::bit_width(v) - 1);  // >= 4
    const auto sub = static_cast<std::size_t>((v >> (e - 4)) & 15u);
    return 16 + (e - 4) * 16 + sub;
  }
  static std::uint64_t upper(std::size_t i) noexcept {
    if (i < 16)
      return i;
    const std::size_t e = (i - 16) / 16 + 4;
    const std::size_t sub = (i - 16) % 16;
    return ((std::uint64_t{16} + sub + 1) << (e - 4)) - 1;
  }
  [[nodiscard]] std::uint64_t percentile(double q) const noexcept {
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_));
    if (static_cast<double>(rank) < q * static_cast<double>(count_))
      ++rank;
    rank = std::max<std::uint64_t>(rank, 1);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets; ++i) {
      seen += counts_[i];
      if (seen >= rank)
        return upper(i);
    }
    return max_;
  }

  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

// Error counters and episodes: the first error of a kind begins an episode, reported once; the
// episode of a connection kind ends at the next successful round trip (link_ok()), the episode of
// any other kind after `quiet` without an error of that kind (checked by poll()).
class error_episodes {
 public:
  using reporter = std::function<void(const tier_event&)>;

  error_episodes(std::string_view tier, reporter report, std::chrono::nanoseconds quiet,
                 std::function<std::chrono::nanoseconds()> now)
      : tier_(tier), report_(std::move(report)), quiet_(quiet.count()), now_(std::move(now)) {}

  static bool is_link_error(tier_error e) noexcept {
    return e == tier_error::connect || e == tier_error::timeout || e == tier_error::disconnected ||
           e == tier_error::unavailable;
  }

  void count(tier_error e, const std::string& message) {
    const auto k = static_cast<std::size_t>(e);
    ++errors_[k];
    const std::int64_t now = now_().count();
    // Link errors share one episode: an outage is one report whatever its symptoms.
    const std::size_t slot = is_link_error(e) ? link_slot : k;
    episode& ep = open_[slot];
    ep.last_ns = now;
    ++ep.errors;
    if (!ep.open) {
      ep.open = true;
      ep.kind = e;
      ep.begin_ns = now;
      ep.errors = 1;
      ++episodes_;
      emit(tier_event::kind::episode_begin, ep, message, 0);
    }
  }

  // The link works again: ends the link episode.
  void link_ok() {
    episode& ep = open_[link_slot];
    if (ep.open)
      close(ep);
  }

  // Ends the episodes of other kinds that have been quiet long enough.
  void poll() {
    const std::int64_t now = now_().count();
    for (std::size_t k = 0; k < tier_error_kinds; ++k) {
      episode& ep = open_[k];
      if (k != link_slot && ep.open && now - ep.last_ns >= quiet_)
        close(ep);
    }
  }

  [[nodiscard]] const std::array<std::uint64_t, tier_error_kinds>& errors() const noexcept {
    return errors_;
  }
  [[nodiscard]] std::uint64_t episodes() const noexcept { return episodes_; }
  [[nodiscard]] bool in_episode(tier_error e) const noexcept {
    return open_[is_link_error(e) ? link_slot : static_cast<std::size_t>(e)].open;
  }

 private:
  // Kind slots for data/server errors; the slot of `connect` doubles as the link episode.
  static constexpr std::size_t link_slot = static_cast<std::size_t>(tier_error::connect);

  struct episode {
    bool open = false;
    tier_error kind = tier_error::connect;
    std::int64_t begin_ns = 0;
    std::int64_t last_ns = 0;
    std::uint64_t errors = 0;
  };

  void close(episode& ep) {
    ep.open = false;
    const std::int64_t now = now_().count();
    emit(tier_event::kind::episode_end, ep, "recovered",
         static_cast<std::uint64_t>(std::max<std::int64_t>(now - ep.begin_ns, 0)));
  }

  void emit(tier_event::kind what, const episode& ep, const std::string& message,
            std::uint64_t duration) {
    if (!report_)
      return;
    tier_event ev;
    ev.what = what;
    ev.error = ep.kind;
    ev.tier = tier_;
    ev.message = message;
    ev.errors = ep.errors;
    ev.duration_ns = duration;
    report_(ev);
  }

  std::string_view tier_;
  reporter report_;
  std::int64_t quiet_;
  std::function<std::chrono::nanoseconds()> now_;
  std::array<std::uint64_t, tier_error_kinds> errors_{};
  std::array<episode, tier_error_kinds> open_{};
  std::uint64_t episodes_ = 0;
};

}  // namespace kvkit::detail
