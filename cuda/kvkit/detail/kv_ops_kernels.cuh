// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// append_kv, copy_blocks and merge_states kernels (internal).
#pragma once

#include <kvkit/copy_blocks.hpp>
#include <kvkit/detail/common.cuh>

#include <cstdint>

namespace kvkit::detail {

// ---- append_kv ------------------------------------------------------------------------------

struct append_params {
  const void* k_new;
  const void* v_new;
  std::uint64_t k_stride;  // elements between tokens
  std::uint64_t v_stride;
  const std::int64_t* slot_mapping;
  void* k_cache;
  void* v_cache;
  std::uint32_t num_tokens;
  std::uint32_t num_kv_heads;
  std::uint32_t block_size;
  std::uint32_t num_blocks;
  bool hnd;
};

// One thread moves one 16-byte vector of K and the matching one of V.
template <int HeadDim>
__global__ void __launch_bounds__(256) append_kv_kernel(const append_params p) {
  constexpr std::uint32_t C = HeadDim / 8;
  const std::uint64_t per_token = std::uint64_t{p.num_kv_heads} * C;
  const std::uint64_t total = per_token * p.num_tokens;
  for (std::uint64_t idx = blockIdx.x * std::uint64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += std::uint64_t{gridDim.x} * blockDim.x) {
    const std::uint64_t tok = idx / per_token;
    const std::uint32_t rem = static_cast<std::uint32_t>(idx - tok * per_token);
    const std::uint32_t h = rem / C;
    const std::uint32_t c = rem % C;
    const std::int64_t slot = p.slot_mapping[tok];
    if (!slot_in_pool(slot, p.block_size, p.num_blocks))
      continue;
    const page_position pp = page_position_of(slot, p.block_size);
    const std::uint64_t src_k = tok * p.k_stride + std::uint64_t{h} * HeadDim + c * 8;
    const std::uint64_t src_v = tok * p.v_stride + std::uint64_t{h} * HeadDim + c * 8;
    const uint4 kv =
        *reinterpret_cast<const uint4*>(static_cast<const std::uint16_t*>(p.k_new) + src_k);
    const uint4 vv =
        *reinterpret_cast<const uint4*>(static_cast<const std::uint16_t*>(p.v_new) + src_v);
    const std::size_t dst =
        page_offset(pp.page, pp.position, h, p.block_size, p.num_kv_heads, HeadDim, p.hnd) + c * 8;
    *reinterpret_cast<uint4*>(static_cast<std::uint16_t*>(p.k_cache) + dst) = kv;
    *reinterpret_cast<uint4*>(static_cast<std::uint16_t*>(p.v_cache) + dst) = vv;
  }
}

// ---- copy_blocks ----------------------------------------------------------------------------

struct copy_params {
  unsigned char* base;
  std::uint64_t pool_bytes;   // bytes of one pool (num_blocks blocks)
  std::uint64_t block_bytes;  // bytes of one block in one pool
  std::uint32_t num_pools;    // 2 * num_layers
  std::uint32_t num_pairs;
  const block_copy* pairs;  // device pairs (when not inline)
};

struct inline_pairs {
  block_copy pairs[max_inline_block_copies];
};

// blockIdx.y walks the pairs; the x dimension walks all pools' copies of one block, one
// vector of type V per thread and step.
template <class V, bool Inline>
__global__ void __launch_bounds__(256)
    copy_blocks_kernel(const copy_params p, const inline_pairs inl) {
  const std::uint64_t block_vecs = p.block_bytes / sizeof(V);
  const std::uint64_t total = block_vecs * p.num_pools;
  for (std::uint32_t pair = blockIdx.y; pair < p.num_pairs; pair += gridDim.y) {
    const block_copy bc = Inline ? inl.pairs[pair] : p.pairs[pair];
    for (std::uint64_t i = blockIdx.x * std::uint64_t{blockDim.x} + threadIdx.x; i < total;
         i += std::uint64_t{gridDim.x} * blockDim.x) {
      const std::uint64_t pool = i / block_vecs;
      const std::uint64_t e = i - pool * block_vecs;
      unsigned char* const pool_base = p.base + pool * p.pool_bytes;
      const V* src = reinterpret_cast<const V*>(pool_base + bc.src * p.block_bytes) + e;
      V* dst = reinterpret_cast<V*>(pool_base + bc.dst * p.block_bytes) + e;
      *dst = *src;
    }
  }
}

// ---- merge_states ---------------------------------------------------------------------------

struct merge_params {
  const void* o_a;
  const float* lse_a;
  const void* o_b;
  const float* lse_b;
  void* o;
  float* lse;
  std::uint64_t rows;
};

// HeadDim / 8 consecutive lanes of one warp own a row, so a row's LSE is read by all of them
// before one writes it (the outputs may alias the inputs).
template <int HeadDim, class DT>
__global__ void __launch_bounds__(256) merge_states_kernel(const merge_params p) {
  constexpr std::uint32_t C = HeadDim / 8;
  static_assert(32 % C == 0);
  const std::uint64_t total = p.rows * C;
  const std::uint64_t stride = std::uint64_t{gridDim.x} * blockDim.x;
  // Every lane of a warp runs the same number of iterations (the bound is warp aligned).
  const std::uint64_t bound = (total + 31) / 32 * 32;
  for (std::uint64_t idx = blockIdx.x * std::uint64_t{blockDim.x} + threadIdx.x; idx < bound;
       idx += stride) {
    const bool active = idx < total;
    const std::uint64_t row = idx / C;
    const std::uint32_t c = static_cast<std::uint32_t>(idx % C);
    float la = neg_inf, lb = neg_inf;
    float fa[8], fb[8];
    if (active) {
      la = p.lse_a[row];
      lb = p.lse_b[row];
      unpack8<DT>(
          *reinterpret_cast<const uint4*>(static_cast<const DT*>(p.o_a) + row * HeadDim + c * 8),
          fa);
      unpack8<DT>(
          *reinterpret_cast<const uint4*>(static_cast<const DT*>(p.o_b) + row * HeadDim + c * 8),
          fb);
    }
    __syncwarp();
    if (!active)
      continue;
    // Each input is the normalised state (lse * log2(e), 1, o) (<kvkit/attention_merge.hpp>).
    const merge_scales<float> f = merge_factors(la * log2e, lb * log2e);
    const float den = f.scale_a + f.scale_b;
    const float inv = den > 0.0f ? 1.0f / den : 0.0f;
    float out[8];
#pragma unroll
    for (int e = 0; e < 8; ++e)
      out[e] = (f.scale_a * fa[e] + f.scale_b * fb[e]) * inv;
    const float lse = state_lse2(f.max, den) * ln2;
    *reinterpret_cast<uint4*>(static_cast<DT*>(p.o) + row * HeadDim + c * 8) = pack8<DT>(out);
    if (p.lse != nullptr && c == 0)
      p.lse[row] = lse;
  }
}

}  // namespace kvkit::detail
