// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Shared parts of the experiment drivers: workloads, closed-loop runs through the mini engine,
// the metrics the users' documents ask for, a cost model from measured rates, CSV output.
#pragma once

#include <mini_engine/cpu_backend.hpp>
#include <mini_engine/engine.hpp>
#if defined(MINI_ENGINE_HAVE_CUDA)
#include <mini_engine/cuda_backend.hpp>
#endif

#include <kvkit/kvkit.hpp>

#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace experiments {

using tokens = std::vector<kvkit::token_id>;

/// Deterministic token generator (a tokenizer stand-in: equal seeds, equal text).
class token_source {
 public:
  explicit token_source(std::uint64_t seed, std::uint32_t vocab) : state_(seed), vocab_(vocab) {}
  kvkit::token_id next() {
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<kvkit::token_id>((state_ >> 33) % vocab_);
  }
  tokens take(std::size_t n) {
    tokens t(n);
    for (auto& x : t)
      x = next();
    return t;
  }
  std::uint32_t uniform(std::uint32_t lo, std::uint32_t hi) {  // [lo, hi]
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return lo + static_cast<std::uint32_t>((state_ >> 33) % (hi - lo + 1));
  }

 private:
  std::uint64_t state_;
  std::uint32_t vocab_;
};

inline tokens concat(tokens a, const tokens& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline std::uint64_t hash_tokens(std::span<const kvkit::token_id> t) {
  return XXH3_64bits(t.data(), t.size_bytes());
}

/// One request of a workload.
struct work_item {
  tokens prompt;
  std::uint32_t max_new_tokens = 16;
  std::uint32_t request_class = 0;
};

/// Settings of one run.
struct run_config {
  std::uint32_t concurrency = 1;
  bool caching = true;
  std::uint32_t block_size = 16;
  std::uint32_t num_blocks = 4096;
  std::uint32_t max_batch_tokens = 512;
};

/// What one run measured.
struct run_metrics {
  std::size_t requests = 0;
  std::size_t failed = 0;
  double mean_ttft = 0, p50_ttft = 0, p95_ttft = 0;
  double mean_e2e = 0, p50_e2e = 0, p95_e2e = 0;
  double makespan = 0, req_s = 0, tok_s = 0;
  std::uint64_t prompt_tokens = 0, cached_tokens = 0, output_tokens = 0;
  std::size_t hit_requests = 0;  // requests with cached_tokens > 0
  double mean_ttft_hit = 0, mean_ttft_miss = 0;
  double p50_ttft_hit = 0, p50_e2e_hit = 0;  // requests with a hit
  std::size_t peak_kv_bytes = 0;             // blocks held by running requests
  std::size_t peak_resident_bytes = 0;       // held plus cached
  mini_engine::engine_stats engine;
  std::vector<mini_engine::request_record> records;  // by id
  std::vector<kvkit::class_stats> classes;           // per request class
  std::string first_error;

  double hit_rate() const {
    return prompt_tokens ? double(cached_tokens) / double(prompt_tokens) : 0.0;
  }
};

inline double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  const double pos = p * double(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

inline double mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

/// Metrics of finished records.
inline run_metrics summarize(std::vector<mini_engine::request_record> records) {
  run_metrics m;
  std::sort(records.begin(), records.end(), [](auto& a, auto& b) { return a.id < b.id; });
  std::vector<double> ttft, e2e, hit, miss, hit_e2e;
  double first = std::numeric_limits<double>::infinity(), last = 0;
  for (const auto& r : records) {
    ++m.requests;
    if (!r.error.empty()) {
      ++m.failed;
      if (m.first_error.empty())
        m.first_error = r.error;
      continue;
    }
    ttft.push_back(r.ttft());
    e2e.push_back(r.e2e());
    (r.cached_tokens > 0 ? hit : miss).push_back(r.ttft());
    if (r.cached_tokens > 0)
      hit_e2e.push_back(r.e2e());
    m.hit_requests += r.cached_tokens > 0 ? 1 : 0;
    m.prompt_tokens += r.prompt_tokens;
    m.cached_tokens += r.cached_tokens;
    m.output_tokens += r.output.size();
    first = std::min(first, r.arrival_s);
    last = std::max(last, r.finish_s);
  }
  m.mean_ttft = mean(ttft);
  m.p50_ttft = percentile(ttft, 0.5);
  m.p95_ttft = percentile(ttft, 0.95);
  m.mean_e2e = mean(e2e);
  m.p50_e2e = percentile(e2e, 0.5);
  m.p95_e2e = percentile(e2e, 0.95);
  m.mean_ttft_hit = mean(hit);
  m.mean_ttft_miss = mean(miss);
  m.p50_ttft_hit = percentile(hit, 0.5);
  m.p50_e2e_hit = percentile(hit_e2e, 0.5);
  m.makespan = ttft.empty() ? 0.0 : last - first;
  m.req_s = m.makespan > 0 ? double(ttft.size()) / m.makespan : 0.0;
  m.tok_s = m.makespan > 0 ? double(m.output_tokens) / m.makespan : 0.0;
  m.records = std::move(records);
  return m;
}

/// Storage for a backend's cache.
template <class Storage>
kvkit::result<Storage> make_storage(const kvkit::kv_layout& layout) {
  return Storage::create(layout);
}

/// Runs @p work through a fresh engine (cold cache) with `concurrency` closed-loop clients:
/// each client sends its next request when its previous one finishes. The backend is moved in
/// and handed back through @p backend afterwards, so weights are loaded once per experiment.
template <class Cache, class Backend>
kvkit::result<run_metrics> run_workload(Backend& backend, const std::vector<work_item>& work,
                                        const run_config& rc,
                                        typename Cache::eviction_options eviction = {},
                                        std::uint32_t num_classes = 1) {
  const mini_engine::model_config c = backend.config();
  kvkit::kv_layout layout{.num_layers = c.num_layers,
                          .num_kv_heads = c.num_kv_heads,
                          .head_dim = c.head_dim,
                          .block_size = rc.block_size,
                          .num_blocks = rc.num_blocks};
  layout.type = kvkit::dtype::bf16;
  auto storage = make_storage<typename Backend::storage_type>(layout);
  if (!storage)
    return storage.error();
  auto cache = Cache::create({}, std::move(*storage), std::move(eviction));
  if (!cache)
    return cache.error();
  mini_engine::engine_options o;
  o.max_running = rc.concurrency;
  o.max_batch_tokens = rc.max_batch_tokens;
  o.prefix_caching = rc.caching;
  mini_engine::engine<Cache, Backend> engine(std::move(*cache), std::move(backend), o);
  if (auto s = engine.check(); !s) {
    backend = std::move(engine.backend());
    return kvkit::error{s.code(), s.message()};
  }
  std::size_t next = 0;
  auto submit_next = [&] {
    if (next < work.size()) {
      const work_item& w = work[next++];
      mini_engine::request r;
      r.prompt = w.prompt;
      r.max_new_tokens = w.max_new_tokens;
      r.options.request_class = w.request_class;
      engine.submit(std::move(r));
    }
  };
  for (std::uint32_t i = 0; i < rc.concurrency; ++i)
    submit_next();
  engine.on_finish = [&](const mini_engine::request_record&, kvkit::token_id) {
    submit_next();
  };
  const kvkit::status s = engine.run_until_idle();
  engine.on_finish = nullptr;
  run_metrics m = summarize(engine.finished());
  m.engine = engine.stats();
  m.peak_kv_bytes = m.engine.peak_blocks_referenced * m.engine.block_bytes;
  m.peak_resident_bytes = m.engine.peak_blocks_resident * m.engine.block_bytes;
  for (std::uint32_t k = 0; k < num_classes; ++k)
    m.classes.push_back(engine.cache().stats(k));
  backend = std::move(engine.backend());
  if (!s)
    return kvkit::error{s.code(), s.message()};
  return m;
}

using mini_engine::cost_rates;

/// Rates of the CPU backend: its matmul (OpenBLAS) on 256 rows of the model's MLP shape, and
/// kvkit's reference attention of 256 queries over 1024 cached tokens, timed here.
inline cost_rates measure_cpu_rates(const mini_engine::model_config& c) {
  using clock = std::chrono::steady_clock;
  cost_rates r;
  const std::size_t rows = 256;
  std::vector<float> x(rows * c.hidden, 0.01f), w(std::size_t{c.hidden} * c.ffn, 0.02f),
      y(rows * c.ffn);
  auto t0 = clock::now();
  std::size_t reps = 0;
  do {
    mini_engine::matmul(x.data(), w.data(), y.data(), rows, c.hidden, c.ffn);
    ++reps;
  } while (clock::now() - t0 < std::chrono::milliseconds(200));
  r.dense_macs_per_s = double(reps) * double(rows) * c.hidden * c.ffn /
                       std::chrono::duration<double>(clock::now() - t0).count();

  const std::uint32_t kv_len = 1024, nq = 256, bs = 16;
  kvkit::kv_layout layout{.num_layers = 1,
                          .num_kv_heads = c.num_kv_heads,
                          .head_dim = c.head_dim,
                          .block_size = bs,
                          .num_blocks = kv_len / bs};
  auto storage = kvkit::host_storage<kvkit::bf16>::create(layout);
  std::vector<std::uint32_t> indptr{0, kv_len / bs}, indices(kv_len / bs), len{kv_len}, qo{0, nq};
  std::iota(indices.begin(), indices.end(), 0u);
  auto view = kvkit::make_paged_kv<kvkit::bf16>(storage->data().data(), layout, 0);
  view.indptr = indptr.data();
  view.indices = indices.data();
  view.kv_len = len.data();
  view.batch = 1;
  kvkit::attention_problem p;
  p.qo_indptr = qo.data();
  p.num_qo_heads = c.num_qo_heads;
  std::vector<float> q(std::size_t{nq} * c.q_width(), 0.1f), o(q.size());
  t0 = clock::now();
  reps = 0;
  do {
    (void)kvkit::reference_prefill(view, p, q.data(), o.data(), nullptr);
    ++reps;
  } while (clock::now() - t0 < std::chrono::milliseconds(200));
  double keys = 0;
  for (std::uint32_t i = 0; i < nq; ++i)
    keys += kv_len - nq + i + 1;
  r.attention_macs_per_s = double(reps) * keys * 2.0 * c.num_qo_heads * c.head_dim /
                           std::chrono::duration<double>(clock::now() - t0).count();
  r.how = "OpenBLAS sgemm " + std::to_string(rows) + "x" + std::to_string(c.hidden) + "x" +
          std::to_string(c.ffn) + "; reference attention 256 queries over 1024 tokens";
  return r;
}

/// The cost model's prefill time: dense work at the dense rate plus attention at its rate, for
/// tokens `[cached, total)` (per layer and head, queries see every earlier token).
inline double predict_prefill_s(const mini_engine::model_config& c, const cost_rates& r,
                                double cached, double total) {
  const double n = total - cached;
  const double keys = (cached + 1 + total) * n / 2.0;
  return n * c.dense_macs_per_token() / r.dense_macs_per_s +
         2.0 * c.num_layers * c.num_qo_heads * c.head_dim * keys / r.attention_macs_per_s;
}

/// Writes rows of strings as CSV (fields quoted when they hold a comma or quote).
class csv_writer {
 public:
  explicit csv_writer(const std::string& path) : out_(path) {}
  bool ok() const { return bool(out_); }
  void row(const std::vector<std::string>& fields) {
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (i)
        out_ << ',';
      const std::string& f = fields[i];
      if (f.find_first_of(",\"\n") == std::string::npos) {
        out_ << f;
      } else {
        out_ << '"';
        for (char ch : f)
          out_ << (ch == '"' ? std::string("\"\"") : std::string(1, ch));
        out_ << '"';
      }
    }
    out_ << '\n';
    out_.flush();
  }

 private:
  std::ofstream out_;
};

inline std::string fmt(double v, int digits = 4) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

/// The canonical CSV header of the users' experiment design.
inline const std::vector<std::string>& canonical_header() {
  static const std::vector<std::string> h = {
      "mode",       "prefix_regime", "concurrency", "mean_ttft_s", "p95_ttft_s",
      "mean_e2e_s", "p95_e2e_s",     "req_s",       "tok_s",       "notes"};
  return h;
}

/// Reads the first line of @p path and checks it against @p header.
inline bool csv_header_is(const std::string& path, const std::vector<std::string>& header) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line))
    return false;
  std::string want;
  for (std::size_t i = 0; i < header.size(); ++i)
    want += (i ? "," : "") + header[i];
  return line == want;
}

/// Builds the model named @p model (tiny | small128 | 1b; empty: tiny on the cpu backend, 1b
/// on cuda) and the backend named @p backend
/// (cpu | cuda), then returns `run(backend)`; 2 with a message on stderr naming @p tool when
/// either cannot be made.
template <class Run>
int with_backend(const char* tool, const std::string& model, const std::string& backend,
                 Run&& run) {
  const std::string name = !model.empty() ? model : backend == "cuda" ? "1b" : "tiny";
  const mini_engine::model_config config = name == "tiny" ? mini_engine::model_config::tiny()
                                           : name == "small128"
                                               ? mini_engine::model_config::small128()
                                               : mini_engine::model_config::gpu_1b();
  auto weights = mini_engine::model_weights::random(config);
  if (!weights) {
    std::fprintf(stderr, "%s: %s\n", tool, weights.error().message().c_str());
    return 2;
  }
  if (backend == "cpu") {
    mini_engine::cpu_backend<kvkit::bf16> b(std::move(*weights));
    return run(b);
  }
#if defined(MINI_ENGINE_HAVE_CUDA)
  auto b = mini_engine::cuda_backend::create(*weights);
  if (!b) {
    std::fprintf(stderr, "%s: %s\n", tool, b.error().message().c_str());
    return 2;
  }
  return run(*b);
#else
  std::fprintf(stderr,
               "%s: --backend cuda needs a build with CUDA (KVKIT_ENABLE_CUDA=ON); this build "
               "has only the cpu backend\n",
               tool);
  return 2;
#endif
}

}  // namespace experiments
