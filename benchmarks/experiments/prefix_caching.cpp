// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Experiment 1: prefix caching off vs on, otherwise identical, over the mini engine.
//
// Shared-prefix regimes (default 512, 1024 and 2048 tokens), 20-50 prompt variants each with a
// unique 20-300 token suffix, closed-loop concurrency 1, 8 and 16; plus two anti-patterns: a
// unique long document per request, and a shared prefix whose first tokens vary (a timestamp
// at the top). Prints and writes the canonical CSV
//   mode,prefix_regime,concurrency,mean_ttft_s,p95_ttft_s,mean_e2e_s,p95_e2e_s,req_s,tok_s,notes
// plus a details CSV (p50s, hit rate, peak K/V memory) and the cost model's predictions beside
// the measurements. See docs/experiments.md.
#include <kvkit/prompt_analysis.hpp>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "experiment.hpp"
#include <CLI/CLI.hpp>

namespace {

using namespace experiments;

struct options {
  std::vector<std::uint32_t> regimes{512, 1024, 2048};
  std::vector<std::uint32_t> concurrency{1, 8, 16};
  std::uint32_t variants = 30;
  std::uint32_t suffix_min = 20;
  std::uint32_t suffix_max = 300;
  std::uint32_t new_tokens = 16;
  std::uint32_t block_size = 16;
  std::uint32_t max_batch_tokens = 512;
  std::uint32_t anti_pattern_concurrency = 8;
  bool anti_patterns = true;
  bool smoke = false;
  bool check = false;
  std::string model;  // empty: tiny on cpu, 1b on cuda
  std::string backend = "cpu";
  std::string out_dir = ".";
  std::uint64_t seed = 1;
};

struct regime {
  std::string name;      // prefix_regime column
  std::uint32_t prefix;  // shared prefix tokens (as designed)
  std::string kind;      // shared | unique_doc | timestamp_top
  std::vector<work_item> work;
  std::string why;  // analyzer's explanation (anti-patterns)
  kvkit::prompt_set_analysis analysis;
};

regime make_regime(const options& o, const std::string& kind, std::uint32_t prefix,
                   std::uint32_t vocab) {
  regime r;
  r.kind = kind;
  r.prefix = prefix;
  r.name = kind == "shared" ? std::to_string(prefix) : kind + "_" + std::to_string(prefix);
  token_source src(o.seed * 1000003 + prefix + (kind == "shared" ? 0 : kind.size()), vocab);
  const tokens shared = src.take(prefix);
  for (std::uint32_t v = 0; v < o.variants; ++v) {
    tokens p = kind == "unique_doc" ? src.take(prefix) : shared;
    if (kind == "timestamp_top") {
      // "Current time: 2026-11-23 10:41:07" at the top: 8 tokens that change per request.
      const tokens stamp = src.take(8);
      std::copy(stamp.begin(), stamp.end(), p.begin());
    }
    p = concat(std::move(p), src.take(src.uniform(o.suffix_min, o.suffix_max)));
    r.work.push_back({std::move(p), o.new_tokens, 0});
  }
  std::vector<tokens> prompts;
  for (const auto& w : r.work)
    prompts.push_back(w.prompt);
  auto a = kvkit::analyze_prompts(prompts, o.block_size);
  if (a) {
    r.analysis = *a;
    for (const auto& f : a->findings)
      r.why += (r.why.empty() ? "" : " ") + f.message;
  }
  return r;
}

double mib(std::size_t bytes) {
  return double(bytes) / (1024.0 * 1024.0);
}

template <class Backend>
int run(Backend& backend, const options& o) {
  using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                      kvkit::lru_eviction, typename Backend::storage_type>;
  const mini_engine::model_config& c = backend.config();
  std::printf("Experiment 1: prefix caching off vs on (kvkit mini engine)\n");
  std::printf("model '%s': %llu parameters, %u layers, width %u, %u/%u heads of %u; backend %s\n",
              c.name.c_str(), static_cast<unsigned long long>(c.parameters()), c.num_layers,
              c.hidden, c.num_qo_heads, c.num_kv_heads, c.head_dim, backend.name().c_str());
  std::printf(
      "cache: hash matcher, LRU, free list; block %u tokens; chunked prefill %u tokens "
      "per step; %u new tokens per request; %u variants, suffix %u-%u tokens\n",
      o.block_size, o.max_batch_tokens, o.new_tokens, o.variants, o.suffix_min, o.suffix_max);

  cost_rates rates;
  if constexpr (std::is_same_v<Backend, mini_engine::cpu_backend<kvkit::bf16>>)
    rates = measure_cpu_rates(c);
  else if (auto measured = backend.measure_rates(); measured)
    rates = *measured;
  else
    std::fprintf(stderr, "prefix_caching: %s\n", measured.error().message().c_str());
  std::printf("cost model rates (measured now): dense %.2f GMAC/s, attention %.2f GMAC/s (%s)\n\n",
              rates.dense_macs_per_s / 1e9, rates.attention_macs_per_s / 1e9, rates.how.c_str());

  std::vector<regime> regimes;
  for (std::uint32_t p : o.regimes)
    regimes.push_back(make_regime(o, "shared", p, c.vocab_size));
  if (o.anti_patterns) {
    const std::uint32_t big = *std::max_element(o.regimes.begin(), o.regimes.end());
    regimes.push_back(make_regime(o, "unique_doc", big, c.vocab_size));
    regimes.push_back(
        make_regime(o, "timestamp_top", o.regimes[o.regimes.size() / 2], c.vocab_size));
  }

  csv_writer csv(o.out_dir + "/prefix_caching.csv");
  csv_writer details(o.out_dir + "/prefix_caching_details.csv");
  csv_writer model(o.out_dir + "/prefix_caching_model.csv");
  if (!csv.ok() || !details.ok() || !model.ok()) {
    std::fprintf(stderr, "prefix_caching: cannot write CSV files in '%s'\n", o.out_dir.c_str());
    return 2;
  }
  csv.row(canonical_header());
  details.row({"mode", "prefix_regime", "concurrency", "p50_ttft_s", "p50_e2e_s", "hit_rate",
               "hit_requests", "requests", "prompt_tokens", "cached_tokens", "prefill_tokens",
               "peak_kv_mib", "peak_resident_mib", "deferred_admissions"});
  model.row({"prefix_regime", "concurrency", "hit_fraction_h", "saved_fraction_predicted",
             "saved_fraction_measured", "ttft_miss_predicted_s", "ttft_miss_measured_s",
             "ttft_hit_predicted_s", "ttft_hit_measured_s", "ttft_on_predicted_s",
             "ttft_on_measured_s", "ttft_on_off_by_pct", "ttft_on_scaled_predicted_s",
             "ttft_on_scaled_off_by_pct", "speedup_predicted", "speedup_measured"});

  std::printf("%-6s %-20s %4s %9s %9s %9s %9s %8s %9s %7s %9s  %s\n", "mode", "prefix_regime",
              "conc", "meanTTFT", "p95TTFT", "meanE2E", "p95E2E", "req/s", "tok/s", "hit%",
              "peakKV", "notes");
  int violations = 0;
  for (const regime& r : regimes) {
    double prefix_hash_ok = 0;
    if (r.kind == "shared") {
      const std::uint64_t h0 = hash_tokens(std::span(r.work[0].prompt).first(r.prefix));
      for (const auto& w : r.work)
        prefix_hash_ok += hash_tokens(std::span(w.prompt).first(r.prefix)) == h0 ? 1 : 0;
    }
    double suffix_mean = 0;
    for (const auto& w : r.work)
      suffix_mean += double(w.prompt.size() - r.prefix) / double(r.work.size());
    std::vector<std::uint32_t> levels = o.concurrency;
    if (r.kind != "shared")
      levels = {o.anti_pattern_concurrency};
    for (std::uint32_t conc : levels) {
      run_metrics m[2];
      for (int mode = 0; mode < 2; ++mode) {
        run_config rc;
        rc.concurrency = conc;
        rc.caching = mode == 1;
        rc.block_size = o.block_size;
        rc.max_batch_tokens = o.max_batch_tokens;
        std::uint32_t longest = 0;
        for (const auto& w : r.work)
          longest = std::max<std::uint32_t>(longest, std::uint32_t(w.prompt.size()) + o.new_tokens);
        // Room for every running request and every distinct prefix: nothing is evicted.
        rc.num_blocks = (conc + 2) * (longest / o.block_size + 2) + 64;
        auto got = run_workload<cache_t>(backend, r.work, rc);
        if (!got) {
          std::fprintf(stderr, "prefix_caching: %s\n", got.error().message().c_str());
          return 2;
        }
        m[mode] = std::move(*got);
        if (m[mode].failed) {
          std::fprintf(stderr, "prefix_caching: %zu requests failed: %s\n", m[mode].failed,
                       m[mode].first_error.c_str());
          return 2;
        }
      }
      for (int mode = 0; mode < 2; ++mode) {
        const run_metrics& x = m[mode];
        std::string notes;
        if (mode == 0) {
          notes = "caching off";
        } else {
          notes = "hit " + fmt(100 * x.hit_rate(), 1) + "% of prompt tokens; " +
                  std::to_string(x.hit_requests) + "/" + std::to_string(x.requests) +
                  " requests hit";
          if (r.kind == "shared") {
            notes += "; prefix hash identical in " + std::to_string(int(prefix_hash_ok)) + "/" +
                     std::to_string(r.work.size()) + " prompts";
            if (x.engine.deferred)
              notes += "; waits for an in-flight shared prefix";
          } else if (!r.why.empty()) {
            notes += "; why: " + r.why;
          }
        }
        const char* mode_name = mode ? "on" : "off";
        csv.row({mode_name, r.name, std::to_string(conc), fmt(x.mean_ttft), fmt(x.p95_ttft),
                 fmt(x.mean_e2e), fmt(x.p95_e2e), fmt(x.req_s, 3), fmt(x.tok_s, 1), notes});
        details.row({mode_name, r.name, std::to_string(conc), fmt(x.p50_ttft), fmt(x.p50_e2e),
                     fmt(x.hit_rate()), std::to_string(x.hit_requests), std::to_string(x.requests),
                     std::to_string(x.prompt_tokens), std::to_string(x.cached_tokens),
                     std::to_string(x.engine.prefill_tokens), fmt(mib(x.peak_kv_bytes), 2),
                     fmt(mib(x.peak_resident_bytes), 2), std::to_string(x.engine.deferred)});
        std::printf("%-6s %-20s %4u %8.3fs %8.3fs %8.3fs %8.3fs %8.2f %9.1f %6.1f%% %7.2fMi  %s\n",
                    mode_name, r.name.c_str(), conc, x.mean_ttft, x.p95_ttft, x.mean_e2e, x.p95_e2e,
                    x.req_s, x.tok_s, 100 * x.hit_rate(), mib(x.peak_kv_bytes),
                    mode ? notes.substr(0, 120).c_str() : "caching off");
      }
      // The users' cost model beside the measurements.
      const double total = double(r.prefix) + suffix_mean;
      const double cached =
          r.kind == "shared" ? double(r.prefix / o.block_size * o.block_size) : 0.0;
      const double h = double(m[1].hit_requests) / double(m[1].requests);
      const double saved_pred = double(r.kind == "shared" ? r.prefix : 0) / total;
      double saved_meas = 0;
      std::size_t hits = 0;
      for (const auto& rec : m[1].records) {
        if (rec.cached_tokens > 0) {
          saved_meas += double(rec.cached_tokens) / double(rec.prompt_tokens);
          ++hits;
        }
      }
      saved_meas = hits ? saved_meas / double(hits) : 0.0;
      const double miss_pred = predict_prefill_s(c, rates, 0, total);
      const double hit_pred = predict_prefill_s(c, rates, cached, total);
      const double on_pred = h * hit_pred + (1 - h) * miss_pred;
      const double off_by = 100.0 * (m[1].mean_ttft - on_pred) / on_pred;
      // Same formula with TTFT_miss measured by the off run at this concurrency (queueing and
      // shared forward passes included) and TTFT_hit scaled from it by the cost ratio.
      const double scaled_pred = (h * hit_pred / miss_pred + (1 - h)) * m[0].mean_ttft;
      const double scaled_off_by = 100.0 * (m[1].mean_ttft - scaled_pred) / scaled_pred;
      model.row({r.name, std::to_string(conc), fmt(h), fmt(saved_pred), fmt(saved_meas),
                 fmt(miss_pred), fmt(m[0].mean_ttft), fmt(hit_pred), fmt(m[1].mean_ttft_hit),
                 fmt(on_pred), fmt(m[1].mean_ttft), fmt(off_by, 1), fmt(scaled_pred),
                 fmt(scaled_off_by, 1), fmt(miss_pred / on_pred, 2),
                 fmt(m[0].mean_ttft / m[1].mean_ttft, 2)});
      std::printf(
          "  model: P/(P+S) = %.3f (measured on hits %.3f); h = %.2f; TTFT_miss %.3fs "
          "(measured off %.3fs), TTFT_hit %.3fs (measured %.3fs); E[TTFT] = h*hit + "
          "(1-h)*miss = %.3fs, measured %.3fs (%+.0f%%%s); with TTFT_miss from the off "
          "run: %.3fs (%+.0f%%); speedup predicted %.2fx, measured %.2fx\n",
          saved_pred, saved_meas, h, miss_pred, m[0].mean_ttft, hit_pred, m[1].mean_ttft_hit,
          on_pred, m[1].mean_ttft, off_by, conc > 1 ? ", queueing is not in the model" : "",
          scaled_pred, scaled_off_by, miss_pred / on_pred, m[0].mean_ttft / m[1].mean_ttft);
      if (o.check) {
        // Work saved is deterministic; times are compared where they are robust on a shared
        // machine: medians, one request at a time (concurrent runs share forward passes, and a
        // preempted step moves a mean).
        if (r.kind == "shared" &&
            !(m[1].hit_rate() > 0 && m[1].engine.prefill_tokens < m[0].engine.prefill_tokens)) {
          std::fprintf(stderr,
                       "check failed: regime %s concurrency %u: caching on (hit %.3f, %llu "
                       "tokens prefilled) does not beat off (%llu tokens prefilled)\n",
                       r.name.c_str(), conc, m[1].hit_rate(),
                       static_cast<unsigned long long>(m[1].engine.prefill_tokens),
                       static_cast<unsigned long long>(m[0].engine.prefill_tokens));
          ++violations;
        }
        if (r.kind == "shared" && conc == 1 && !(m[1].p50_ttft_hit < m[0].p50_ttft)) {
          std::fprintf(stderr,
                       "check failed: regime %s: median TTFT of a hit %.4fs is not below the "
                       "median TTFT with caching off %.4fs\n",
                       r.name.c_str(), m[1].p50_ttft_hit, m[0].p50_ttft);
          ++violations;
        }
        if (r.kind != "shared" && m[1].hit_rate() > 0.05) {
          std::fprintf(stderr, "check failed: anti-pattern %s hits %.3f of its tokens\n",
                       r.name.c_str(), m[1].hit_rate());
          ++violations;
        }
        if (r.kind == "timestamp_top" && r.why.find("top") == std::string::npos) {
          std::fprintf(stderr, "check failed: the analyzer did not explain %s: '%s'\n",
                       r.name.c_str(), r.why.c_str());
          ++violations;
        }
      }
    }
    if (r.kind != "shared") {
      std::printf("  %s: %s\n", r.name.c_str(), r.why.c_str());
    }
  }
  std::printf(
      "\nwrote %s/prefix_caching.csv, prefix_caching_details.csv, prefix_caching_model.csv\n",
      o.out_dir.c_str());
  if (o.check) {
    if (!csv_header_is(o.out_dir + "/prefix_caching.csv", canonical_header())) {
      std::fprintf(stderr,
                   "check failed: prefix_caching.csv does not start with the canonical header\n");
      ++violations;
    }
    std::printf("check: %s\n", violations ? "FAILED"
                                          : "passed (canonical header; hits beat misses "
                                            "in every shared regime; anti-patterns miss)");
  }
  return violations ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // rows appear as they are measured
  options o;
  CLI::App app{"kvkit experiment 1: prefix caching off vs on over the mini engine"};
  app.add_option("--regimes", o.regimes, "Shared prefix lengths in tokens")->delimiter(',');
  app.add_option("--concurrency", o.concurrency, "Closed-loop client counts")->delimiter(',');
  app.add_option("--variants", o.variants, "Prompt variants per regime")
      ->check(CLI::Range(2, 1000));
  app.add_option("--suffix-min", o.suffix_min, "Shortest unique suffix")
      ->check(CLI::Range(1, 100000));
  app.add_option("--suffix-max", o.suffix_max, "Longest unique suffix")
      ->check(CLI::Range(1, 100000));
  app.add_option("--new-tokens", o.new_tokens, "Tokens generated per request")
      ->check(CLI::Range(1, 4096));
  app.add_option("--block-size", o.block_size, "Tokens per cache block (a power of two)");
  app.add_option("--max-batch-tokens", o.max_batch_tokens,
                 "New tokens per forward pass (chunked prefill)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--anti-pattern-concurrency", o.anti_pattern_concurrency,
                 "Concurrency of the anti-pattern runs")
      ->check(CLI::Range(1, 1024));
  app.add_flag("!--no-anti-patterns", o.anti_patterns, "Skip the anti-pattern regimes");
  app.add_option("--model", o.model, "tiny | small128 | 1b")
      ->check(CLI::IsMember({"tiny", "small128", "1b"}));
  app.add_option("--backend", o.backend, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--out-dir", o.out_dir, "Folder for the CSV files")->check(CLI::ExistingDirectory);
  app.add_option("--seed", o.seed, "Workload seed");
  app.add_flag("--smoke", o.smoke, "Tiny sizes for a seconds-long run (CI)");
  app.add_flag("--check", o.check,
               "Exit 1 unless the CSV header is canonical, hits beat misses "
               "and the anti-patterns miss");
  CLI11_PARSE(app, argc, argv);
  if (o.block_size == 0 || (o.block_size & (o.block_size - 1)) != 0) {
    std::fprintf(stderr, "prefix_caching: --block-size %u is not a power of two\n", o.block_size);
    return 2;
  }
  if (o.suffix_min > o.suffix_max || o.regimes.empty() || o.concurrency.empty()) {
    std::fprintf(stderr,
                 "prefix_caching: need --suffix-min <= --suffix-max and at least one "
                 "regime and concurrency\n");
    return 2;
  }
  if (o.smoke) {
    // Hits many times cheaper than misses, so that the check's comparison of times holds on a
    // loaded machine.
    o.regimes = {256, 512};
    o.concurrency = {1, 4};
    o.variants = 6;
    o.suffix_min = 8;
    o.suffix_max = 24;
    o.new_tokens = 4;
    o.anti_pattern_concurrency = 4;
  }
  return with_backend("prefix_caching", o.model, o.backend,
                      [&o](auto& backend) { return run(backend, o); });
}
