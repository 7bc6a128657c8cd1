// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Block allocators: cost per operation, and what paging saves over contiguous reservations.
//
//   BM_Allocator_AllocFree/<allocator>/<occupancy %>
//       A pool of 65,536 blocks filled to 50% or 95%; each iteration frees 8 randomly chosen
//       held blocks, then allocates 8. Counter ns_per_op: time per allocate() or deallocate(),
//       random choice and bookkeeping of the held set included.
//       Baseline in the same process: std_vector_stack, a std::vector<block_id> used as a free
//       stack (push_back / pop_back), under the same churn.
//
//   BM_Allocator_Fragmentation/<workload>/max_len:<tokens>
//       Replays sequences of varied lengths at a fixed concurrency of 16 live sequences. Each
//       sequence is admitted when a slot frees up (its prompt is prefilled at once), then grows
//       by one decoded token per step until prompt + output tokens, and leaves. Two ways to hold
//       its KV:
//         contiguous: one reservation of max_len tokens per live sequence (what a runtime without
//                     paging must reserve, since the final length is unknown at admission);
//         paged:      ceil(len / 16) blocks of 16 tokens from a lowest_index_allocator.
//       Counters (over the steps with all 16 slots live):
//         contig_peak_tok, paged_peak_tok  peak reserved tokens of each
//         used_peak_tok                    peak tokens actually held by the live sequences
//         contig_frag, paged_frag          internal fragmentation, (reserved - used) / reserved,
//                                          summed over steps
//         peak_ratio                       contig_peak_tok / paged_peak_tok
//         seqs, rejected                   sequences replayed; longer than max_len (skipped)
//       Workloads: synthetic (fixed seed: prompts uniform in [100, 8000] tokens, outputs uniform
//       in [10, 1000]), and, when the trace file can be read, mooncake: input_length /
//       output_length of the first 2,000 lines of the JSON-lines trace named by the environment
//       variable KVKIT_TRACE_FILE (default: /work/shared/traces/mooncake_synthetic_trace.jsonl).
//       Without the file only the synthetic rows run.
#include <kvkit/allocator/fifo_free.hpp>
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/allocator/lowest_index.hpp>
#include <kvkit/types.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

// ---- alloc / free churn ----------------------------------------------------------------------

constexpr std::uint32_t kPoolBlocks = 65536;
constexpr std::uint32_t kBurst = 8;  // frees, then allocations, per iteration

/// Baseline: a std::vector used as a LIFO free stack.
class std_vector_stack {
 public:
  static constexpr std::string_view name = "std_vector_stack";
  explicit std_vector_stack(std::uint32_t capacity) {
    free_.reserve(capacity);
    for (std::uint32_t i = capacity; i > 0; --i)
      free_.push_back(i - 1);
  }
  kvkit::block_id allocate() noexcept {
    if (free_.empty())
      return kvkit::invalid_block;
    const kvkit::block_id b = free_.back();
    free_.pop_back();
    return b;
  }
  void deallocate(kvkit::block_id b) { free_.push_back(b); }

 private:
  std::vector<kvkit::block_id> free_;
};

/// xorshift64*: cheap enough not to dominate an O(1) allocator.
struct fast_rng {
  std::uint64_t s = 0x9E3779B97F4A7C15ull;
  std::uint32_t below(std::uint32_t n) noexcept {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    const auto r = static_cast<std::uint32_t>((s * 0x2545F4914F6CDD1Dull) >> 32);
    return static_cast<std::uint32_t>((static_cast<std::uint64_t>(r) * n) >> 32);
  }
};

template <class Allocator>
void BM_Allocator_AllocFree(benchmark::State& state) {
  const auto occupancy = static_cast<std::uint32_t>(state.range(0));
  const std::uint32_t target = kPoolBlocks / 100 * occupancy;
  Allocator a(kPoolBlocks);
  std::vector<kvkit::block_id> held;
  held.reserve(kPoolBlocks);
  fast_rng rng;
  // Reach the target through churn, so that the free set is scattered as in a running server.
  for (std::uint32_t i = 0; i < target; ++i)
    held.push_back(a.allocate());
  for (std::uint32_t i = 0; i < 4 * kPoolBlocks; ++i) {
    const std::uint32_t k = rng.below(static_cast<std::uint32_t>(held.size()));
    a.deallocate(held[k]);
    held[k] = a.allocate();
  }
  const auto n = static_cast<std::uint32_t>(held.size());
  for (auto _ : state) {
    kvkit::block_id freed[kBurst];
    for (std::uint32_t j = 0; j < kBurst; ++j) {
      // Free the block at a random slot of the first n - kBurst (the tail stays for refills).
      const std::uint32_t k = rng.below(n - kBurst);
      freed[j] = held[k];
      held[k] = held[n - kBurst + j];
      a.deallocate(freed[j]);
    }
    for (std::uint32_t j = 0; j < kBurst; ++j) {
      const kvkit::block_id b = a.allocate();
      benchmark::DoNotOptimize(b);
      held[n - kBurst + j] = b;
    }
  }
  if (std::find(held.begin(), held.end(), kvkit::invalid_block) != held.end())
    state.SkipWithError("allocation failed below capacity");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * kBurst);
  state.counters["ns_per_op"] = benchmark::Counter(
      2.0 * kBurst, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["occupancy"] = static_cast<double>(n) / kPoolBlocks;
}

// ---- paged vs contiguous ---------------------------------------------------------------------

constexpr std::uint32_t kBlockSize = 16;
constexpr std::uint32_t kConcurrency = 16;
constexpr std::size_t kSequences = 2000;

struct seq_len {
  std::uint32_t prompt = 0;
  std::uint32_t output = 0;
};

std::vector<seq_len> synthetic_workload() {
  std::mt19937_64 rng(20260101);
  std::uniform_int_distribution<std::uint32_t> prompt(100, 8000), output(10, 1000);
  std::vector<seq_len> w(kSequences);
  for (auto& s : w)
    s = {prompt(rng), output(rng)};
  return w;
}

std::optional<std::uint32_t> json_uint(const std::string& line, std::string_view key) {
  const auto k = line.find(key);
  if (k == std::string::npos)
    return std::nullopt;
  const auto colon = line.find(':', k + key.size());
  if (colon == std::string::npos)
    return std::nullopt;
  char* end = nullptr;
  const unsigned long v = std::strtoul(line.c_str() + colon + 1, &end, 10);
  if (end == line.c_str() + colon + 1)
    return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

/// input_length / output_length of the first kSequences lines; nullopt when unreadable.
std::optional<std::vector<seq_len>> trace_workload() {
  const char* env = std::getenv("KVKIT_TRACE_FILE");
  const std::string path = env ? env : "/work/shared/traces/mooncake_synthetic_trace.jsonl";
  std::ifstream in(path);
  if (!in)
    return std::nullopt;
  std::vector<seq_len> w;
  std::string line;
  while (w.size() < kSequences && std::getline(in, line)) {
    const auto i = json_uint(line, "\"input_length\"");
    const auto o = json_uint(line, "\"output_length\"");
    if (i && o && *i + *o > 0)
      w.push_back({*i, *o});
  }
  if (w.empty())
    return std::nullopt;
  return w;
}

struct fragmentation_result {
  std::uint64_t contig_peak = 0, paged_peak = 0, used_peak = 0;
  double contig_reserved = 0, paged_reserved = 0, used = 0;  // summed over full steps
  std::uint32_t seqs = 0, rejected = 0;
  bool ok = true;
};

fragmentation_result replay(const std::vector<seq_len>& work, std::uint32_t max_len) {
  struct slot {
    bool live = false;
    std::uint32_t len = 0, final_len = 0;
    std::vector<kvkit::block_id> blocks;
  };
  const std::uint32_t blocks_per_seq = (max_len + kBlockSize - 1) / kBlockSize;
  kvkit::lowest_index_allocator pool(kConcurrency * blocks_per_seq);
  std::vector<slot> slots(kConcurrency);
  for (auto& s : slots)
    s.blocks.reserve(blocks_per_seq);
  fragmentation_result r;
  std::size_t next = 0;
  auto grow_to = [&](slot& s, std::uint32_t len) {
    s.len = len;
    while (s.blocks.size() * kBlockSize < len) {
      const kvkit::block_id b = pool.allocate();
      if (b == kvkit::invalid_block)
        r.ok = false;
      s.blocks.push_back(b);
    }
  };
  for (;;) {
    std::uint32_t live = 0;
    for (auto& s : slots) {
      while (!s.live && next < work.size()) {  // admit: prefill the prompt at once
        const seq_len w = work[next++];
        if (w.prompt + w.output > max_len || w.prompt == 0) {
          ++r.rejected;
          continue;
        }
        ++r.seqs;
        s.live = true;
        s.final_len = w.prompt + w.output;
        grow_to(s, w.prompt);
      }
      live += s.live ? 1 : 0;
    }
    if (live == 0)
      break;
    std::uint64_t used = 0, paged = 0;
    for (auto& s : slots) {  // decode one token each
      if (!s.live)
        continue;
      grow_to(s, s.len + 1);
      used += s.len;
      paged += s.blocks.size() * kBlockSize;
    }
    const std::uint64_t contig = static_cast<std::uint64_t>(live) * max_len;
    r.contig_peak = std::max(r.contig_peak, contig);
    r.paged_peak = std::max(r.paged_peak, paged);
    r.used_peak = std::max(r.used_peak, used);
    if (live == kConcurrency) {
      r.contig_reserved += static_cast<double>(contig);
      r.paged_reserved += static_cast<double>(paged);
      r.used += static_cast<double>(used);
    }
    for (auto& s : slots) {  // finished sequences leave
      if (s.live && s.len == s.final_len) {
        for (kvkit::block_id b : s.blocks)
          pool.deallocate(b);
        s.blocks.clear();
        s.live = false;
      }
    }
  }
  return r;
}

void BM_Allocator_Fragmentation(benchmark::State& state, const std::vector<seq_len>* work,
                                std::uint32_t max_len) {
  fragmentation_result r;
  for (auto _ : state) {
    r = replay(*work, max_len);
    // The const overload: the read-write one ("+m,r") is miscompiled by GCC for this value.
    const std::uint64_t peak = r.paged_peak;
    benchmark::DoNotOptimize(peak);
  }
  if (!r.ok || r.paged_peak == 0) {
    state.SkipWithError("paged pool ran out of blocks or nothing was replayed");
    return;
  }
  state.counters["contig_peak_tok"] = static_cast<double>(r.contig_peak);
  state.counters["paged_peak_tok"] = static_cast<double>(r.paged_peak);
  state.counters["used_peak_tok"] = static_cast<double>(r.used_peak);
  state.counters["contig_frag"] = 1.0 - r.used / r.contig_reserved;
  state.counters["paged_frag"] = 1.0 - r.used / r.paged_reserved;
  state.counters["peak_ratio"] = static_cast<double>(r.contig_peak) / r.paged_peak;
  state.counters["seqs"] = r.seqs;
  state.counters["rejected"] = r.rejected;
}

template <class Allocator>
void register_alloc_free() {
  benchmark::RegisterBenchmark(("BM_Allocator_AllocFree/" + std::string(Allocator::name)).c_str(),
                               BM_Allocator_AllocFree<Allocator>)
      ->Arg(50)
      ->Arg(95);
}

const bool registered = [] {
  register_alloc_free<std_vector_stack>();
  register_alloc_free<kvkit::free_list_allocator>();
  register_alloc_free<kvkit::lowest_index_allocator>();
  register_alloc_free<kvkit::fifo_free_allocator>();

  static const std::vector<seq_len> synthetic = synthetic_workload();
  static const std::optional<std::vector<seq_len>> trace = trace_workload();
  benchmark::RegisterBenchmark("BM_Allocator_Fragmentation/synthetic/max_len:32768",
                               BM_Allocator_Fragmentation, &synthetic, 32768u);
  if (trace) {
    benchmark::RegisterBenchmark("BM_Allocator_Fragmentation/mooncake/max_len:32768",
                                 BM_Allocator_Fragmentation, &*trace, 32768u);
    benchmark::RegisterBenchmark("BM_Allocator_Fragmentation/mooncake/max_len:131072",
                                 BM_Allocator_Fragmentation, &*trace, 131072u);
  } else {
    std::fprintf(stderr,
                 "allocator_bench: trace not readable (set KVKIT_TRACE_FILE); synthetic "
                 "workload only\n");
  }
  return true;
}();

}  // namespace
