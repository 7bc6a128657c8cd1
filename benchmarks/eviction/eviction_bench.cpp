// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Eviction policies on their own: cost of the calls a prefix cache makes on them.
//
//   BM_Eviction_InsertVictim/<policy>
//       A policy over 65,536 blocks holding 32,768 candidates (inserted in random order, each
//       touched 0-3 times first). Each iteration is one eviction under pressure: victim(),
//       forget() of the victim, then a new block is registered (touch()) and becomes a candidate
//       (insert()). Counter ns_per_op: time per iteration (one victim + one insert).
//   BM_Eviction_Touch/<policy>
//       Same population; each iteration is one hit on a random candidate as the cache does it:
//       erase() (it is referenced now), touch(), insert() (released again). Counter ns_per_op.
//
// Baseline in the same process, BM_Eviction_*/std_list_lru: the textbook LRU, a std::list of
// block ids plus a std::unordered_map from id to list position, under the same calls.
#include <kvkit/concepts.hpp>
#include <kvkit/eviction/fifo.hpp>
#include <kvkit/eviction/lfu.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/eviction/priority.hpp>
#include <kvkit/eviction/sieve.hpp>
#include <kvkit/eviction/ttl.hpp>
#include <kvkit/types.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <list>
#include <random>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

constexpr std::uint32_t kCapacity = 65536;
constexpr std::uint32_t kCandidates = 32768;

/// Baseline: std::list + std::unordered_map LRU.
class std_list_lru {
 public:
  static constexpr std::string_view name = "std_list_lru";
  explicit std_list_lru(std::uint32_t capacity) { pos_.reserve(capacity); }
  void insert(kvkit::block_id b) { pos_.emplace(b, order_.insert(order_.end(), b)); }
  void erase(kvkit::block_id b) {
    auto it = pos_.find(b);
    order_.erase(it->second);
    pos_.erase(it);
  }
  kvkit::block_id victim() {
    if (order_.empty())
      return kvkit::invalid_block;
    const kvkit::block_id b = order_.front();
    order_.pop_front();
    pos_.erase(b);
    return b;
  }
  std::uint32_t size() const { return static_cast<std::uint32_t>(order_.size()); }

 private:
  std::list<kvkit::block_id> order_;
  std::unordered_map<kvkit::block_id, std::list<kvkit::block_id>::iterator> pos_;
};

template <class E>
void touch(E& e, kvkit::block_id b, std::uint64_t tick) {
  if constexpr (requires { e.touch(b, kvkit::access_info{}); })
    e.touch(b, kvkit::access_info{tick, static_cast<std::uint32_t>(tick & 1)});
}

template <class E>
void forget(E& e, kvkit::block_id b) {
  if constexpr (requires { e.forget(b); })
    e.forget(b);
}

/// The policy with kCandidates candidates; @p free receives the ids that are not candidates.
template <class E>
E populate(std::vector<kvkit::block_id>& candidates, std::vector<kvkit::block_id>& free,
           std::mt19937& rng) {
  E e(kCapacity);
  std::vector<kvkit::block_id> ids(kCapacity);
  for (std::uint32_t i = 0; i < kCapacity; ++i)
    ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), rng);
  candidates.assign(ids.begin(), ids.begin() + kCandidates);
  free.assign(ids.begin() + kCandidates, ids.end());
  std::uint64_t tick = 0;
  for (const kvkit::block_id b : candidates) {
    for (std::uint32_t k = rng() % 4; k > 0; --k)
      touch(e, b, ++tick);
    e.insert(b);
  }
  return e;
}

template <class E>
void BM_Eviction_InsertVictim(benchmark::State& state) {
  std::mt19937 rng(3);
  std::vector<kvkit::block_id> candidates, free;
  E e = populate<E>(candidates, free, rng);
  std::size_t head = 0;  // free is used as a ring: take at head, put the victim back there
  std::uint64_t tick = 1u << 20;
  for (auto _ : state) {
    const kvkit::block_id v = e.victim();
    benchmark::DoNotOptimize(v);
    forget(e, v);
    const kvkit::block_id b = free[head];
    free[head] = v;
    head = head + 1 == free.size() ? 0 : head + 1;
    touch(e, b, ++tick);
    e.insert(b);
  }
  if (e.size() != kCandidates)
    state.SkipWithError("candidate count changed");
  state.counters["ns_per_op"] =
      benchmark::Counter(static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

template <class E>
void BM_Eviction_Touch(benchmark::State& state) {
  std::mt19937 rng(3);
  std::vector<kvkit::block_id> candidates, free;
  E e = populate<E>(candidates, free, rng);
  std::vector<std::uint32_t> picks(1u << 16);
  for (auto& p : picks)
    p = rng() % kCandidates;
  std::size_t i = 0;
  std::uint64_t tick = 1u << 20;
  for (auto _ : state) {
    const kvkit::block_id b = candidates[picks[i]];
    i = (i + 1) & (picks.size() - 1);
    e.erase(b);
    touch(e, b, ++tick);
    e.insert(b);
  }
  if (e.size() != kCandidates)
    state.SkipWithError("candidate count changed");
  state.counters["ns_per_op"] =
      benchmark::Counter(static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

template <class E>
void register_policy() {
  const std::string name(kvkit::policy_traits<E>::name());
  benchmark::RegisterBenchmark(("BM_Eviction_InsertVictim/" + name).c_str(),
                               BM_Eviction_InsertVictim<E>);
  benchmark::RegisterBenchmark(("BM_Eviction_Touch/" + name).c_str(), BM_Eviction_Touch<E>);
}

const bool registered = [] {
  register_policy<std_list_lru>();
  register_policy<kvkit::lru_eviction>();
  register_policy<kvkit::lfu_eviction>();
  register_policy<kvkit::fifo_eviction>();
  register_policy<kvkit::ttl_eviction>();
  register_policy<kvkit::priority_eviction>();
  register_policy<kvkit::sieve_eviction>();
  return true;
}();

}  // namespace
