// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit-replay: replays a request trace (Mooncake JSON lines, or token-id JSON lines) through
// prefix caches of any policy combinations and capacities; writes a CSV row per run and,
// with --plot, a chart of token hit rate against capacity (PNG and SVG, through gnuplot).
// --optimal adds Belady's offline-optimal eviction (eviction "optimal") to the runs.
//
//   kvkit-replay trace.jsonl                                  # free_list/hash/lru, unlimited
//   kvkit-replay trace.jsonl --sequential --all --capacity 2000,5000,unlimited
//   kvkit-replay trace.jsonl --eviction lru,lfu,sieve --capacity-fractions 0.05,0.1,0.5,1
//       --optimal --plot out/hit_rate --out out/hit_rate.csv      (one command line)
//
// CSV columns: policy, capacity, requests, block_hit_rate, token_hit_rate, tokens_saved,
// evictions, peak_blocks_in_use, metadata_bytes, lookups_per_sec, queued, rejected,
// capacity_kind, cache_output (these fourteen first, in this order, as before per-class figures
// were written), then three columns per request class of the trace, in class order:
// class_<C>_requests, class_<C>_block_hit_rate, class_<C>_token_hit_rate, where <C> is the class
// name (token traces with "class": "name") or number (0 for a trace without classes), then the
// miss-reason breakdown, requests by why their match stopped (kvkit::miss_reason): miss_full_hit,
// miss_never_stored, miss_evicted, miss_invalidated, miss_expired, miss_partial_last_block,
// miss_pool_too_small (the rejected requests), miss_other_namespace (told never_stored; cached
// under other keys); they add up to requests + rejected. One row per run; every row has every
// column.
//
// Tiers (tiers.hpp): --host-tier-blocks N puts a host tier of N blocks under the pool, and
// --remote-tier model|HOST:PORT a remote tier under that (an in-process unbounded model, or a
// Redis server the user started). Each run then also reports the token hit rate of each level,
// and the CSV gains the columns host_tier_blocks, remote_tier, pool_token_hit_rate,
// host_token_hit_rate, remote_token_hit_rate, demoted_blocks, remote_errors (last, after the
// miss-reason ones).
//
// See replay.hpp for how traces are replayed, optimal.hpp for the optimal eviction.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include "replay.hpp"
#include "tiers.hpp"
#include <CLI/CLI.hpp>

namespace {

namespace rp = kvkit::replay;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty())
      out.push_back(item);
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

/// One capacity to run: a block count, or unlimited (0), with the label the user gave.
struct capacity_spec {
  std::uint64_t blocks = 0;
  std::string kind;
};

/// Progress bar on stderr, drawn only when stderr is a terminal, at most 10 times a second.
class progress_bar {
 public:
  progress_bar(bool enabled) : enabled_(enabled && isatty(fileno(stderr)) != 0) {}
  void set_run(std::size_t run, std::size_t runs, std::string label) {
    run_ = run;
    runs_ = runs;
    label_ = std::move(label);
  }
  void update(std::size_t done, std::size_t total) {
    if (!enabled_)
      return;
    const auto now = std::chrono::steady_clock::now();
    if (done != total && now - last_ < std::chrono::milliseconds(100))
      return;
    last_ = now;
    const double frac = total == 0 ? 1.0 : double(done) / double(total);
    const int width = 30;
    const int fill = static_cast<int>(frac * width);
    std::fprintf(stderr, "\r[%.*s%*s] %3d%%  run %zu/%zu  %s\033[K", fill,
                 "##############################", width - fill, "", static_cast<int>(frac * 100),
                 run_, runs_, label_.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  void clear() {
    if (drawn_)
      std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::size_t run_ = 0, runs_ = 0;
  std::string label_;
  std::chrono::steady_clock::time_point last_{};
};

/// Whether @p exe is an executable file in a directory of PATH (an empty entry is the current
/// directory). Splits PATH with string_view and builds each candidate by appending, which also
/// keeps g++ 12's -Wrestrict false positive on std::string assignment at -O3 away.
bool find_on_path(std::string_view exe) {
  const char* path = std::getenv("PATH");
  if (path == nullptr)
    return false;
  std::string_view rest(path);
  while (true) {
    const std::size_t colon = rest.find(':');
    const std::string_view dir = rest.substr(0, colon);
    std::string candidate;
    candidate.reserve(dir.size() + 1 + exe.size() + 1);
    candidate.append(dir.empty() ? std::string_view(".") : dir);
    candidate.push_back('/');
    candidate.append(exe);
    if (access(candidate.c_str(), X_OK) == 0)
      return true;
    if (colon == std::string_view::npos)
      return false;
    rest.remove_prefix(colon + 1);
  }
}

std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// One CSV field: quoted (RFC 4180) when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos)
    return s;
  std::string out = "\"";
  for (char c : s)
    out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

/// The miss-reason columns (`miss_` + name), in CSV order.
constexpr const char* miss_columns[] = {"full_hit",       "never_stored",   "evicted",
                                        "invalidated",    "expired",        "partial_last_block",
                                        "pool_too_small", "other_namespace"};

/// The values of @p m in the order of miss_columns.
std::array<std::uint64_t, 8> miss_values(const kvkit::miss_reason_counts& m) {
  return {m.full_hit, m.never_stored,       m.evicted,        m.invalidated,
          m.expired,  m.partial_last_block, m.pool_too_small, m.other_namespace};
}

bool is_optimal(const std::string& policy) {
  const std::string_view tail = "/optimal";
  return policy.size() >= tail.size() &&
         std::string_view(policy).substr(policy.size() - tail.size()) == tail;
}

/// Writes PREFIX.dat and PREFIX.gp, runs gnuplot; returns an error message or "".
std::string plot(const std::string& prefix, const std::vector<rp::replay_result>& results,
                 const std::string& title) {
  if (!find_on_path("gnuplot"))
    return "--plot needs gnuplot, which is not on PATH; install the Debian package gnuplot-nox "
           "(apt-get install gnuplot-nox), or leave out --plot and plot the CSV yourself";
  std::map<std::string, std::vector<std::pair<std::uint64_t, double>>> lines;
  std::vector<std::string> order;
  std::uint64_t lo = ~0ull, hi = 0;
  for (const auto& r : results) {
    if (!lines.contains(r.policy))
      order.push_back(r.policy);
    lines[r.policy].emplace_back(r.capacity, r.token_hit_rate());
    lo = std::min(lo, r.capacity);
    hi = std::max(hi, r.capacity);
  }
  {
    std::ofstream dat(prefix + ".dat");
    if (!dat)
      return "cannot write " + prefix + ".dat";
    for (std::size_t i = 0; i < order.size(); ++i) {
      auto& pts = lines[order[i]];
      std::sort(pts.begin(), pts.end());
      dat << "# " << order[i] << "\n";
      for (const auto& [c, h] : pts)
        dat << c << ' ' << std::setprecision(8) << h << '\n';
      dat << "\n\n";
    }
  }
  std::string plot_cmd = "plot ";
  for (std::size_t i = 0; i < order.size(); ++i) {
    // Belady's optimum: a dashed black line above the others.
    plot_cmd += (i ? ", \\\n     " : "") + gp_quote(prefix + ".dat") + " index " +
                std::to_string(i) + " using 1:2 with linespoints " +
                (is_optimal(order[i]) ? "dashtype 2 linewidth 2 linecolor rgb 'black' " : "") +
                "title " + gp_quote(order[i]);
  }
  std::ofstream gp(prefix + ".gp");
  if (!gp)
    return "cannot write " + prefix + ".gp";
  gp << "# Token hit rate against cache capacity, one line per policy (kvkit-replay --plot).\n"
     << "set title " << gp_quote(title) << " noenhanced\n"
     << "set xlabel 'cache capacity (blocks)'\nset ylabel 'token hit rate'\n"
     << "set yrange [0:1]\nset grid\nset key bottom right noenhanced\n"
     << (lo > 0 && hi >= 10 * lo ? "set logscale x\n" : "")
     << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
     << "  set terminal pngcairo size 1000,650\n} else {\n  set terminal png size 1000,650\n}\n"
     << "set output " << gp_quote(prefix + ".png") << "\n"
     << plot_cmd << "\n"
     << "set terminal svg size 1000,650 dynamic\n"
     << "set output " << gp_quote(prefix + ".svg") << "\nreplot\nunset output\n";
  gp.close();
  const std::string cmd = "gnuplot " + sh_quote(prefix + ".gp");
  const int rc = std::system(cmd.c_str());
  if (rc != 0)
    return "gnuplot failed (exit status " + std::to_string(rc) + ") running " + prefix + ".gp";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "kvkit-replay: replays a request trace through kvkit prefix caches and reports hit rates, "
      "evictions, peak blocks, metadata and speed (CSV), optionally a plot of token hit rate "
      "against capacity."};
  std::string trace_path;
  std::string format = "auto";
  std::uint32_t trace_block = 512;
  std::uint32_t block_size = 16;
  std::string allocators = "free_list", matchers = "hash", evictions = "lru";
  bool all = false;
  std::string capacities, fractions;
  bool sequential = false;
  double tpot_ms = 20.0, prefill_ms = 0.0;
  std::optional<double> ttl_ms;
  std::string priorities;
  std::string on_error = "stop";
  std::string out_path, plot_prefix;
  bool list = false, baseline = false, check = false, quiet = false, optimal = false;
  std::string cache_output = "on";
  std::string miss_record = "all";
  int repeat = 1;
  rp::tier_options tiers;

  app.add_option("trace", trace_path, "Trace file (JSON lines; '-' reads stdin)");
  app.add_option("--format", format, "Trace format")
      ->check(CLI::IsMember({"auto", "mooncake", "tokens"}))
      ->capture_default_str();
  app.add_option("--trace-block-size", trace_block, "Mooncake: tokens per hash id")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--block-size", block_size,
                 "Token format: tokens per cache block (a power of two)")
      ->capture_default_str();
  app.add_option("--allocator", allocators, "Allocator name(s), comma-separated")
      ->capture_default_str();
  app.add_option("--matcher", matchers, "Matcher name(s), comma-separated")->capture_default_str();
  app.add_option("--eviction", evictions, "Eviction policy name(s), comma-separated")
      ->capture_default_str();
  app.add_flag("--all", all, "Every allocator x matcher x eviction combination");
  app.add_flag("--optimal", optimal,
               "Also replay with Belady's offline-optimal eviction (eviction 'optimal': the "
               "candidate whose next use is furthest goes first), for each allocator x matcher; "
               "the CSV and plot show it as a policy, stderr the gap of every policy to it");
  auto* cap_opt = app.add_option("--capacity", capacities,
                                 "Capacities in cache blocks, comma-separated, or 'unlimited' "
                                 "(e.g. 1000,2000,unlimited); default unlimited");
  app.add_option("--capacity-fractions", fractions,
                 "Capacities as fractions of the trace's distinct-block working set "
                 "(e.g. 0.05,0.1,0.25,0.5,1)")
      ->excludes(cap_opt);
  app.add_flag("--sequential", sequential, "One request at a time (ignore timestamps)");
  app.add_option("--tpot-ms", tpot_ms, "Decode time per output token (ms)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--prefill-ms-per-token", prefill_ms,
                 "Prefill time per uncached prompt token (ms)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--ttl-ms", ttl_ms, "ttl eviction: time to live of idle cached blocks (ms)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--class-priorities", priorities,
                 "priority eviction: priority (0-15) of request classes 0, 1, ... "
                 "(comma-separated)");
  app.add_option("--cache-output", cache_output,
                 "Generated output blocks stay cached after their request finishes (on, as vLLM "
                 "caches decode blocks), or are freed then (off); the CSV column cache_output says "
                 "which")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--miss-record", miss_record,
                 "Entries of the cache's record of removed blocks, which tells a miss on an "
                 "evicted block from one on a block never stored (the miss_* columns): 'all' "
                 "remembers every removal of the replay, a number bounds it as a cache would "
                 "(kvkit's default is the pool's block count), 0 turns it off")
      ->capture_default_str();
  app.add_option("--on-error", on_error, "Bad trace lines: stop at the first, or skip them")
      ->check(CLI::IsMember({"stop", "skip"}))
      ->capture_default_str();
  app.add_option("--out", out_path,
                 "CSV output file (default: stdout). One row per run: policy, capacity, requests, "
                 "block_hit_rate, token_hit_rate, tokens_saved, evictions, peak_blocks_in_use, "
                 "metadata_bytes, lookups_per_sec, queued, rejected, capacity_kind, "
                 "cache_output, then per request class C of the trace: class_C_requests, "
                 "class_C_block_hit_rate, class_C_token_hit_rate, then requests by miss reason: "
                 "miss_full_hit, miss_never_stored, miss_evicted, miss_invalidated, "
                 "miss_expired, miss_partial_last_block, miss_pool_too_small, "
                 "miss_other_namespace");
  app.add_option("--plot", plot_prefix,
                 "Write PREFIX.png and PREFIX.svg (token hit rate against capacity, one line per "
                 "policy) with gnuplot, plus PREFIX.gp and PREFIX.dat");
  app.add_flag("--baseline", baseline,
               "Also time an ideal unordered_set replay (unlimited, sequential) of the same "
               "trace and report it on stderr");
  app.add_option("--repeat", repeat, "Run each replay N times, keep the fastest")
      ->check(CLI::PositiveNumber);
  app.add_option("--host-tier-blocks", tiers.host_blocks,
                 "A host tier of N cache blocks under the pool (kvkit::host_tier, LRU): evicted "
                 "blocks are demoted there and promoted back at admission")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 31));
  app.add_option("--remote-tier", tiers.remote,
                 "A remote tier under the host tier: 'model' (an in-process, unbounded model of "
                 "a remote store) or HOST:PORT of a Redis server you started (kvkit::redis_tier)");
  app.add_flag("--check-invariants", check, "Check cache invariants after every request (slow)");
  app.add_flag("--list", list, "List the policy names and exit");
  app.add_flag("-q,--quiet", quiet, "No progress bar and no summary on stderr");
  CLI11_PARSE(app, argc, argv);

  const rp::policy_catalogue cat = rp::catalogue();
  if (list) {
    std::cout << "allocators: " << join(cat.allocators) << "\nmatchers:   " << join(cat.matchers)
              << "\nevictions:  " << join(cat.evictions) << "\n";
    return 0;
  }
  if (trace_path.empty()) {
    std::cerr << "kvkit-replay: no trace file given (see --help)\n";
    return 2;
  }

  // Policies.
  std::vector<std::string> as = all ? cat.allocators : split(allocators);
  std::vector<std::string> ms = all ? cat.matchers : split(matchers);
  std::vector<std::string> es = all ? cat.evictions : split(evictions);
  if (optimal && std::find(es.begin(), es.end(), "optimal") == es.end())
    es.emplace_back("optimal");
  for (const auto& a : as)
    for (const auto& m : ms)
      for (const auto& e : es)
        if (auto s = rp::check_combination(a, m, e); !s.ok()) {
          std::cerr << s.message() << "\n";
          return 2;
        }

  const bool with_tiers = tiers.host_blocks != 0 || !tiers.remote.empty();
  if (with_tiers) {
    if (auto s = rp::check_tiers(tiers); !s.ok()) {
      std::cerr << s.message() << "\n";
      return 2;
    }
    for (const auto& e : es) {
      if (e == "optimal") {
        std::cerr << "kvkit-replay: --optimal cannot run with tiers (--host-tier-blocks, "
                     "--remote-tier)\n";
        return 2;
      }
    }
    if (as != std::vector<std::string>{"free_list"} || ms != std::vector<std::string>{"hash"}) {
      std::cerr << "kvkit-replay: tiers (--host-tier-blocks, --remote-tier) run with "
                   "--allocator free_list --matcher hash only\n";
      return 2;
    }
  }

  if (!plot_prefix.empty() && !find_on_path("gnuplot")) {
    std::cerr << "kvkit-replay: --plot needs gnuplot, which is not on PATH; install the Debian "
                 "package gnuplot-nox (apt-get install gnuplot-nox), or leave out --plot\n";
    return 2;
  }

  // Trace.
  rp::parse_options po;
  po.format = format == "mooncake" ? rp::trace_format::mooncake
              : format == "tokens" ? rp::trace_format::tokens
                                   : rp::trace_format::automatic;
  po.trace_block_size = trace_block;
  po.cache_block_size = block_size;
  po.on_error = on_error == "skip" ? rp::error_mode::skip : rp::error_mode::stop;
  po.source = trace_path;
  std::ifstream file;
  if (trace_path != "-") {
    file.open(trace_path);
    if (!file) {
      std::cerr << "kvkit-replay: cannot open " << trace_path << "\n";
      return 1;
    }
  }
  auto parsed = rp::parse_trace(trace_path == "-" ? std::cin : file, po);
  if (!parsed.ok()) {
    std::cerr << parsed.error().message() << "\n";
    if (po.on_error == rp::error_mode::stop)
      std::cerr << "kvkit-replay: (--on-error skip skips bad lines)\n";
    return 1;
  }
  const rp::trace& t = *parsed;
  for (const auto& msg : t.skipped)
    std::cerr << msg << " (skipped)\n";
  if (t.requests.empty()) {
    std::cerr << "kvkit-replay: " << trace_path << " holds no request\n";
    return 1;
  }

  // Capacities.
  std::vector<capacity_spec> caps;
  if (!fractions.empty()) {
    for (const auto& f : split(fractions)) {
      char* end = nullptr;
      const double v = std::strtod(f.c_str(), &end);
      if (end == f.c_str() || *end != '\0' || !(v > 0)) {
        std::cerr << "kvkit-replay: --capacity-fractions: '" << f << "' is not a positive number\n";
        return 2;
      }
      caps.push_back({std::max<std::uint64_t>(
                          1, static_cast<std::uint64_t>(std::llround(v * t.distinct_blocks))),
                      "fraction=" + f});
    }
  } else if (!capacities.empty()) {
    for (const auto& c : split(capacities)) {
      if (c == "unlimited") {
        caps.push_back({0, "unlimited"});
        continue;
      }
      char* end = nullptr;
      const unsigned long long v = std::strtoull(c.c_str(), &end, 10);
      if (end == c.c_str() || *end != '\0' || v == 0 || c[0] == '-') {
        std::cerr << "kvkit-replay: --capacity: '" << c
                  << "' is neither a positive block count nor 'unlimited'\n";
        return 2;
      }
      caps.push_back({v, "blocks"});
    }
  } else {
    caps.push_back({0, "unlimited"});
  }
  std::vector<std::uint8_t> prio;
  for (const auto& p : split(priorities)) {
    const int v = std::atoi(p.c_str());
    if (v < 0 || v > 15 || p.find_first_not_of("0123456789") != std::string::npos) {
      std::cerr << "kvkit-replay: --class-priorities: '" << p << "' is not in 0..15\n";
      return 2;
    }
    prio.push_back(static_cast<std::uint8_t>(v));
  }

  std::ofstream out_file;
  if (!out_path.empty()) {
    out_file.open(out_path);
    if (!out_file) {
      std::cerr << "kvkit-replay: cannot write " << out_path << "\n";
      return 1;
    }
  }
  std::ostream& out = out_path.empty() ? std::cout : out_file;
  // Request classes of the trace, in class order, and their labels.
  std::vector<std::uint32_t> classes;
  for (const auto& r : t.requests) {
    if (r.request_class >= classes.size())
      classes.resize(r.request_class + 1, 0);
    classes[r.request_class] = 1;
  }
  std::vector<std::uint32_t> class_ids;
  for (std::uint32_t k = 0; k < classes.size(); ++k)
    if (classes[k] != 0)
      class_ids.push_back(k);
  const auto class_label = [&](std::size_t k) {
    return k < t.class_names.size() ? t.class_names[k] : std::to_string(k);
  };
  out << "policy,capacity,requests,block_hit_rate,token_hit_rate,tokens_saved,evictions,"
         "peak_blocks_in_use,metadata_bytes,lookups_per_sec,queued,rejected,capacity_kind,"
         "cache_output";
  for (const std::uint32_t k : class_ids) {
    for (const char* col : {"requests", "block_hit_rate", "token_hit_rate"})
      out << ',' << csv_field("class_" + class_label(k) + "_" + col);
  }
  for (const char* col : miss_columns)
    out << ",miss_" << col;
  if (with_tiers) {
    out << ",host_tier_blocks,remote_tier,pool_token_hit_rate,host_token_hit_rate,"
           "remote_token_hit_rate,demoted_blocks,remote_errors";
  }
  out << '\n';

  if (!quiet) {
    std::cerr << "kvkit-replay: " << trace_path << ": " << t.requests.size() << " requests, "
              << t.total_lookups << " block lookups, working set " << t.distinct_blocks
              << " blocks ("
              << (t.format == rp::trace_format::mooncake
                      ? "mooncake, " + std::to_string(t.trace_block_size) + " tokens per block"
                      : "tokens, block size " + std::to_string(t.cache_block_size))
              << "), " << (sequential ? "sequential" : "overlapping by timestamp")
              << ", output blocks " << (cache_output == "on" ? "cached" : "not cached") << "\n";
  }
  if (baseline) {
    rp::replay_result best = rp::ideal_replay(t);
    for (int i = 1; i < repeat; ++i) {
      auto r = rp::ideal_replay(t);
      if (r.seconds < best.seconds)
        best = r;
    }
    std::cerr << "baseline " << best.policy << ": block hit rate " << std::fixed
              << std::setprecision(4) << 100 * best.block_hit_rate() << "%, token hit rate "
              << 100 * best.token_hit_rate() << "%, " << std::setprecision(2)
              << best.lookups_per_sec() / 1e6 << " M block lookups/s\n"
              << std::defaultfloat;
  }

  progress_bar bar(!quiet);
  rp::replay_options ro;
  ro.sequential = sequential;
  ro.tpot_ms = tpot_ms;
  ro.prefill_ms_per_token = prefill_ms;
  ro.ttl_ms = ttl_ms;
  ro.class_priorities = prio;
  ro.check_invariants = check;
  ro.cache_output = cache_output == "on";
  if (miss_record != "all") {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(miss_record.c_str(), &end, 10);
    if (miss_record.empty() || *end != '\0' || miss_record[0] == '-' || v > (1ull << 31)) {
      std::cerr << "kvkit-replay: --miss-record: '" << miss_record
                << "' is neither 'all' nor an entry count from 0 to 2147483648\n";
      return 2;
    }
    ro.miss_record = static_cast<std::uint32_t>(v);
  }
  ro.progress = [&](std::size_t done, std::size_t total) {
    bar.update(done, total);
  };

  std::vector<rp::replay_result> results;
  const std::size_t runs = as.size() * ms.size() * es.size() * caps.size();
  std::size_t run = 0;
  for (const auto& a : as) {
    for (const auto& m : ms) {
      for (const auto& e : es) {
        for (const auto& c : caps) {
          ++run;
          bar.set_run(run, runs, a + "/" + m + "/" + e + " capacity " + c.kind);
          ro.capacity = c.blocks;
          std::optional<rp::replay_result> best;
          rp::tier_figures tf;
          for (int i = 0; i < repeat; ++i) {
            auto r =
                with_tiers ? rp::replay_tiered(t, ro, tiers, e, &tf) : rp::replay(t, ro, a, m, e);
            if (!r.ok()) {
              bar.clear();
              std::cerr << r.error().message() << "\n";
              return 1;
            }
            if (!best || r->seconds < best->seconds)
              best = std::move(*r);
          }
          bar.clear();
          const auto& r = *best;
          out << r.policy << ',' << r.capacity << ',' << r.requests << ',' << std::fixed
              << std::setprecision(6) << r.block_hit_rate() << ',' << r.token_hit_rate() << ','
              << r.hit_tokens << ',' << r.evictions << ',' << r.peak_blocks_in_use << ','
              << r.metadata_bytes << ',' << std::setprecision(0) << r.lookups_per_sec() << ','
              << r.queued << ',' << r.rejected << ',' << c.kind << ',' << cache_output;
          for (const std::uint32_t k : class_ids) {
            const rp::class_figures cf = k < r.classes.size() ? r.classes[k] : rp::class_figures{};
            out << ',' << cf.requests << ',' << std::setprecision(6) << cf.block_hit_rate() << ','
                << cf.token_hit_rate();
          }
          for (const std::uint64_t n : miss_values(r.misses))
            out << ',' << n;
          const auto level_rate = [&](std::size_t i) {
            return r.query_tokens == 0 ? 0.0
                                       : double(r.level_hit_tokens[i]) / double(r.query_tokens);
          };
          if (with_tiers) {
            out << ',' << tiers.host_blocks << ','
                << (tiers.remote.empty() ? std::string("none") : tiers.remote) << ','
                << std::setprecision(6) << level_rate(0) << ',' << level_rate(1) << ','
                << level_rate(2) << ',' << tf.demoted << ',' << tf.remote.total_errors();
          }
          out << '\n' << std::defaultfloat;
          out.flush();
          if (!quiet) {
            std::cerr << r.policy << " capacity " << r.capacity << " (" << c.kind
                      << "): block hit rate " << std::fixed << std::setprecision(2)
                      << 100 * r.block_hit_rate() << "%, token hit rate "
                      << 100 * r.token_hit_rate() << "%, evictions " << r.evictions << ", queued "
                      << r.queued << ", rejected " << r.rejected << ", "
                      << r.lookups_per_sec() / 1e6 << " M block lookups/s, "
                      << r.tokens_per_sec() / 1e6
                      << " M prompt tokens/s (CPU time: " << r.tokens_per_cpu_sec() / 1e6
                      << " M/s)\n"
                      << std::defaultfloat;
            if (with_tiers) {
              std::cerr << "  token hit rate by level: pool " << std::fixed << std::setprecision(2)
                        << 100 * level_rate(0) << "%, host tier (" << tiers.host_blocks
                        << " blocks) " << 100 * level_rate(1) << "%, remote tier ("
                        << (tiers.remote.empty() ? std::string("none") : tiers.remote) << ") "
                        << 100 * level_rate(2) << "%; demoted " << tf.demoted
                        << " blocks, remote errors " << tf.remote.total_errors() << "\n"
                        << std::defaultfloat;
            }
            const auto values = miss_values(r.misses);
            const double all = static_cast<double>(r.requests + r.rejected);
            std::cerr << "  requests by miss reason:";
            for (std::size_t i = 0; i < values.size(); ++i) {
              if (values[i] != 0)
                std::cerr << ' ' << miss_columns[i] << ' ' << values[i] << " (" << std::fixed
                          << std::setprecision(1) << (all == 0 ? 0.0 : 100 * values[i] / all)
                          << "%)" << std::defaultfloat;
            }
            std::cerr << "\n";
            if (r.classes.size() > 1) {
              for (std::size_t k = 0; k < r.classes.size(); ++k) {
                if (r.classes[k].requests == 0)
                  continue;
                const auto& cf = r.classes[k];
                std::cerr << "  class "
                          << (k < t.class_names.size() ? t.class_names[k] : std::to_string(k))
                          << ": " << cf.requests << " requests, token hit rate " << std::fixed
                          << std::setprecision(2) << 100 * cf.token_hit_rate() << "%\n"
                          << std::defaultfloat;
              }
            }
          }
          results.push_back(std::move(*best));
        }
      }
    }
  }

  // The gap of every policy to the optimum of the same allocator, matcher and capacity.
  if (!quiet && std::any_of(results.begin(), results.end(),
                            [](const rp::replay_result& r) { return is_optimal(r.policy); })) {
    std::cerr << "gap to optimal (token hit rate, points; block hit rate, points):\n";
    for (const auto& r : results) {
      if (is_optimal(r.policy))
        continue;
      const std::string base = r.policy.substr(0, r.policy.rfind('/')) + "/optimal";
      const auto o = std::find_if(results.begin(), results.end(), [&](const rp::replay_result& x) {
        return x.policy == base && x.capacity == r.capacity;
      });
      if (o == results.end())
        continue;
      std::cerr << "  " << r.policy << " capacity " << r.capacity << ": " << std::fixed
                << std::setprecision(2) << 100 * (o->token_hit_rate() - r.token_hit_rate()) << " ("
                << 100 * o->token_hit_rate() << "% vs " << 100 * r.token_hit_rate() << "%); "
                << 100 * (o->block_hit_rate() - r.block_hit_rate()) << "\n"
                << std::defaultfloat;
    }
  }

  if (!plot_prefix.empty()) {
    const std::string err =
        plot(plot_prefix, results,
             "token hit rate vs capacity: " + trace_path +
                 (sequential ? " (sequential" : " (overlapping") +
                 (cache_output == "on" ? ", output cached)" : ", output not cached)"));
    if (!err.empty()) {
      std::cerr << "kvkit-replay: " << err << "\n";
      return 1;
    }
    if (!quiet)
      std::cerr << "kvkit-replay: wrote " << plot_prefix << ".png and " << plot_prefix << ".svg\n";
  }
  return 0;
}
