// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Every kernel captured in one CUDA graph and replayed: append_kv, copy_blocks (device pairs and
// inline pairs, and device_storage::copy_block), paged decode with one split and with four
// (decode + merge kernels), paged prefill and merge_states. run() must neither synchronise nor
// allocate, so that engines can capture a whole step. The graph is replayed twice; the results
// are compared with the CPU reference (attention) or bit for bit (copies).
#include <kvkit/append_kv.hpp>
#include <kvkit/copy_blocks.hpp>
#include <kvkit/device_storage.hpp>
#include <kvkit/kernel_registry.hpp>
#include <kvkit/merge_states.hpp>
#include <kvkit/paged_decode.hpp>
#include <kvkit/paged_prefill.hpp>
#include <kvkit/reference_attention.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/cuda_test_support.hpp"

namespace {

using namespace kvkit;
using namespace kvkit::test;

template <class T>
void capture_everything(const kernel_config& config) {
  SCOPED_TRACE(to_string(config));
  std::mt19937_64 rng(17);
  const std::uint32_t d = static_cast<std::uint32_t>(config.head_dim);
  const std::uint32_t hq = 8;

  // Attention inputs: one batch for decode and prefill.
  paged_batch<T> batch;
  batch.num_kv_heads = 2;
  batch.head_dim = d;
  batch.build({900, 33, 260}, rng);
  const std::uint32_t b = 3;
  const std::vector<T> q_dec = random_values<T>(std::size_t{b} * hq * d, -2.0f, 2.0f, rng);
  const std::vector<std::uint32_t> qo_lens{50, 33, 1};
  const std::vector<std::uint32_t> qo_indptr{0, 50, 83, 84};
  const std::vector<T> q_pre = random_values<T>(std::size_t{84} * hq * d, -2.0f, 2.0f, rng);
  device_buffer<T> d_q_dec(q_dec), d_q_pre(q_pre);
  device_buffer<std::uint32_t> d_qo_indptr(qo_indptr);
  device_buffer<T> o_one(q_dec.size()), o_split(q_dec.size()), o_pre(q_pre.size());
  device_buffer<float> lse_one(std::size_t{b} * hq), lse_split(std::size_t{b} * hq);
  device_buffer<T> o_merged(q_dec.size());
  device_buffer<float> lse_merged(std::size_t{b} * hq);
  for (auto* buf : {&o_one, &o_split, &o_pre, &o_merged})
    buf->poison();
  for (auto* buf : {&lse_one, &lse_split, &lse_merged})
    buf->poison();

  paged_decode_args dec;
  dec.q = d_q_dec.get();
  dec.kv = batch.device_view();
  dec.o = o_one.get();
  dec.lse = lse_one.get();
  dec.num_qo_heads = hq;
  dec.dtype = cuda_dtype_of<T>();
  dec.max_kv_len = 900;
  dec.num_splits = 1;
  paged_decode_args split = dec;
  split.o = o_split.get();
  split.lse = lse_split.get();
  split.num_splits = 4;
  device_buffer<unsigned char> ws(workspace_size(split));

  paged_prefill_args pre;
  pre.q = d_q_pre.get();
  pre.qo_indptr = d_qo_indptr.get();
  pre.kv = batch.device_view();
  pre.o = o_pre.get();
  pre.num_qo_heads = hq;
  pre.dtype = cuda_dtype_of<T>();
  pre.max_qo_len = 50;

  // merge_states of the one-split and the four-split results (same keys twice: the merge of a
  // result with itself is that result, with lse + ln 2).
  merge_states_args mrg;
  mrg.o_a = o_one.get();
  mrg.lse_a = lse_one.get();
  mrg.o_b = o_split.get();
  mrg.lse_b = lse_split.get();
  mrg.o = o_merged.get();
  mrg.lse = lse_merged.get();
  mrg.rows = std::uint64_t{b} * hq;
  mrg.head_dim = d;
  mrg.dtype = cuda_dtype_of<T>();

  // append_kv into a pool of its own.
  const std::uint32_t heads = 2, page = 16, num_blocks = 8, tokens = 20;
  const std::size_t pool_elems = std::size_t{num_blocks} * page * heads * d;
  std::vector<T> k_pool = random_values<T>(pool_elems, -1.0f, 1.0f, rng);
  std::vector<T> v_pool = random_values<T>(pool_elems, -1.0f, 1.0f, rng);
  const std::vector<T> k_new = random_values<T>(std::size_t{tokens} * heads * d, -1.0f, 1.0f, rng);
  const std::vector<T> v_new = random_values<T>(std::size_t{tokens} * heads * d, -1.0f, 1.0f, rng);
  std::vector<std::int64_t> slots(tokens);
  for (std::uint32_t t = 0; t < tokens; ++t)
    slots[t] = 3 * page + 7 + t;  // crosses a page boundary
  device_buffer<T> d_kc(k_pool), d_vc(v_pool), d_kn(k_new), d_vn(v_new);
  device_buffer<std::int64_t> d_slots(slots);
  append_kv_args app;
  app.k_new = d_kn.get();
  app.v_new = d_vn.get();
  app.slot_mapping = d_slots.get();
  app.k_cache = d_kc.get();
  app.v_cache = d_vc.get();
  app.num_tokens = tokens;
  app.num_kv_heads = heads;
  app.head_dim = d;
  app.block_size = page;
  app.num_blocks = num_blocks;
  app.dtype = cuda_dtype_of<T>();

  // Block copies in a device storage.
  kv_layout layout;
  layout.num_layers = 2;
  layout.num_kv_heads = 2;
  layout.head_dim = 64;
  layout.block_size = 16;
  layout.num_blocks = 12;
  layout.type = dtype::bf16;
  auto made = device_storage<bf16>::create(layout);
  ASSERT_TRUE(made.ok()) << made.status().message();
  device_storage<bf16> storage = std::move(made).value();
  std::vector<bf16> host = random_values<bf16>(layout.total_elements(), -1.0f, 1.0f, rng);
  KVKIT_CUDA_OK(
      cudaMemcpy(storage.data(), host.data(), layout.total_bytes(), cudaMemcpyHostToDevice));
  const std::vector<block_copy> dev_pairs{{1, 2}, {3, 4}};
  const std::vector<block_copy> inline_pairs{{5, 6}};
  device_buffer<block_copy> d_pairs(dev_pairs);
  copy_blocks_args cpy;
  cpy.base = storage.data();
  cpy.layout = layout;
  cpy.pairs = d_pairs.get();
  cpy.num_pairs = 2;

  cudaStream_t stream = nullptr;
  KVKIT_CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  storage.set_stream(stream);
  cudaGraph_t graph = nullptr;
  KVKIT_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const status s_app = run(app, nullptr, stream);
  const status s_cpy = run(cpy, nullptr, stream);
  const status s_inl = copy_blocks_inline(storage.data(), layout, inline_pairs.data(), 1, stream);
  storage.copy_block(7, 8);
  const status s_one = run(dec, nullptr, stream);
  const status s_split = run(split, ws.get(), stream);
  const status s_pre = run(pre, nullptr, stream);
  const status s_mrg = run(mrg, nullptr, stream);
  KVKIT_CUDA_OK(cudaStreamEndCapture(stream, &graph));
  for (const status* s : {&s_app, &s_cpy, &s_inl, &s_one, &s_split, &s_pre, &s_mrg})
    KVKIT_STATUS_OK(*s);
  KVKIT_STATUS_OK(storage.take_copy_error());
  cudaGraphExec_t exec = nullptr;
  KVKIT_CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  for (int replay = 0; replay < 2; ++replay)
    KVKIT_CUDA_OK(cudaGraphLaunch(exec, stream));
  KVKIT_CUDA_OK(cudaStreamSynchronize(stream));

  // Attention against the reference.
  const std::vector<float> qf_dec = to_floats(q_dec), qf_pre = to_floats(q_pre);
  std::vector<float> want(q_dec.size()), want_lse(std::size_t{b} * hq);
  KVKIT_STATUS_OK(
      reference_decode(batch.host_view(), hq, qf_dec.data(), want.data(), want_lse.data()));
  EXPECT_LE(max_abs_error(to_floats(o_one.download()), want), output_tolerance<T>());
  EXPECT_LE(max_abs_error(to_floats(o_split.download()), want), output_tolerance<T>());
  EXPECT_LE(max_abs_error(lse_split.download(), want_lse), lse_tolerance);
  // The merge of two results over the same keys: the same output (each input within the
  // tolerance, and the merge rounds once more), lse + ln 2.
  EXPECT_LE(max_abs_error(to_floats(o_merged.download()), want), 2 * output_tolerance<T>());
  std::vector<float> want_merged_lse = want_lse;
  for (float& x : want_merged_lse)
    x += static_cast<float>(ln_2);
  EXPECT_LE(max_abs_error(lse_merged.download(), want_merged_lse), lse_tolerance);
  attention_problem problem;
  problem.qo_indptr = qo_indptr.data();
  problem.num_qo_heads = hq;
  std::vector<float> want_pre(q_pre.size());
  KVKIT_STATUS_OK(
      reference_prefill(batch.host_view(), problem, qf_pre.data(), want_pre.data(), nullptr));
  EXPECT_LE(max_abs_error(to_floats(o_pre.download()), want_pre), prefill_output_tolerance<T>());

  // Copies, bit for bit (replaying an append or a copy twice writes the same bytes).
  paged_kv<T> pool_view;
  pool_view.k = k_pool.data();
  pool_view.v = v_pool.data();
  pool_view.block_size = page;
  pool_view.num_kv_heads = heads;
  pool_view.head_dim = d;
  for (std::uint32_t t = 0; t < tokens; ++t) {
    const page_position pp = page_position_of(slots[t], page);
    for (std::uint32_t h = 0; h < heads; ++h) {
      std::memcpy(k_pool.data() + pool_view.offset(pp.page, pp.position, h),
                  k_new.data() + (std::size_t{t} * heads + h) * d, d * sizeof(T));
      std::memcpy(v_pool.data() + pool_view.offset(pp.page, pp.position, h),
                  v_new.data() + (std::size_t{t} * heads + h) * d, d * sizeof(T));
    }
  }
  const std::vector<T> got_k = d_kc.download(), got_v = d_vc.download();
  EXPECT_EQ(std::memcmp(got_k.data(), k_pool.data(), pool_elems * sizeof(T)), 0);
  EXPECT_EQ(std::memcmp(got_v.data(), v_pool.data(), pool_elems * sizeof(T)), 0);
  for (const block_copy& p :
       {block_copy{1, 2}, block_copy{3, 4}, block_copy{5, 6}, block_copy{7, 8}}) {
    for (std::uint32_t layer = 0; layer < layout.num_layers; ++layer) {
      for (std::uint32_t kv = 0; kv < 2; ++kv) {
        std::memcpy(host.data() + layout.offset(layer, kv, p.dst, 0, 0, 0),
                    host.data() + layout.offset(layer, kv, p.src, 0, 0, 0),
                    layout.block_elements() * sizeof(bf16));
      }
    }
  }
  std::vector<bf16> got(layout.total_elements());
  KVKIT_CUDA_OK(
      cudaMemcpy(got.data(), storage.data(), layout.total_bytes(), cudaMemcpyDeviceToHost));
  EXPECT_EQ(std::memcmp(got.data(), host.data(), layout.total_bytes()), 0);

  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  storage.set_stream(nullptr);
  cudaStreamDestroy(stream);
}

TEST(GraphCapture, EveryKernelInOneGraph) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : test_configs()) {
    with_dtype(config.dtype, [&]<class T>() { capture_everything<T>(config); });
  }
}

}  // namespace
