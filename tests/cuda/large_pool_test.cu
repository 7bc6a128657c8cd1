// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Pools of more than 2^31 elements (over 4 GiB each for 16-bit elements): every kernel reaches
// pages past element 2^31 with 64-bit offsets, and device_storage::copy_block copies blocks
// there (a strided cudaMemcpy2DAsync with the whole pool as its pitch fails past the device's
// maximum pitch; the copy kernel has no such limit). The test needs about 2 x 4.3 GiB of device
// memory and is skipped when less is free, and in the reduced (sanitizer) case set.
#include <kvkit/append_kv.hpp>
#include <kvkit/device_storage.hpp>
#include <kvkit/index_math.hpp>
#include <kvkit/kernel_registry.hpp>
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
void check_large_pool(const kernel_config& config) {
  SCOPED_TRACE(to_string(config));
  std::mt19937_64 rng(31);
  const std::uint32_t d = static_cast<std::uint32_t>(config.head_dim);
  kv_layout layout;
  layout.num_layers = 1;
  layout.num_kv_heads = 4;
  layout.head_dim = d;
  layout.block_size = 16;
  const std::size_t block_elems = page_elements(16, 4, d);
  const std::uint64_t past = (std::uint64_t{1} << 31) / block_elems;  // first block past 2^31
  layout.num_blocks = static_cast<std::uint32_t>(past + 64);
  layout.type = std::is_same_v<T, bf16> ? dtype::bf16 : dtype::fp16;
  ASSERT_GT(std::uint64_t{layout.num_blocks} * block_elems, std::uint64_t{1} << 31);
  if (free_device_memory() < layout.total_bytes() + (std::size_t{1} << 30)) {
    GTEST_SKIP() << "needs " << layout.total_bytes() / (1 << 20) << " MiB of free device memory";
  }
  auto made = device_storage<T>::create(layout);
  ASSERT_TRUE(made.ok()) << made.status().message();
  device_storage<T> storage = std::move(made).value();

  // Two sequences whose pages all lie past element 2^31 of each pool, out of order.
  const std::vector<std::uint32_t> lens{300, 77};
  std::vector<std::uint32_t> indptr{0}, pages;
  for (std::uint32_t len : lens) {
    for (std::uint32_t i = 0; i < pages_for(len, 16); ++i)
      pages.push_back(static_cast<std::uint32_t>(layout.num_blocks - 1 - 2 * pages.size()));
    indptr.push_back(static_cast<std::uint32_t>(pages.size()));
  }
  // A compact host copy: host page i holds device page pages[i].
  paged_batch<T> host;
  host.block_size = 16;
  host.num_kv_heads = 4;
  host.head_dim = d;
  host.build(lens, rng);
  const paged_kv<const T> hv = host.host_view();
  for (std::uint32_t i = 0; i < pages.size(); ++i) {
    for (std::uint32_t kv = 0; kv < 2; ++kv) {
      const T* src = (kv == 0 ? host.k.data() : host.v.data()) + hv.offset(host.indices[i], 0, 0);
      T* dst = storage.pool(0, kv) + page_offset(pages[i], 0, 0, 16, 4, d, false);
      KVKIT_CUDA_OK(cudaMemcpy(dst, src, block_elems * sizeof(T), cudaMemcpyHostToDevice));
    }
  }
  device_buffer<std::uint32_t> d_indptr(indptr), d_pages(pages), d_lens(lens);
  paged_kv<const void> view = storage.view(0);
  view.indptr = d_indptr.get();
  view.indices = d_pages.get();
  view.kv_len = d_lens.get();
  view.batch = 2;

  // Decode (four splits) and prefill over those pages against the compact reference.
  const std::uint32_t hq = 8;
  const std::vector<T> q = random_values<T>(2u * hq * d, -2.0f, 2.0f, rng);
  device_buffer<T> d_q(q), d_o(q.size());
  d_o.poison();
  paged_decode_args dec;
  dec.q = d_q.get();
  dec.kv = view;
  dec.o = d_o.get();
  dec.num_qo_heads = hq;
  dec.dtype = cuda_dtype_of<T>();
  dec.max_kv_len = 300;
  dec.num_splits = 4;
  device_buffer<unsigned char> ws(workspace_size(dec));
  KVKIT_STATUS_OK(run(dec, ws.get(), nullptr));
  const std::vector<std::uint32_t> qo_indptr{0, 40, 117};
  const std::vector<T> qp = random_values<T>(117u * hq * d, -2.0f, 2.0f, rng);
  device_buffer<T> d_qp(qp), d_op(qp.size());
  device_buffer<std::uint32_t> d_qo(qo_indptr);
  d_op.poison();
  paged_prefill_args pre;
  pre.q = d_qp.get();
  pre.qo_indptr = d_qo.get();
  pre.kv = view;
  pre.o = d_op.get();
  pre.num_qo_heads = hq;
  pre.dtype = cuda_dtype_of<T>();
  pre.max_qo_len = 77;
  KVKIT_STATUS_OK(run(pre, nullptr, nullptr));
  KVKIT_CUDA_OK(cudaDeviceSynchronize());
  std::vector<float> want(q.size());
  const std::vector<float> qf = to_floats(q), qpf = to_floats(qp);
  KVKIT_STATUS_OK(reference_decode(hv, hq, qf.data(), want.data(), nullptr));
  EXPECT_LE(max_abs_error(to_floats(d_o.download()), want), output_tolerance<T>());
  attention_problem problem;
  problem.qo_indptr = qo_indptr.data();
  problem.num_qo_heads = hq;
  std::vector<float> want_p(qp.size());
  KVKIT_STATUS_OK(reference_prefill(hv, problem, qpf.data(), want_p.data(), nullptr));
  EXPECT_LE(max_abs_error(to_floats(d_op.download()), want_p), prefill_output_tolerance<T>());

  // append_kv into the last page of the pool, and copy_block of that page to a page below 2^31.
  const std::uint32_t last = layout.num_blocks - 2;  // not one of the sequences' pages
  const std::vector<T> k_new = random_values<T>(16u * 4 * d, -1.0f, 1.0f, rng);
  const std::vector<T> v_new = random_values<T>(16u * 4 * d, -1.0f, 1.0f, rng);
  std::vector<std::int64_t> slots(16);
  for (std::uint32_t t = 0; t < 16; ++t)
    slots[t] = slot_id(last, t, 16);
  device_buffer<T> d_kn(k_new), d_vn(v_new);
  device_buffer<std::int64_t> d_slots(slots);
  append_kv_args app;
  app.k_new = d_kn.get();
  app.v_new = d_vn.get();
  app.slot_mapping = d_slots.get();
  app.k_cache = storage.pool(0, 0);
  app.v_cache = storage.pool(0, 1);
  app.num_tokens = 16;
  app.num_kv_heads = 4;
  app.head_dim = d;
  app.block_size = 16;
  app.num_blocks = layout.num_blocks;
  app.dtype = cuda_dtype_of<T>();
  KVKIT_STATUS_OK(run(app, nullptr, nullptr));
  storage.copy_block(last, 3);
  KVKIT_STATUS_OK(storage.take_copy_error());
  KVKIT_CUDA_OK(cudaDeviceSynchronize());
  for (std::uint32_t kv = 0; kv < 2; ++kv) {
    for (std::uint32_t block : {last, 3u}) {
      std::vector<T> got(block_elems);
      KVKIT_CUDA_OK(cudaMemcpy(got.data(), storage.pool(0, kv) + std::size_t{block} * block_elems,
                               block_elems * sizeof(T), cudaMemcpyDeviceToHost));
      // NHD page of 16 tokens x 4 heads: exactly the new rows, in order.
      EXPECT_EQ(std::memcmp(got.data(), (kv == 0 ? k_new : v_new).data(), block_elems * sizeof(T)),
                0)
          << (kv == 0 ? "K" : "V") << " block " << block;
    }
  }
}

TEST(LargePool, EveryKernelPastElement2To31) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  if (quick())
    GTEST_SKIP() << "reduced case set (KVKIT_GPU_TEST_QUICK)";
  const kernel_config config = test_configs().front();
  with_dtype(config.dtype, [&]<class T>() { check_large_pool<T>(config); });
}

}  // namespace
