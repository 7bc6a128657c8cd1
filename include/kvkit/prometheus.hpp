// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief A cache's statistics in the Prometheus text exposition format (version 0.0.4), and a
/// latency histogram an engine records admissions into.
///
/// Every metric family is written whole: a `# HELP` line, a `# TYPE` line, then its samples.
/// Names carry their unit (`_total` for counters, `_bytes`, `_seconds`); every cache sample has a
/// `tier` label (`"pool"` for the cache's own blocks; lower tiers add their own values) and the
/// per-class samples a `class` label. Ratios are not exported: compute them in PromQL, e.g.
/// `rate(kvkit_cache_hit_tokens_total[5m]) / rate(kvkit_cache_query_tokens_total[5m])`.
/// The header has no dependency; serving the text over HTTP is the engine's business
/// (examples/mini_engine serves it on `/metrics`).
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/metrics.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvkit {

/// @brief The HTTP `Content-Type` of the text exposition format 0.0.4.
inline constexpr std::string_view prometheus_content_type =
    "text/plain; version=0.0.4; charset=utf-8";

/// @brief Prometheus metric types written by kvkit.
enum class prometheus_type : std::uint8_t {
  counter,    ///< Monotonic count since the cache was made.
  gauge,      ///< A value now.
  histogram,  ///< Cumulative buckets, `_sum` and `_count`.
};

/// @brief One label: name and value (the value is escaped when written).
struct prometheus_label {
  std::string_view name;   ///< `[a-zA-Z_][a-zA-Z0-9_]*`.
  std::string_view value;  ///< Any UTF-8 text.
};

/// @brief Naming of the exported metrics.
struct prometheus_options {
  std::string_view prefix = "kvkit";  ///< Prefix of every metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
  std::span<const prometheus_label> labels{};  ///< Labels added to every sample (e.g. the
                                               ///< engine's name); names must not be `tier`,
                                               ///< `class` or `le`.
};

/// @brief Statistics of one tier of a cache: the `tier` label's value, the cache-wide
/// statistics and the request classes to export.
struct prometheus_tier {
  std::string_view tier = "pool";  ///< Value of the `tier` label.
  cache_stats stats;               ///< The tier's statistics.
  /// @brief One request class: its number (or name) and its statistics.
  struct request_class {
    std::string_view name;  ///< Value of the `class` label (e.g. "0", "interactive").
    class_stats stats;      ///< The class's statistics.
  };
  std::vector<request_class> classes;  ///< Classes to export (may be empty).
};

/// @brief Appends Prometheus text to a string, one metric family at a time.
///
/// Use family() once per metric, then its samples. Names and labels are checked: a bad one makes
/// outcome() an error naming it, and nothing more is written.
class prometheus_writer {
 public:
  /// @brief A writer appending to @p out.
  /// @param out The exposition text.
  /// @param options Prefix and constant labels.
  explicit prometheus_writer(std::string& out, const prometheus_options& options = {});

  /// @brief Starts a metric family: writes its `# HELP` and `# TYPE` lines.
  /// @param name Name after the prefix (e.g. `cache_queries_total`).
  /// @param type The metric type.
  /// @param help One line of help text.
  void family(std::string_view name, prometheus_type type, std::string_view help);

  /// @brief Writes one sample of the current family.
  /// @param suffix Appended to the family's name (`""`, or `_bucket`, `_sum`, `_count`).
  /// @param labels The sample's labels (the constant labels come first).
  /// @param value The value.
  void sample(std::string_view suffix, std::span<const prometheus_label> labels, double value);
  /// @copydoc sample(std::string_view, std::span<const prometheus_label>, double)
  void sample(std::string_view suffix, std::span<const prometheus_label> labels,
              std::uint64_t value);

  /// @brief Whether every name and label so far was valid.
  /// @return Ok, or `errc::invalid_argument` naming the first bad one.
  [[nodiscard]] const status& outcome() const noexcept { return status_; }

 private:
  void fail(std::string message);
  void begin_sample(std::string_view suffix, std::span<const prometheus_label> labels);

  std::string& out_;
  prometheus_options options_;
  std::string family_;
  status status_;
};

/// @brief A latency histogram with fixed buckets (seconds), recorded from any thread.
///
/// observe() is a few relaxed atomic adds; write_prometheus() reads the buckets and writes them
/// cumulative, with the `+Inf` bucket equal to `_count`.
class latency_histogram {
 public:
  /// @brief Bucket upper bounds for admission latency: 1 us to 100 ms.
  /// @return The bounds in seconds.
  [[nodiscard]] static std::vector<double> default_admit_buckets() {
    return {1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 1e-1};
  }

  /// @brief A histogram with the given bucket upper bounds.
  /// @param upper_bounds Finite, strictly increasing, non-negative, at least one.
  /// @return The histogram, or `errc::invalid_argument` naming the bad bound.
  [[nodiscard]] static kvkit::result<latency_histogram> create(std::vector<double> upper_bounds);

  /// @brief A histogram with default_admit_buckets().
  latency_histogram() : latency_histogram(default_admit_buckets(), 0) {}

  /// @brief Records one duration.
  /// @param seconds The duration (negative counts as 0; NaN is ignored).
  void observe(double seconds) noexcept;

  /// @brief The bucket upper bounds.
  /// @return The bounds in seconds.
  [[nodiscard]] const std::vector<double>& upper_bounds() const noexcept { return bounds_; }
  /// @brief Observations so far.
  /// @return The count.
  [[nodiscard]] std::uint64_t count() const noexcept;
  /// @brief Cumulative counts: observations at most each bound, then all (the `+Inf` bucket).
  /// @return `upper_bounds().size() + 1` counts.
  [[nodiscard]] std::vector<std::uint64_t> cumulative_counts() const;
  /// @brief Sum of the observations.
  /// @return Seconds.
  [[nodiscard]] double sum() const noexcept;

 private:
  struct state {
    explicit state(std::size_t buckets) : counts(buckets) {}
    std::vector<std::atomic<std::uint64_t>> counts;  // per bucket, +Inf last (not cumulative)
    std::atomic<double> sum{0.0};
  };
  latency_histogram(std::vector<double> bounds, int)
      : bounds_(std::move(bounds)), state_(std::make_unique<state>(bounds_.size() + 1)) {}

  std::vector<double> bounds_;
  std::unique_ptr<state> state_;
};

/// @brief Writes the statistics of a cache's tiers: cache-wide counters and gauges, then the
/// per-class counters, each family once with a sample per tier (and class).
/// @param out The exposition text (appended to).
/// @param tiers The tiers (the cache's own blocks are the tier `"pool"`).
/// @param options Prefix and constant labels.
/// @return Ok, or `errc::invalid_argument` naming a bad prefix or label.
status write_prometheus(std::string& out, std::span<const prometheus_tier> tiers,
                        const prometheus_options& options = {});

/// @brief Writes a latency histogram as one histogram family.
/// @param out The exposition text (appended to).
/// @param histogram The histogram.
/// @param name Name after the prefix, ending in `_seconds` (e.g. `admit_duration_seconds`).
/// @param help One line of help text.
/// @param options Prefix and constant labels.
/// @param labels Labels of its samples (e.g. `{"tier", "pool"}`).
/// @return Ok, or `errc::invalid_argument` naming a bad name or label.
status write_prometheus(std::string& out, const latency_histogram& histogram, std::string_view name,
                        std::string_view help, const prometheus_options& options = {},
                        std::span<const prometheus_label> labels = {});

/// @brief The statistics of @p cache as one tier, with the classes @p classes.
/// @tparam Cache A `prefix_cache` or `synchronized_cache` (has `stats()` and
/// `stats(request_class)`).
/// @param cache The cache.
/// @param classes Request classes to export (their numbers become the `class` label).
/// @param class_names Storage for the labels' text (kept alive while the tier is used).
/// @param tier The `tier` label's value.
/// @return The tier.
template <class Cache>
[[nodiscard]] prometheus_tier prometheus_cache_tier(const Cache& cache,
                                                    std::span<const std::uint32_t> classes,
                                                    std::vector<std::string>& class_names,
                                                    std::string_view tier = "pool") {
  prometheus_tier t;
  t.tier = tier;
  t.stats = cache.stats();
  class_names.clear();
  class_names.reserve(classes.size());
  for (const std::uint32_t c : classes)
    class_names.push_back(std::to_string(c));
  for (std::size_t i = 0; i < classes.size(); ++i)
    t.classes.push_back({class_names[i], cache.stats(classes[i])});
  return t;
}

}  // namespace kvkit

#include <kvkit/detail/prometheus_impl.hpp>
