// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Experiment 2: the agent platform's scenario over the mini engine.
//
// Part A: a 4,845-token static prefix and a 66-token dynamic suffix (session id, timestamp,
// user, tools, recent context), 3, 10 and 20 tasks run one after another, prefix caching off
// ("before") and on ("after"); totals and speedups in the shape of the users' table, and the
// cacheable fraction computed from the prompts.
// Part B: four agent tiers with their own prefixes and eviction priorities share one cache that
// cannot hold every prefix, with one-off requests flooding it; per-tier hit rates under LRU and
// under priority eviction, beside the hit rates the users expect of each tier.
#include <kvkit/prompt_analysis.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "experiment.hpp"
#include <CLI/CLI.hpp>

namespace {

using namespace experiments;

struct options {
  std::uint32_t static_tokens = 4845;
  std::uint32_t dynamic_tokens = 66;
  std::vector<std::uint32_t> tasks{3, 10, 20};
  std::uint32_t new_tokens = 32;
  std::uint32_t block_size = 16;
  // Part B.
  std::uint32_t tier_requests = 300;
  std::uint32_t tier_prefix = 512;
  std::uint32_t tier_concurrency = 4;
  double one_off_share = 0.25;
  std::uint32_t tier_cache_prefixes = 8;  // cache capacity, in tier prefixes
  bool smoke = false;
  bool check = false;
  std::string model;  // empty: tiny on cpu, 1b on cuda
  std::string backend = "cpu";
  std::string out_dir = ".";
  std::uint64_t seed = 7;
};

struct tier {
  const char* name;
  std::uint32_t agent_types;
  double traffic;  // share of the tiered traffic
  std::uint8_t priority;
  const char* expected;  // the users' expected hit rate
};

// The users' four tiers (22 agent types) and their expected hit rates; traffic shares and
// priorities are this experiment's assumptions (hot default agents, rare specialists).
const tier tiers[] = {{"default", 8, 0.55, 3, "90-95%"},
                      {"analysis", 6, 0.25, 2, "70-80%"},
                      {"specialized", 5, 0.08, 1, "40-60%"},
                      {"orchestrator", 3, 0.12, 3, "50-70%"}};
constexpr std::uint32_t one_off_class = 4;

template <class Backend>
int run(Backend& backend, const options& o) {
  using lru_cache = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                        kvkit::lru_eviction, typename Backend::storage_type>;
  using priority_cache =
      kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher, kvkit::priority_eviction,
                          typename Backend::storage_type>;
  const mini_engine::model_config& c = backend.config();
  int violations = 0;
  std::printf("Experiment 2: agent platform, static prefix + dynamic suffix (kvkit mini engine)\n");
  std::printf(
      "model '%s': %llu parameters; backend %s; block %u tokens; %u new tokens per task\n\n",
      c.name.c_str(), static_cast<unsigned long long>(c.parameters()), backend.name().c_str(),
      o.block_size, o.new_tokens);

  // --- Part A ------------------------------------------------------------------------------
  token_source src(o.seed, c.vocab_size);
  const tokens static_part = src.take(o.static_tokens);
  const std::uint32_t most = *std::max_element(o.tasks.begin(), o.tasks.end());
  std::vector<work_item> all;
  for (std::uint32_t i = 0; i < most; ++i)
    all.push_back({concat(static_part, src.take(o.dynamic_tokens)), o.new_tokens, 0});
  std::vector<tokens> prompts;
  for (const auto& w : all)
    prompts.push_back(w.prompt);
  auto analysis = kvkit::analyze_prompts(prompts, o.block_size);
  if (!analysis) {
    std::fprintf(stderr, "agent_platform: %s\n", analysis.error().message().c_str());
    return 2;
  }
  const double prompt_len = double(all[0].prompt.size());
  const double static_fraction = double(analysis->common_prefix_tokens) / prompt_len;
  const std::size_t block_aligned = analysis->common_prefix_tokens / o.block_size * o.block_size;
  std::printf(
      "prompt: %zu tokens; shared by every task (computed from the prompts): the first "
      "%zu tokens = %.1f%% cacheable; by whole blocks of %u: %zu tokens = %.1f%%\n",
      all[0].prompt.size(), analysis->common_prefix_tokens, 100 * static_fraction, o.block_size,
      block_aligned, 100.0 * double(block_aligned) / prompt_len);

  csv_writer csv(o.out_dir + "/agent_platform.csv");
  if (!csv.ok()) {
    std::fprintf(stderr, "agent_platform: cannot write in '%s'\n", o.out_dir.c_str());
    return 2;
  }
  const std::vector<std::string> header = {
      "tasks",       "before_total_s", "after_total_s",  "speedup",       "cold_task_s",
      "warm_task_s", "hit_rate",       "users_before_s", "users_after_s", "users_speedup"};
  csv.row(header);
  struct users_row {
    std::uint32_t tasks;
    double before, after;
  };
  const users_row users[] = {{3, 18, 9.4}, {10, 60, 21.3}, {20, 120, 35}};
  std::printf("\n%6s %16s %16s %9s %12s %12s %8s   %s\n", "tasks", "before (off) s", "after (on) s",
              "speedup", "cold task s", "warm task s", "hit%",
              "users' document: before -> after (speedup)");
  for (std::uint32_t n : o.tasks) {
    std::vector<work_item> work(all.begin(), all.begin() + n);
    run_metrics m[2];
    for (int mode = 0; mode < 2; ++mode) {
      run_config rc;
      rc.concurrency = 1;
      rc.caching = mode == 1;
      rc.block_size = o.block_size;
      rc.num_blocks = 3 * (std::uint32_t(prompt_len) + o.new_tokens) / o.block_size + 64;
      auto got = run_workload<lru_cache>(backend, work, rc);
      if (!got || got->failed) {
        std::fprintf(stderr, "agent_platform: %s\n",
                     got ? got->first_error.c_str() : got.error().message().c_str());
        return 2;
      }
      m[mode] = std::move(*got);
    }
    double before = 0, after = 0, warm = 0;
    for (const auto& r : m[0].records)
      before += r.e2e();
    for (const auto& r : m[1].records) {
      after += r.e2e();
      if (r.cached_tokens > 0)
        warm += r.e2e() / double(m[1].hit_requests);
    }
    const double cold = m[0].mean_e2e;
    std::string users_text = "-";
    std::vector<std::string> ucols = {"", "", ""};
    for (const auto& u : users) {
      if (u.tasks == n) {
        users_text = fmt(u.before, 0) + " s -> " + fmt(u.after, 1) + " s (" +
                     fmt(u.before / u.after, 1) + "x)";
        ucols = {fmt(u.before, 1), fmt(u.after, 1), fmt(u.before / u.after, 2)};
      }
    }
    csv.row({std::to_string(n), fmt(before), fmt(after), fmt(before / after, 2), fmt(cold),
             fmt(warm), fmt(m[1].hit_rate()), ucols[0], ucols[1], ucols[2]});
    std::printf("%6u %16.3f %16.3f %8.2fx %12.3f %12.3f %7.1f%%   %s\n", n, before, after,
                before / after, cold, warm, 100 * m[1].hit_rate(), users_text.c_str());
    // Medians (robust on a shared machine): a warm task against a task with caching off.
    if (o.check && !(m[1].p50_e2e_hit < m[0].p50_e2e && m[1].hit_requests + 1 == n)) {
      std::fprintf(stderr,
                   "check failed: %u tasks: median warm task %.4fs vs median task with caching "
                   "off %.4fs, %zu hits\n",
                   n, m[1].p50_e2e_hit, m[0].p50_e2e, m[1].hit_requests);
      ++violations;
    }
  }
  std::printf(
      "(a task = one request: prefill + %u generated tokens; the users' per-task times "
      "were 6.0 s cold and 1.7 s warm)\n",
      o.new_tokens);

  // --- Part B ------------------------------------------------------------------------------
  std::printf(
      "\nTiers sharing one cache: %u requests, %.0f%% one-off, %u-token prefix per agent "
      "type + %u dynamic tokens, concurrency %u, cache room for %u prefixes\n",
      o.tier_requests, 100 * o.one_off_share, o.tier_prefix, o.dynamic_tokens, o.tier_concurrency,
      o.tier_cache_prefixes);
  token_source tsrc(o.seed * 31 + 1, c.vocab_size);
  std::vector<std::vector<tokens>> type_prefix;  // per tier, per agent type
  for (const tier& t : tiers) {
    type_prefix.emplace_back();
    for (std::uint32_t k = 0; k < t.agent_types; ++k)
      type_prefix.back().push_back(tsrc.take(o.tier_prefix));
  }
  std::vector<work_item> traffic;
  for (std::uint32_t i = 0; i < o.tier_requests; ++i) {
    const double u = double(tsrc.uniform(0, 1000000)) / 1e6;
    if (u < o.one_off_share) {
      traffic.push_back({tsrc.take(o.tier_prefix + o.dynamic_tokens), 8, one_off_class});
      continue;
    }
    double x = double(tsrc.uniform(0, 1000000)) / 1e6, acc = 0;
    std::uint32_t ti = 0;
    for (; ti + 1 < std::size(tiers); ++ti) {
      acc += tiers[ti].traffic;
      if (x < acc)
        break;
    }
    // Within a tier, agent type k is picked with weight 1/(k+1) (a few hot agents).
    double norm = 0;
    for (std::uint32_t k = 0; k < tiers[ti].agent_types; ++k)
      norm += 1.0 / (k + 1);
    double y = double(tsrc.uniform(0, 1000000)) / 1e6 * norm, a2 = 0;
    std::uint32_t k = 0;
    for (; k + 1 < tiers[ti].agent_types; ++k) {
      a2 += 1.0 / (k + 1);
      if (y < a2)
        break;
    }
    traffic.push_back({concat(type_prefix[ti][k], tsrc.take(o.dynamic_tokens)), 8, ti});
  }
  csv_writer tcsv(o.out_dir + "/agent_tiers.csv");
  tcsv.row({"eviction", "class", "tier", "requests", "token_hit_rate", "users_expected"});
  run_config rc;
  rc.concurrency = o.tier_concurrency;
  rc.block_size = o.block_size;
  const std::uint32_t per_request = (o.tier_prefix + o.dynamic_tokens + 8) / o.block_size + 2;
  rc.num_blocks =
      o.tier_cache_prefixes * (o.tier_prefix / o.block_size) + o.tier_concurrency * per_request;
  kvkit::priority_options popt;
  for (const tier& t : tiers)
    popt.classes.push_back({.priority = t.priority, .retention = {}});
  popt.classes.push_back({.priority = 0, .retention = {}});  // one-off
  auto lru = run_workload<lru_cache>(backend, traffic, rc, {}, one_off_class + 1);
  auto pri = run_workload<priority_cache>(backend, traffic, rc, popt, one_off_class + 1);
  if (!lru || !pri || lru->failed || pri->failed) {
    std::fprintf(stderr, "agent_platform: tier run failed\n");
    return 2;
  }
  std::printf("%-14s %9s %12s %16s %14s\n", "tier", "requests", "LRU hit%", "priority hit%",
              "users expect");
  for (std::uint32_t k = 0; k <= one_off_class; ++k) {
    const char* name = k < one_off_class ? tiers[k].name : "one-off";
    const char* expected = k < one_off_class ? tiers[k].expected : "0% (no reuse)";
    auto rate = [](const kvkit::class_stats& s) {
      return s.query_tokens ? double(s.hit_tokens) / double(s.query_tokens) : 0.0;
    };
    const double a = rate(lru->classes[k]), b = rate(pri->classes[k]);
    std::printf("%-14s %9llu %11.1f%% %15.1f%% %14s\n", name,
                static_cast<unsigned long long>(lru->classes[k].queries), 100 * a, 100 * b,
                expected);
    tcsv.row({"lru", std::to_string(k), name, std::to_string(lru->classes[k].queries), fmt(a),
              expected});
    tcsv.row({"priority", std::to_string(k), name, std::to_string(pri->classes[k].queries), fmt(b),
              expected});
  }
  std::printf(
      "overall: LRU %.1f%%, priority %.1f%% of prompt tokens; mean TTFT LRU %.3fs, "
      "priority %.3fs\n",
      100 * lru->hit_rate(), 100 * pri->hit_rate(), lru->mean_ttft, pri->mean_ttft);
  std::printf("\nwrote %s/agent_platform.csv and agent_tiers.csv\n", o.out_dir.c_str());
  if (o.check) {
    if (!csv_header_is(o.out_dir + "/agent_platform.csv", header)) {
      std::fprintf(stderr, "check failed: agent_platform.csv header\n");
      ++violations;
    }
    if (analysis->common_prefix_tokens != o.static_tokens) {
      std::fprintf(stderr, "check failed: computed static prefix %zu != %u\n",
                   analysis->common_prefix_tokens, o.static_tokens);
      ++violations;
    }
    if (pri->classes[0].hit_tokens < lru->classes[0].hit_tokens) {
      std::fprintf(stderr,
                   "check failed: priority eviction served the default tier less than LRU\n");
      ++violations;
    }
    std::printf("check: %s\n", violations ? "FAILED" : "passed");
  }
  return violations ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // rows appear as they are measured
  options o;
  CLI::App app{"kvkit experiment 2: the agent platform's static prefix + dynamic suffix"};
  app.add_option("--static-tokens", o.static_tokens, "Static prefix tokens")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--dynamic-tokens", o.dynamic_tokens, "Dynamic suffix tokens")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--tasks", o.tasks, "Task counts")->delimiter(',');
  app.add_option("--new-tokens", o.new_tokens, "Tokens generated per task")
      ->check(CLI::Range(1, 4096));
  app.add_option("--block-size", o.block_size, "Tokens per cache block (a power of two)");
  app.add_option("--tier-requests", o.tier_requests, "Requests of the tiers run")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--tier-prefix", o.tier_prefix, "Prefix tokens per agent type")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--tier-cache-prefixes", o.tier_cache_prefixes, "Cache room, in agent prefixes")
      ->check(CLI::Range(1, 100000));
  app.add_option("--one-off-share", o.one_off_share, "Share of one-off requests")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--model", o.model, "tiny | small128 | 1b")
      ->check(CLI::IsMember({"tiny", "small128", "1b"}));
  app.add_option("--backend", o.backend, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--out-dir", o.out_dir, "Folder for the CSV files")->check(CLI::ExistingDirectory);
  app.add_option("--seed", o.seed, "Workload seed");
  app.add_flag("--smoke", o.smoke, "Tiny sizes for a seconds-long run (CI)");
  app.add_flag("--check", o.check,
               "Exit 1 unless the after runs beat the before runs, the "
               "static prefix is found and priority serves the default tier");
  CLI11_PARSE(app, argc, argv);
  if (o.block_size == 0 || (o.block_size & (o.block_size - 1)) != 0 || o.tasks.empty()) {
    std::fprintf(stderr,
                 "agent_platform: --block-size must be a power of two and --tasks "
                 "not empty\n");
    return 2;
  }
  if (o.smoke) {
    // Large enough that a hit is many times cheaper than a miss, so that the check's
    // comparison of times holds on a loaded machine.
    o.static_tokens = 1024;
    o.dynamic_tokens = 8;
    o.tasks = {3, 5};
    o.new_tokens = 4;
    o.tier_requests = 60;
    o.tier_prefix = 64;
  }
  return with_backend("agent_platform", o.model, o.backend,
                      [&o](auto& backend) { return run(backend, o); });
}
