// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The mini engine's scheduler: continuous batching under a concurrency cap, chunked
/// prefill, greedy decoding with streamed tokens, and the prefix cache deciding what is
/// prefilled. Backend-agnostic: the CPU and CUDA backends plug in unchanged.
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/prometheus.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model.hpp"

namespace mini_engine {

/// @brief A generation request.
struct request {
  std::vector<kvkit::token_id> prompt;  ///< Prompt tokens (not empty).
  std::uint32_t max_new_tokens = 16;    ///< Tokens to generate (greedy, no end token; >= 1).
  kvkit::request_options options;       ///< Tenant, session, extra keys, class (tier).
};

/// @brief What happened to one request; times in seconds since the engine started.
struct request_record {
  std::uint64_t id = 0;             ///< Order of submission.
  std::uint32_t request_class = 0;  ///< `options.request_class` of the request.
  double arrival_s = 0;             ///< Submission time.
  double admitted_s = 0;            ///< When it got its blocks and started.
  double first_token_s = 0;         ///< When its first token was streamed.
  double finish_s = 0;              ///< When its last token was streamed.
  std::uint32_t prompt_tokens = 0;  ///< Prompt length.
  std::uint32_t cached_tokens = 0;  ///< Leading prompt tokens served from the cache.
  /// @brief Of cached_tokens, those promoted from each tier below the pool (a cache whose listener
  /// is a `kvkit::tiered`; all zero otherwise).
  std::array<std::uint32_t, kvkit::max_cache_tiers> tier_cached_tokens{};
  std::vector<kvkit::token_id> output;  ///< Generated tokens.
  std::string error;                    ///< Why it failed (empty on success).

  /// @brief Time to first token.
  [[nodiscard]] double ttft() const noexcept { return first_token_s - arrival_s; }
  /// @brief End-to-end latency.
  [[nodiscard]] double e2e() const noexcept { return finish_s - arrival_s; }
};

/// @brief Scheduler settings.
struct engine_options {
  std::uint32_t max_running = 8;         ///< Concurrency cap: sequences in flight (>= 1).
  std::uint32_t max_batch_tokens = 512;  ///< New tokens per forward pass (chunked prefill; >= 1).
  /// @brief Reuse cached prefixes (the users' `enable_prefix_caching`). Off, every request gets
  /// a namespace of its own (a unique tenant salt) invalidated when it finishes: the same code
  /// path, with no sharing and no cached blocks left behind.
  bool prefix_caching = true;
  /// @brief Hold back a waiting request whose prompt shares at least one block with a prompt
  /// still being prefilled, until those blocks are committed, instead of computing them twice
  /// (concurrent requests with one system prompt would otherwise all miss).
  bool wait_for_shared_prefix = true;
};

/// @brief Counters of an engine run.
struct engine_stats {
  std::uint64_t steps = 0;                   ///< Forward passes.
  std::uint64_t prefill_tokens = 0;          ///< Prompt tokens computed (not served by the cache).
  std::uint64_t decode_tokens = 0;           ///< Generated tokens fed back through the model.
  std::uint64_t deferred = 0;                ///< Admissions held back by wait_for_shared_prefix.
  double forward_seconds = 0;                ///< Time inside the backend's forward().
  std::uint32_t peak_blocks_referenced = 0;  ///< Most blocks held by live sequences at once.
  std::uint32_t peak_blocks_resident = 0;    ///< Most blocks in use (held or cached) at once.
  std::size_t block_bytes = 0;               ///< K/V bytes of one block, all layers.
};

/// @brief Continuous-batching engine over a kvkit prefix cache and a backend.
/// @tparam Cache A `kvkit::prefix_cache` whose storage is `Backend::storage_type`.
/// @tparam Backend `cpu_backend<T>` or `cuda_backend`: `forward(batch, storage, logits)`.
template <class Cache, class Backend>
class engine {
 public:
  /// @brief Streaming callback: a request's new token (its record is up to date).
  using token_callback = std::function<void(const request_record&, kvkit::token_id)>;
  /// @brief Logits callback: a request's logits before each sampled token (tests use it).
  using logits_callback = std::function<void(const request_record&, std::span<const float>)>;

  /// @brief An engine owning @p cache and @p backend.
  /// @param cache The prefix cache (its storage is the model's K/V).
  /// @param backend The model backend.
  /// @param options Scheduler settings (validated by check()).
  engine(Cache cache, Backend backend, engine_options options)
      : cache_(std::move(cache)),
        backend_(std::move(backend)),
        opt_(options),
        epoch_(std::chrono::steady_clock::now()) {
    stats_.block_bytes = cache_.storage().layout().block_bytes_all_layers();
  }

  /// @brief Checks the settings against the cache and model.
  /// @return Ok, or `errc::invalid_config` naming the bad value.
  [[nodiscard]] kvkit::status check() const {
    const kvkit::kv_layout& l = cache_.storage().layout();
    const model_config& c = backend_.config();
    if (opt_.max_running == 0 || opt_.max_batch_tokens == 0) {
      return kvkit::error{kvkit::errc::invalid_config,
                          "mini_engine: max_running and max_batch_tokens must be >= 1"};
    }
    if (l.num_layers != c.num_layers || l.num_kv_heads != c.num_kv_heads ||
        l.head_dim != c.head_dim) {
      return kvkit::error{kvkit::errc::invalid_config,
                          "mini_engine: the cache layout (layers, K/V heads, head_dim) = (" +
                              std::to_string(l.num_layers) + ", " + std::to_string(l.num_kv_heads) +
                              ", " + std::to_string(l.head_dim) + ") must match the model's (" +
                              std::to_string(c.num_layers) + ", " + std::to_string(c.num_kv_heads) +
                              ", " + std::to_string(c.head_dim) + ")"};
    }
    return {};
  }

  /// @brief Seconds since the engine was made (the clock of every record).
  [[nodiscard]] double now() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_).count();
  }

  /// @brief Queues @p r; it arrives now.
  /// @return Its id (the order of submission).
  std::uint64_t submit(request r) {
    waiting_entry e;
    e.rec.id = next_id_++;
    e.rec.arrival_s = now();
    e.rec.request_class = r.options.request_class;
    e.rec.prompt_tokens = static_cast<std::uint32_t>(r.prompt.size());
    e.req = std::move(r);
    waiting_.push_back(std::move(e));
    return waiting_.back().rec.id;
  }

  /// @brief Sequences in flight (admitted, not finished).
  [[nodiscard]] std::size_t running() const noexcept { return running_.size(); }
  /// @brief Requests waiting for admission.
  [[nodiscard]] std::size_t waiting() const noexcept { return waiting_.size(); }

  /// @brief True when nothing is queued or running.
  [[nodiscard]] bool idle() const noexcept { return waiting_.empty() && running_.empty(); }

  /// @brief Admits what fits, runs one forward pass over every running sequence (decode tokens
  /// first, then prefill chunks up to `max_batch_tokens`), commits, samples and streams.
  /// @return Ok, or the backend's or cache's error (a request that cannot be served fails
  /// alone, with its record's `error` set).
  kvkit::status step() {
    admit();
    if (running_.empty()) {
      if (!waiting_.empty()) {
        // Nothing runs and the head of the queue still does not fit: it never will.
        fail_waiting_head("out of blocks: the prompt needs more blocks than the cache holds");
      }
      return {};
    }
    build_batch();
    if (batch_.batch == 0)
      return {};
    logits_.resize(std::size_t{batch_.batch} * backend_.config().vocab_size);
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = backend_.forward(batch_, cache_.storage(), logits_); !s)
      return s;
    stats_.forward_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++stats_.steps;
    return after_forward();
  }

  /// @brief Steps until idle.
  /// @return Ok, or the first error of step().
  kvkit::status run_until_idle() {
    while (!idle()) {
      if (auto s = step(); !s)
        return s;
    }
    return {};
  }

  /// @brief Finished (or failed) requests, in order of completion.
  [[nodiscard]] const std::vector<request_record>& finished() const noexcept { return done_; }
  /// @brief Counters of the run.
  [[nodiscard]] const engine_stats& stats() const noexcept { return stats_; }
  /// @brief The prefix cache.
  [[nodiscard]] Cache& cache() noexcept { return cache_; }
  /// @brief The backend.
  [[nodiscard]] Backend& backend() noexcept { return backend_; }
  /// @brief The settings.
  [[nodiscard]] const engine_options& options() const noexcept { return opt_; }

  token_callback on_token;    ///< Called for every streamed token (may be empty).
  token_callback on_finish;   ///< Called when a request finishes, with its last token.
  logits_callback on_logits;  ///< Called with the logits before each sampled token.
  /// @brief When set, every cache admission's duration is recorded here (`/metrics`).
  kvkit::latency_histogram* admit_latency = nullptr;

 private:
  struct waiting_entry {
    request req;
    request_record rec;
  };
  struct running_entry {
    request req;
    request_record rec;
    kvkit::sequence_id seq;
    std::uint64_t salt = 0;       // private namespace when caching is off
    std::uint32_t computed = 0;   // tokens whose K/V is written
    std::uint32_t scheduled = 0;  // new tokens in the current batch
    bool prefilling = true;
    bool done = false;  // finished this step
  };

  static std::uint32_t common_prefix(std::span<const kvkit::token_id> a,
                                     std::span<const kvkit::token_id> b) noexcept {
    const std::size_t n = std::min(a.size(), b.size());
    std::size_t i = 0;
    while (i < n && a[i] == b[i])
      ++i;
    return static_cast<std::uint32_t>(i);
  }

  // True when `r` shares a block with a prompt still being prefilled that the cache lacks yet.
  bool should_defer(const request& r) const {
    if (!opt_.prefix_caching || !opt_.wait_for_shared_prefix)
      return false;
    const std::uint32_t bs = cache_.storage().layout().block_size;
    std::uint32_t best = 0;
    for (const running_entry& e : running_) {
      if (!e.prefilling || e.req.options.tenant_salt != r.options.tenant_salt ||
          e.req.options.session_id != r.options.session_id ||
          !std::ranges::equal(e.req.options.extra_keys, r.options.extra_keys))
        continue;
      const std::uint32_t lcp = std::min<std::uint32_t>(
          common_prefix(e.req.prompt, r.prompt), static_cast<std::uint32_t>(r.prompt.size()) - 1);
      const std::uint32_t shared = lcp / bs * bs;
      if (shared > e.computed / bs * bs)
        best = std::max(best, shared);
    }
    return best >= bs && cache_.match(r.prompt, r.options) < best;
  }

  void admit() {
    for (auto it = waiting_.begin(); it != waiting_.end() && running_.size() < opt_.max_running;) {
      if (should_defer(it->req)) {
        ++stats_.deferred;
        ++it;
        continue;
      }
      running_entry e;
      e.req = std::move(it->req);
      e.rec = std::move(it->rec);
      kvkit::request_options o = e.req.options;
      if (!opt_.prefix_caching) {
        e.salt = 0x9e3779b97f4a7c15ull ^ (e.rec.id + 1);
        o.tenant_salt = e.salt;
      }
      const auto admit_start = std::chrono::steady_clock::now();
      auto adm = e.req.prompt.empty() || e.req.max_new_tokens == 0
                     ? kvkit::result<kvkit::admission>(kvkit::error{
                           kvkit::errc::empty_input,
                           "mini_engine: a request needs a prompt and max_new_tokens >= 1"})
                     : cache_.admit(e.req.prompt, o);
      if (admit_latency != nullptr) {
        admit_latency->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - admit_start).count());
      }
      if (!adm) {
        if (adm.error().code() == kvkit::errc::out_of_blocks) {
          // Put it back and wait for blocks (FIFO: later requests wait too).
          it->req = std::move(e.req);
          it->rec = std::move(e.rec);
          break;
        }
        e.rec.error = adm.error().message();
        e.rec.finish_s = now();
        done_.push_back(std::move(e.rec));
        it = waiting_.erase(it);
        continue;
      }
      e.seq = adm->id;
      e.rec.cached_tokens = adm->request.cached_tokens;
      e.rec.tier_cached_tokens = adm->tier_cached_tokens;
      e.rec.admitted_s = now();
      e.computed = adm->request.cached_tokens;
      running_.push_back(std::move(e));
      it = waiting_.erase(it);
    }
    note_memory();
  }

  void fail_waiting_head(const std::string& why) {
    request_record rec = std::move(waiting_.front().rec);
    rec.error = why;
    rec.finish_s = now();
    done_.push_back(std::move(rec));
    waiting_.pop_front();
  }

  void build_batch() {
    tokens_.clear();
    positions_.clear();
    qo_indptr_.assign(1, 0);
    kv_indptr_.assign(1, 0);
    kv_indices_.clear();
    kv_len_.clear();
    batch_ = {};
    std::uint32_t budget = opt_.max_batch_tokens;
    const std::uint32_t bs = cache_.storage().layout().block_size;
    // Decode tokens first (one each), then prefill chunks in admission order.
    for (int pass = 0; pass < 2; ++pass) {
      for (running_entry& e : running_) {
        e.scheduled = pass == 0 ? 0 : e.scheduled;
        if ((pass == 0) == e.prefilling)
          continue;
        auto view = cache_.sequence(e.seq);
        const auto total = static_cast<std::uint32_t>(view->tokens.size());
        std::uint32_t n = total - e.computed;
        if (pass == 1)
          n = std::min(n, budget);
        if (n == 0 || (pass == 1 && budget == 0))
          continue;
        budget -= std::min(budget, n);
        e.scheduled = n;
        for (std::uint32_t i = 0; i < n; ++i) {
          tokens_.push_back(view->tokens[e.computed + i]);
          positions_.push_back(e.computed + i);
        }
        const std::uint32_t len = e.computed + n;
        const std::uint32_t pages = (len + bs - 1) / bs;
        kv_indices_.insert(kv_indices_.end(), view->blocks.begin(), view->blocks.begin() + pages);
        qo_indptr_.push_back(static_cast<std::uint32_t>(tokens_.size()));
        kv_indptr_.push_back(static_cast<std::uint32_t>(kv_indices_.size()));
        kv_len_.push_back(len);
        batch_.max_qo_len = std::max(batch_.max_qo_len, n);
        order_.resize(kv_len_.size());
        order_.back() = &e;
      }
    }
    batch_.tokens = tokens_.data();
    batch_.positions = positions_.data();
    batch_.qo_indptr = qo_indptr_.data();
    batch_.kv_indptr = kv_indptr_.data();
    batch_.kv_indices = kv_indices_.data();
    batch_.kv_len = kv_len_.data();
    batch_.batch = static_cast<std::uint32_t>(kv_len_.size());
    batch_.num_tokens = static_cast<std::uint32_t>(tokens_.size());
    order_.resize(batch_.batch);
  }

  kvkit::status after_forward() {
    const std::uint32_t vocab = backend_.config().vocab_size;
    for (std::uint32_t b = 0; b < batch_.batch; ++b) {
      running_entry& e = *order_[b];
      const bool was_prefill = e.prefilling;
      e.computed += e.scheduled;
      (was_prefill ? stats_.prefill_tokens : stats_.decode_tokens) += e.scheduled;
      if (auto c = cache_.commit(e.seq, e.computed); !c)
        return c.status();
      if (was_prefill && e.computed < e.req.prompt.size())
        continue;  // more prompt chunks to go
      e.prefilling = false;
      const std::span<const float> row(logits_.data() + std::size_t{b} * vocab, vocab);
      if (on_logits)
        on_logits(e.rec, row);
      const auto token =
          static_cast<kvkit::token_id>(std::max_element(row.begin(), row.end()) - row.begin());
      e.rec.output.push_back(token);
      const double t = now();
      if (e.rec.output.size() == 1)
        e.rec.first_token_s = t;
      if (on_token)
        on_token(e.rec, token);
      if (e.rec.output.size() >= e.req.max_new_tokens) {
        e.rec.finish_s = t;
        e.done = true;
        continue;  // finished below
      }
      const kvkit::token_id next[1] = {token};
      if (auto s = cache_.append(e.seq, next); !s) {
        e.rec.error =
            "stopped after " + std::to_string(e.rec.output.size()) + " tokens: " + s.message();
        e.rec.finish_s = t;
        e.done = true;
      }
    }
    note_memory();
    // Retire finished sequences.
    for (auto it = running_.begin(); it != running_.end();) {
      if (!it->done) {
        ++it;
        continue;
      }
      if (auto s = cache_.finish(it->seq); !s)
        return s;
      if (!opt_.prefix_caching)
        (void)cache_.invalidate_tenant(it->salt);
      done_.push_back(std::move(it->rec));
      it = running_.erase(it);
      if (on_finish)
        on_finish(done_.back(), done_.back().output.empty() ? 0 : done_.back().output.back());
    }
    return {};
  }

  void note_memory() {
    const kvkit::cache_stats s = cache_.stats();
    stats_.peak_blocks_referenced = std::max(stats_.peak_blocks_referenced, s.blocks_referenced);
    stats_.peak_blocks_resident = std::max(stats_.peak_blocks_resident, s.blocks_in_use());
  }

  Cache cache_;
  Backend backend_;
  engine_options opt_;
  std::chrono::steady_clock::time_point epoch_;
  std::uint64_t next_id_ = 0;
  std::deque<waiting_entry> waiting_;
  std::vector<running_entry> running_;  // admission order
  std::vector<request_record> done_;
  engine_stats stats_;
  // Batch arrays (reused).
  forward_batch batch_;
  std::vector<kvkit::token_id> tokens_;
  std::vector<std::uint32_t> positions_, qo_indptr_, kv_indptr_, kv_indices_, kv_len_;
  std::vector<running_entry*> order_;
  std::vector<float> logits_;
};

}  // namespace mini_engine
