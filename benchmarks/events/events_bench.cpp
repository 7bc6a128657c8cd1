// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Cost of KV events per stored block (16 tokens), beside a memcpy of the same bytes:
//   BM_Events_MemcpyBaseline       copying the event's bytes (tokens, hash, parent) into a buffer
//   BM_Events_RecordingSink        recording_event_sink::on_stored (owning copy, allocates)
//   BM_Events_BatchAdd             vllm_event_batch::add (what the cache's thread pays)
//   BM_Events_Encode               vllm_event_batch::encode, per block (the I/O thread's work)
//   BM_Events_PublisherOnStored    zmq_event_publisher::on_stored + flush every 64 blocks, with
//                                  the I/O thread encoding and publishing (producer-side time)
#include <kvkit/events.hpp>
#include <kvkit/events/vllm_wire.hpp>
#include <kvkit/events/zmq_publisher.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {

constexpr std::uint32_t kBlockSize = 16;
constexpr std::size_t kBatch = 64;  // blocks per flushed batch (one engine step's worth)

struct stream {
  std::vector<kvkit::token_id> tokens;
  std::vector<std::uint64_t> hashes;
  explicit stream(std::size_t blocks) : tokens(blocks * kBlockSize), hashes(blocks) {
    std::mt19937_64 rng(1);
    for (auto& t : tokens)
      t = static_cast<kvkit::token_id>(rng() % 152064);
    for (auto& h : hashes)
      h = rng();
  }
  // Block i of chains of 8 blocks.
  kvkit::block_stored_event event(std::size_t i) const {
    kvkit::block_stored_event e;
    e.hash = hashes[i];
    if (i % 8 != 0)
      e.parent_hash = hashes[i - 1];
    e.tokens = std::span<const kvkit::token_id>(tokens).subspan(i * kBlockSize, kBlockSize);
    e.block_size = kBlockSize;
    return e;
  }
};

const stream& blocks() {
  static const stream s(4096);
  return s;
}

void BM_Events_MemcpyBaseline(benchmark::State& state) {
  const stream& s = blocks();
  std::vector<std::uint8_t> out;
  out.reserve(kBatch * (kBlockSize * sizeof(kvkit::token_id) + 16));
  std::size_t i = 0;
  for (auto _ : state) {
    if (out.size() >= kBatch * (kBlockSize * sizeof(kvkit::token_id) + 16))
      out.clear();
    const kvkit::block_stored_event e = s.event(i);
    const std::size_t at = out.size();
    out.resize(at + e.tokens.size_bytes() + 16);
    std::memcpy(out.data() + at, e.tokens.data(), e.tokens.size_bytes());
    std::memcpy(out.data() + at + e.tokens.size_bytes(), &e.hash, 8);
    const std::uint64_t parent = e.parent_hash.value_or(0);
    std::memcpy(out.data() + at + e.tokens.size_bytes() + 8, &parent, 8);
    benchmark::DoNotOptimize(out.data());
    i = (i + 1) % s.hashes.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Events_MemcpyBaseline);

void BM_Events_RecordingSink(benchmark::State& state) {
  const stream& s = blocks();
  kvkit::recording_event_sink sink;
  std::size_t i = 0;
  for (auto _ : state) {
    sink.on_stored(s.event(i));
    if (++i == s.hashes.size()) {
      i = 0;
      state.PauseTiming();
      sink.clear();
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Events_RecordingSink);

void BM_Events_BatchAdd(benchmark::State& state) {
  const stream& s = blocks();
  kvkit::vllm_event_batch batch;
  std::size_t i = 0;
  for (auto _ : state) {
    batch.add(s.event(i));
    if (++i % kBatch == 0)
      batch.clear();  // keeps capacity, as a publisher recycles its batches
    i %= s.hashes.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Events_BatchAdd);

void BM_Events_Encode(benchmark::State& state) {
  const stream& s = blocks();
  kvkit::vllm_event_batch batch;
  for (std::size_t i = 0; i < kBatch; ++i)
    batch.add(s.event(i));
  std::vector<std::uint8_t> out;
  for (auto _ : state) {
    out.clear();
    batch.encode(1.0, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["bytes_per_block"] = double(out.size()) / kBatch;
}
BENCHMARK(BM_Events_Encode);

void BM_Events_PublisherOnStored(benchmark::State& state) {
  const stream& s = blocks();
  kvkit::zmq_publisher_options o;
  o.endpoint = "tcp://127.0.0.1:*";
  o.replay_endpoint = "tcp://127.0.0.1:*";
  auto pub = kvkit::zmq_event_publisher::create(o);
  if (!pub) {
    state.SkipWithError(pub.error().message().c_str());
    return;
  }
  std::size_t i = 0;
  for (auto _ : state) {
    pub->on_stored(s.event(i));
    if (++i % kBatch == 0)
      pub->flush();
    i %= s.hashes.size();
  }
  pub->close();
  state.SetItemsProcessed(state.iterations());
  const auto st = pub->stats();
  state.counters["dropped_batches"] = double(st.batches_dropped);
}
BENCHMARK(BM_Events_PublisherOnStored)->UseRealTime();

}  // namespace
