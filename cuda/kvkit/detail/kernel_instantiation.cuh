// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Launchers of one (head_dim, dtype) configuration (internal); included by the generated
// translation units only.
#pragma once

#include <kvkit/detail/common.cuh>
#include <kvkit/detail/kernel_table.hpp>
#include <kvkit/detail/kv_ops_kernels.cuh>
#include <kvkit/detail/paged_decode_kernel.cuh>
#include <kvkit/detail/paged_prefill_kernel.cuh>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>

namespace kvkit::detail {

inline float softmax_scale_log2(float scale, std::uint32_t head_dim) {
  const float s = scale != 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
  return s * log2e;
}

inline unsigned grid_for(std::uint64_t work, unsigned threads, unsigned cap = 65536u) {
  const std::uint64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(std::max<std::uint64_t>(1, std::min<std::uint64_t>(blocks, cap)));
}

template <int HeadDim, class T>
cudaError_t launch_append_kv(const append_kv_args& a, cudaStream_t stream) {
  if (a.num_tokens == 0)
    return cudaSuccess;
  append_params p{};
  p.k_new = a.k_new;
  p.v_new = a.v_new;
  const std::uint64_t row = std::uint64_t{a.num_kv_heads} * HeadDim;
  p.k_stride = a.k_stride != 0 ? a.k_stride : row;
  p.v_stride = a.v_stride != 0 ? a.v_stride : row;
  p.slot_mapping = a.slot_mapping;
  p.k_cache = a.k_cache;
  p.v_cache = a.v_cache;
  p.num_tokens = a.num_tokens;
  p.num_kv_heads = a.num_kv_heads;
  p.block_size = a.block_size;
  p.num_blocks = a.num_blocks;
  p.hnd = a.order == kv_order::hnd;
  const std::uint64_t work = std::uint64_t{a.num_tokens} * a.num_kv_heads * (HeadDim / 8);
  return launch_kernel(append_kv_kernel<HeadDim>, grid_for(work, 256), 256, 0, stream, p);
}

template <int HeadDim, class T>
cudaError_t launch_paged_decode(const paged_decode_args& a, const paged_decode_plan& plan,
                                void* workspace, cudaStream_t stream) {
  using DT = device_element_t<T>;
  if (a.kv.batch == 0)
    return cudaSuccess;
  decode_params p{};
  p.q = a.q;
  p.o = a.o;
  p.lse = a.lse;
  p.kv = a.kv;
  p.num_qo_heads = a.num_qo_heads;
  p.group = gqa_group(a.num_qo_heads, a.kv.num_kv_heads);
  p.head_chunks = plan.head_chunks;
  p.num_splits = plan.num_splits;
  p.split_tokens = plan.split_tokens;
  p.scale_log2 = softmax_scale_log2(a.scale, HeadDim);
  const decode_workspace_layout ws = decode_workspace(a, plan);
  if (plan.num_splits > 1) {
    p.partial_o = static_cast<float*>(workspace);
    p.partial_lse =
        reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + ws.partial_lse_offset);
  }
  const dim3 grid(plan.num_splits, a.kv.num_kv_heads * plan.head_chunks, a.kv.batch);
  const cudaError_t err = launch_kernel(paged_decode_kernel<HeadDim, DT>, grid,
                                        decode_traits<HeadDim>::threads, 0, stream, p);
  if (err != cudaSuccess || plan.num_splits == 1)
    return err;

  decode_merge_params mp{};
  mp.partial_o = p.partial_o;
  mp.partial_lse = p.partial_lse;
  mp.o = a.o;
  mp.lse = a.lse;
  mp.batch = a.kv.batch;
  mp.num_qo_heads = a.num_qo_heads;
  mp.num_splits = plan.num_splits;
  const std::uint64_t work = std::uint64_t{a.kv.batch} * a.num_qo_heads * (HeadDim / 8);
  return launch_kernel(decode_merge_kernel<HeadDim, DT>, grid_for(work, 128), 128, 0, stream, mp);
}

template <int HeadDim, class T>
cudaError_t launch_paged_prefill(const paged_prefill_args& a, cudaStream_t stream) {
  using DT = device_element_t<T>;
  using tr = prefill_traits<HeadDim>;
  if (a.kv.batch == 0)
    return cudaSuccess;
  prefill_params p{};
  p.q = a.q;
  p.qo_indptr = a.qo_indptr;
  p.kv = a.kv;
  p.o = a.o;
  p.lse = a.lse;
  p.num_qo_heads = a.num_qo_heads;
  p.group = gqa_group(a.num_qo_heads, a.kv.num_kv_heads);
  p.scale_log2 = softmax_scale_log2(a.scale, HeadDim);
  p.causal = a.causal;
  const std::uint64_t rows = std::uint64_t{a.max_qo_len} * p.group;
  const unsigned tiles = grid_for(rows, tr::bm, 65535u);
  const auto kernel = paged_prefill_kernel<HeadDim, DT>;
  // The dynamic shared-memory limit is raised once per device, not on every launch.
  static std::atomic<std::uint64_t> raised{0};  // bit d: done on device d (d < 64)
  int device = 0;
  if (cudaError_t err = cudaGetDevice(&device); err != cudaSuccess)
    return err;
  const std::uint64_t bit = device < 64 ? std::uint64_t{1} << device : 0;
  if (bit == 0 || (raised.load(std::memory_order_acquire) & bit) == 0) {
    if (cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               tr::smem_bytes);
        err != cudaSuccess)
      return err;
    raised.fetch_or(bit, std::memory_order_acq_rel);
  }
  const dim3 grid(tiles, a.kv.num_kv_heads, a.kv.batch);
  return launch_kernel(kernel, grid, tr::threads, tr::smem_bytes, stream, p);
}

template <int HeadDim, class T>
cudaError_t launch_merge_states(const merge_states_args& a, cudaStream_t stream) {
  using DT = device_element_t<T>;
  if (a.rows == 0)
    return cudaSuccess;
  merge_params p{};
  p.o_a = a.o_a;
  p.lse_a = a.lse_a;
  p.o_b = a.o_b;
  p.lse_b = a.lse_b;
  p.o = a.o;
  p.lse = a.lse;
  p.rows = a.rows;
  return launch_kernel(merge_states_kernel<HeadDim, DT>, grid_for(a.rows * (HeadDim / 8), 256), 256,
                       0, stream, p);
}

template <int HeadDim, class T>
kernel_entry_points make_entry_points() noexcept {
  kernel_entry_points e;
  e.append_kv = &launch_append_kv<HeadDim, T>;
  e.paged_decode = &launch_paged_decode<HeadDim, T>;
  e.paged_prefill = &launch_paged_prefill<HeadDim, T>;
  e.merge_states = &launch_merge_states<HeadDim, T>;
  return e;
}

}  // namespace kvkit::detail
