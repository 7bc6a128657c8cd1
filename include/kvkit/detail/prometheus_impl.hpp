// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Implementation of <kvkit/prometheus.hpp>.
#pragma once

#include <kvkit/cache_types.hpp>

#include <array>
#include <limits>
#include <utility>

namespace kvkit {
namespace detail {

inline bool prometheus_name_ok(std::string_view s, bool colon) noexcept {
  if (s.empty())
    return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
      return false;
  }
  return true;
}

inline void prometheus_escape(std::string& out, std::string_view s, bool quote) {
  for (const char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (quote && c == '"')
      out += "\\\"";
    else
      out += c;
  }
}

inline void prometheus_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

inline void prometheus_number(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

struct cache_metric {
  const char* name;
  prometheus_type type;
  const char* help;
  std::uint64_t (*get)(const cache_stats&);
};

// Every field of cache_stats, in its declaration order.
inline constexpr std::array<cache_metric, 32> cache_metric_table{{
    {"cache_queries_total", prometheus_type::counter, "Admissions (prompts looked up).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.queries;
     }},
    {"cache_query_tokens_total", prometheus_type::counter, "Prompt tokens of all admissions.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.query_tokens;
     }},
    {"cache_hit_tokens_total", prometheus_type::counter,
     "Prompt tokens served from the cache (prefill skipped).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.hit_tokens;
     }},
    {"cache_query_blocks_total", prometheus_type::counter,
     "Prompt blocks eligible for a hit (full, not holding the last prompt token).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.query_blocks;
     }},
    {"cache_hit_blocks_total", prometheus_type::counter, "Prompt blocks served from the cache.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.hit_blocks;
     }},
    {"cache_full_hits_total", prometheus_type::counter,
     "Admissions whose every eligible block hit.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.full_hits;
     }},
    {"cache_partial_hits_total", prometheus_type::counter,
     "Admissions where some but not all eligible blocks hit.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.partial_hits;
     }},
    {"cache_misses_total", prometheus_type::counter,
     "Admissions with no hit (short ones included).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.misses;
     }},
    {"cache_conversational_hits_total", prometheus_type::counter,
     "Admissions whose hit reused generated tokens of an earlier sequence.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.conversational_hits;
     }},
    {"cache_partial_block_hits_total", prometheus_type::counter,
     "Admissions that reused part of a block (copy on write).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.partial_block_hits;
     }},
    {"cache_copied_blocks_total", prometheus_type::counter,
     "Blocks copied on write (partial reuse, fork).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.copied_blocks;
     }},
    {"cache_short_queries_total", prometheus_type::counter,
     "Admissions with no block eligible for a hit (prompt of at most one block).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.short_queries;
     }},
    {"cache_appended_tokens_total", prometheus_type::counter, "Tokens appended by decode.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.appended_tokens;
     }},
    {"cache_committed_blocks_total", prometheus_type::counter,
     "Blocks registered as cached by commit.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.committed_blocks;
     }},
    {"cache_deduplicated_blocks_total", prometheus_type::counter,
     "Computed blocks replaced by an identical cached block.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.deduplicated_blocks;
     }},
    {"cache_evicted_blocks_total", prometheus_type::counter,
     "Cached blocks evicted (cascades included).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.evictions;
     }},
    {"cache_cascade_evicted_blocks_total", prometheus_type::counter,
     "Cached blocks evicted with their parent (descendants of a victim).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.cascade_evictions;
     }},
    {"cache_finished_sequences_total", prometheus_type::counter,
     "Sequences finished (pins included).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.finished_sequences;
     }},
    {"cache_forks_total", prometheus_type::counter, "Sequences made by fork.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.forks;
     }},
    {"cache_pins_total", prometheus_type::counter, "Successful pin calls.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.pins;
     }},
    {"cache_invalidated_blocks_total", prometheus_type::counter,
     "Blocks freed by invalidation (now or on release).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.invalidated_blocks;
     }},
    {"cache_expired_blocks_total", prometheus_type::counter, "Blocks freed by expiry.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.expired_blocks;
     }},
    {"cache_pool_blocks", prometheus_type::gauge, "Blocks in the pool.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.blocks_total;
     }},
    {"cache_free_blocks", prometheus_type::gauge, "Blocks holding nothing.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.blocks_free;
     }},
    {"cache_cached_blocks", prometheus_type::gauge, "Blocks registered as cached (reusable).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.blocks_cached;
     }},
    {"cache_referenced_blocks", prometheus_type::gauge,
     "Blocks held by at least one live sequence.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.blocks_referenced;
     }},
    {"cache_evictable_blocks", prometheus_type::gauge, "Cached blocks held by no sequence.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.blocks_evictable;
     }},
    {"cache_active_sequences", prometheus_type::gauge, "Live sequences.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.active_sequences;
     }},
    {"cache_metadata_bytes", prometheus_type::gauge,
     "Bookkeeping bytes of the cache and its policies (stored tokens excluded).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.metadata_bytes;
     }},
    {"cache_token_bytes", prometheus_type::gauge,
     "Bytes of stored block tokens (for hit verification).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.token_bytes;
     }},
    {"cache_miss_record_bytes", prometheus_type::gauge,
     "Bytes of the miss diagnostics (removal record and content index).",
     [](const cache_stats& s) -> std::uint64_t {
       return s.miss_record_bytes;
     }},
    {"cache_kv_bytes", prometheus_type::gauge, "Bytes of K/V storage.",
     [](const cache_stats& s) -> std::uint64_t {
       return s.kv_bytes;
     }},
}};

struct class_metric {
  const char* name;
  const char* help;
  std::uint64_t (*get)(const class_stats&);
};

inline constexpr std::array<class_metric, 4> class_metrics{{
    {"class_queries_total", "Admissions of the request class.",
     [](const class_stats& s) -> std::uint64_t {
       return s.queries;
     }},
    {"class_query_tokens_total", "Prompt tokens of the request class's admissions.",
     [](const class_stats& s) -> std::uint64_t {
       return s.query_tokens;
     }},
    {"class_hit_tokens_total", "Prompt tokens of the request class served from the cache.",
     [](const class_stats& s) -> std::uint64_t {
       return s.hit_tokens;
     }},
    {"class_misses_total", "Admissions of the request class with no hit.",
     [](const class_stats& s) -> std::uint64_t {
       return s.misses;
     }},
}};

// Every field of miss_reason_counts, as the value of a "reason" label.
/// Calls @p f(reason, count) for every miss reason in @p m (the label values are to_string()'s
/// names), then for `other_namespace`.
template <class F>
void for_each_miss_reason(const miss_reason_counts& m, F&& f) {
  for (std::size_t r = 0; r < miss_reason_count; ++r) {
    const auto reason = static_cast<miss_reason>(r);
    f(to_string(reason), count_of(m, reason));
  }
  f(std::string_view("other_namespace"), m.other_namespace);
}

inline constexpr const char* miss_reason_help =
    "Admissions by why their match stopped (reason label; other_namespace: told never_stored, "
    "the block was cached under other keys).";

}  // namespace detail

// ---- prometheus_writer -----------------------------------------------------------------------

inline prometheus_writer::prometheus_writer(std::string& out, const prometheus_options& options)
    : out_(out), options_(options) {
  if (!detail::prometheus_name_ok(options_.prefix, true)) {
    fail("prefix '" + std::string(options_.prefix) +
         "' is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
  }
  for (const prometheus_label& l : options_.labels) {
    if (!detail::prometheus_name_ok(l.name, false) || l.name.starts_with("__") ||
        l.name == "tier" || l.name == "class" || l.name == "le") {
      fail("label name '" + std::string(l.name) +
           "' is not accepted: [a-zA-Z_][a-zA-Z0-9_]*, not starting with '__', and not one of "
           "tier, class, le (kvkit's own labels)");
    }
  }
}

inline void prometheus_writer::fail(std::string message) {
  if (status_.ok()) {
    // Swapped in rather than assigned: nvcc warns on the discarded `status&` of an assignment.
    status failed = error{errc::invalid_argument, "kvkit: prometheus: " + std::move(message)};
    std::swap(status_, failed);
  }
}

inline void prometheus_writer::family(std::string_view name, prometheus_type type,
                                      std::string_view help) {
  if (!status_.ok())
    return;
  family_.assign(options_.prefix);
  family_ += '_';
  family_ += name;
  if (!detail::prometheus_name_ok(family_, true)) {
    fail("metric name '" + family_ + "' is not valid ([a-zA-Z_:][a-zA-Z0-9_:]*)");
    return;
  }
  out_ += "# HELP ";
  out_ += family_;
  out_ += ' ';
  detail::prometheus_escape(out_, help, false);
  out_ += "\n# TYPE ";
  out_ += family_;
  out_ += type == prometheus_type::counter ? " counter\n"
          : type == prometheus_type::gauge ? " gauge\n"
                                           : " histogram\n";
}

inline void prometheus_writer::begin_sample(std::string_view suffix,
                                            std::span<const prometheus_label> labels) {
  out_ += family_;
  out_ += suffix;
  if (!options_.labels.empty() || !labels.empty()) {
    out_ += '{';
    bool first = true;
    for (const auto group : {options_.labels, labels}) {
      for (const prometheus_label& l : group) {
        if (!first)
          out_ += ',';
        first = false;
        out_ += l.name;
        out_ += "=\"";
        detail::prometheus_escape(out_, l.value, true);
        out_ += '"';
      }
    }
    out_ += '}';
  }
  out_ += ' ';
}

inline void prometheus_writer::sample(std::string_view suffix,
                                      std::span<const prometheus_label> labels, double value) {
  if (!status_.ok())
    return;
  for (const prometheus_label& l : labels) {
    if (!detail::prometheus_name_ok(l.name, false)) {
      fail("label name '" + std::string(l.name) + "' is not valid ([a-zA-Z_][a-zA-Z0-9_]*)");
      return;
    }
  }
  begin_sample(suffix, labels);
  detail::prometheus_number(out_, value);
  out_ += '\n';
}

inline void prometheus_writer::sample(std::string_view suffix,
                                      std::span<const prometheus_label> labels,
                                      std::uint64_t value) {
  if (!status_.ok())
    return;
  for (const prometheus_label& l : labels) {
    if (!detail::prometheus_name_ok(l.name, false)) {
      fail("label name '" + std::string(l.name) + "' is not valid ([a-zA-Z_][a-zA-Z0-9_]*)");
      return;
    }
  }
  begin_sample(suffix, labels);
  detail::prometheus_number(out_, value);
  out_ += '\n';
}

// ---- latency_histogram -------------------------------------------------------------------------

inline kvkit::result<latency_histogram> latency_histogram::create(
    std::vector<double> upper_bounds) {
  if (upper_bounds.empty()) {
    return error{errc::invalid_argument,
                 "kvkit: latency_histogram: give at least one bucket upper bound"};
  }
  for (std::size_t i = 0; i < upper_bounds.size(); ++i) {
    const double b = upper_bounds[i];
    if (!std::isfinite(b) || b < 0 || (i > 0 && b <= upper_bounds[i - 1])) {
      return error{errc::invalid_argument,
                   "kvkit: latency_histogram: bucket upper bounds must be finite, >= 0 and "
                   "strictly increasing; bound " +
                       std::to_string(i) + " is " + std::to_string(b)};
    }
  }
  return latency_histogram(std::move(upper_bounds), 0);
}

inline void latency_histogram::observe(double seconds) noexcept {
  if (std::isnan(seconds))
    return;
  seconds = std::max(seconds, 0.0);
  // The first bucket whose bound is >= seconds (`le` is inclusive); +Inf past the last.
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), seconds);
  const auto bucket = static_cast<std::size_t>(it - bounds_.begin());
  state_->counts[bucket].fetch_add(1, std::memory_order_relaxed);
  state_->sum.fetch_add(seconds, std::memory_order_relaxed);
}

inline std::uint64_t latency_histogram::count() const noexcept {
  std::uint64_t n = 0;
  for (const auto& c : state_->counts)
    n += c.load(std::memory_order_relaxed);
  return n;
}

inline std::vector<std::uint64_t> latency_histogram::cumulative_counts() const {
  std::vector<std::uint64_t> out(state_->counts.size());
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    n += state_->counts[i].load(std::memory_order_relaxed);
    out[i] = n;
  }
  return out;
}

inline double latency_histogram::sum() const noexcept {
  return state_->sum.load(std::memory_order_relaxed);
}

// ---- writers
// -------------------------------------------------------------------------------------

inline status write_prometheus(std::string& out, std::span<const prometheus_tier> tiers,
                               const prometheus_options& options) {
  prometheus_writer w(out, options);
  for (const detail::cache_metric& m : detail::cache_metric_table) {
    w.family(m.name, m.type, m.help);
    for (const prometheus_tier& t : tiers) {
      const prometheus_label labels[] = {{"tier", t.tier}};
      w.sample("", labels, m.get(t.stats));
    }
  }
  w.family("cache_admissions_by_miss_reason_total", prometheus_type::counter,
           detail::miss_reason_help);
  for (const prometheus_tier& t : tiers) {
    detail::for_each_miss_reason(
        t.stats.miss_reasons, [&](std::string_view reason, std::uint64_t count) {
          const prometheus_label labels[] = {{"tier", t.tier}, {"reason", reason}};
          w.sample("", labels, count);
        });
  }
  const bool any_class = std::any_of(tiers.begin(), tiers.end(),
                                     [](const prometheus_tier& t) { return !t.classes.empty(); });
  if (any_class) {
    for (const detail::class_metric& m : detail::class_metrics) {
      w.family(m.name, prometheus_type::counter, m.help);
      for (const prometheus_tier& t : tiers) {
        for (const prometheus_tier::request_class& c : t.classes) {
          const prometheus_label labels[] = {{"tier", t.tier}, {"class", c.name}};
          w.sample("", labels, m.get(c.stats));
        }
      }
    }
    w.family("class_admissions_by_miss_reason_total", prometheus_type::counter,
             detail::miss_reason_help);
    for (const prometheus_tier& t : tiers) {
      for (const prometheus_tier::request_class& c : t.classes) {
        detail::for_each_miss_reason(c.stats.miss_reasons,
                                     [&](std::string_view reason, std::uint64_t count) {
                                       const prometheus_label labels[] = {
                                           {"tier", t.tier}, {"class", c.name}, {"reason", reason}};
                                       w.sample("", labels, count);
                                     });
      }
    }
  }
  return w.outcome();
}

inline status write_prometheus(std::string& out, const latency_histogram& histogram,
                               std::string_view name, std::string_view help,
                               const prometheus_options& options,
                               std::span<const prometheus_label> labels) {
  prometheus_writer w(out, options);
  w.family(name, prometheus_type::histogram, help);
  const std::vector<std::uint64_t> counts = histogram.cumulative_counts();
  const std::vector<double>& bounds = histogram.upper_bounds();
  std::vector<prometheus_label> with_le(labels.begin(), labels.end());
  with_le.push_back({"le", {}});
  std::string le;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    le.clear();
    detail::prometheus_number(
        le, i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity());
    with_le.back().value = le;
    w.sample("_bucket", with_le, counts[i]);
  }
  w.sample("_sum", labels, histogram.sum());
  w.sample("_count", labels, counts.back());
  return w.outcome();
}

}  // namespace kvkit
