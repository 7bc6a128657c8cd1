// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Paged decode attention kernels (internal). See <kvkit/paged_decode.hpp>.
//
// CTA = (split, K/V head x head chunk, sequence), 128 threads arranged as bdy token lanes of bdx
// threads; each thread owns 8 consecutive elements (one 16-byte vector) of the head dimension.
// A thread loads with cp.async exactly the K/V vectors it later reads, so the double-buffered
// tiles need no CTA barrier; the bdx threads of a token lane reduce dot products by shuffles.
// Each token lane keeps its own online softmax (m, d, acc) for up to 8 query heads; the lanes
// are merged through shared memory at the end.
#pragma once

#include <kvkit/detail/common.cuh>

#include <cstdint>

namespace kvkit::detail {

template <int HeadDim>
struct decode_traits {
  static constexpr int vec = 8;              // elements per 16-byte vector
  static constexpr int bdx = HeadDim / vec;  // threads across one row: 8, 16, 32
  static constexpr int threads = 128;
  static constexpr int bdy = threads / bdx;           // token lanes: 16, 8, 4
  static constexpr int tokens_per_lane = 4;           // rows per lane per tile
  static constexpr int tile = bdy * tokens_per_lane;  // tokens per tile: 64, 32, 16
  static constexpr int max_group = 8;                 // query heads per CTA
  static constexpr int stages = 2;
  static constexpr int tile_bytes = tile * HeadDim * 2;               // 8 KiB
  static constexpr int pipe_bytes = stages * 2 * tile_bytes;          // 32 KiB
  static constexpr int reduce_bytes = bdy * max_group * HeadDim * 4;  // 32 KiB
  static constexpr int smem_bytes = pipe_bytes > reduce_bytes ? pipe_bytes : reduce_bytes;
  static_assert(HeadDim % 64 == 0 && bdx <= 32 && 32 % bdx == 0, "head_dim 64, 128 or 256");
};

/// Row of the split-KV workspace holding split `split` of (sequence `b`, query head `head`):
/// `[batch][num_splits][num_qo_heads]` rows of `head_dim` floats (and one LSE each).
KVKIT_HOST_DEVICE constexpr std::uint64_t split_row(std::uint32_t b, std::uint32_t split,
                                                    std::uint32_t head, std::uint32_t num_splits,
                                                    std::uint32_t num_qo_heads) noexcept {
  return (std::uint64_t{b} * num_splits + split) * num_qo_heads + head;
}

struct decode_params {
  const void* q;
  void* o;
  float* lse;
  paged_kv<const void> kv;
  std::uint32_t num_qo_heads;
  std::uint32_t group;        // query heads per K/V head
  std::uint32_t head_chunks;  // ceil(group / max_group)
  std::uint32_t num_splits;
  std::uint32_t split_tokens;
  float scale_log2;    // softmax scale * log2(e)
  float* partial_o;    // [batch][num_splits][num_qo_heads][head_dim] (num_splits > 1)
  float* partial_lse;  // [batch][num_splits][num_qo_heads]
};

template <int HeadDim, class DT>
__global__ void __launch_bounds__(128) paged_decode_kernel(const decode_params p) {
  using tr = decode_traits<HeadDim>;
  constexpr int bdx = tr::bdx;
  constexpr int bdy = tr::bdy;
  constexpr int max_group = tr::max_group;
  constexpr int tokens_per_lane = tr::tokens_per_lane;

  __shared__ alignas(16) unsigned char smem[tr::smem_bytes];
  __shared__ float red_m[bdy][max_group];
  __shared__ float red_d[bdy][max_group];

  const int tx = threadIdx.x % bdx;
  const int ty = threadIdx.x / bdx;
  const std::uint32_t split = blockIdx.x;
  const std::uint32_t kvh = blockIdx.y / p.head_chunks;
  const std::uint32_t chunk = blockIdx.y % p.head_chunks;
  const std::uint32_t b = blockIdx.z;

  const head_span heads = head_chunk(kvh, chunk, p.group, max_group);
  const std::uint32_t head0 = heads.first;
  const int nh = static_cast<int>(heads.count);

  const token_range range = split_range(split, p.num_splits, p.split_tokens, p.kv.kv_len[b]);
  const std::uint32_t begin = range.begin;
  const std::uint32_t end = range.end;

  // Queries of the group, pre-scaled into the log2 domain.
  float q[max_group][8];
  const DT* qbase = static_cast<const DT*>(p.q);
#pragma unroll
  for (int g = 0; g < max_group; ++g) {
    if (g < nh) {
      const uint4 v = *reinterpret_cast<const uint4*>(
          qbase + qo_row(b, head0 + g, p.num_qo_heads) * HeadDim + tx * 8);
      unpack8<DT>(v, q[g]);
#pragma unroll
      for (int e = 0; e < 8; ++e)
        q[g][e] *= p.scale_log2;
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e)
        q[g][e] = 0.0f;
    }
  }

  float m[max_group], d[max_group], acc[max_group][8];
#pragma unroll
  for (int g = 0; g < max_group; ++g) {
    m[g] = neg_inf;
    d[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e)
      acc[g][e] = 0.0f;
  }

  const DT* kpool = static_cast<const DT*>(p.kv.k);
  const DT* vpool = static_cast<const DT*>(p.kv.v);
  const std::uint32_t* pages = p.kv.indices + p.kv.indptr[b];
  const std::uint32_t bs = p.kv.block_size;
  const std::uint32_t hkv = p.kv.num_kv_heads;
  const bool hnd = p.kv.order == kv_order::hnd;

  // Stage s, K (kv = 0) or V (kv = 1), row r, vector tx.
  uint4* const pipe = reinterpret_cast<uint4*>(smem);
  auto slot_ptr = [&](int stage, int kv, int r) {
    return pipe + ((stage * 2 + kv) * tr::tile + r) * bdx + tx;
  };
  auto load_tile = [&](std::uint32_t tile_begin, int stage) {
#pragma unroll
    for (int j = 0; j < tokens_per_lane; ++j) {
      const int r = ty + j * bdy;
      const std::uint32_t t = tile_begin + r;
      const bool valid = t < end;
      std::size_t off = 0;
      if (valid) {
        const token_slot ts = token_slot_of(t, bs);
        off = page_offset(pages[ts.page_index], ts.position, kvh, bs, hkv, HeadDim, hnd) + tx * 8;
      }
      cp_async_16(slot_ptr(stage, 0, r), kpool + off, valid);
      cp_async_16(slot_ptr(stage, 1, r), vpool + off, valid);
    }
  };

  const std::uint32_t num_tiles = (end - begin + tr::tile - 1) / tr::tile;
  if (num_tiles > 0)
    load_tile(begin, 0);
  cp_async_commit();

  for (std::uint32_t it = 0; it < num_tiles; ++it) {
    const int stage = static_cast<int>(it & 1u);
    const std::uint32_t tile_begin = begin + it * tr::tile;
    if (it + 1 < num_tiles)
      load_tile(tile_begin + tr::tile, stage ^ 1);
    cp_async_commit();
    cp_async_wait<1>();  // this thread's copies of tile `it` have landed

    float s[max_group][tokens_per_lane];
#pragma unroll
    for (int j = 0; j < tokens_per_lane; ++j) {
      float kf[8];
      unpack8<DT>(*slot_ptr(stage, 0, ty + j * bdy), kf);
#pragma unroll
      for (int g = 0; g < max_group; ++g) {
        float acc_dot = 0.0f;
        if (g < nh) {  // uniform across the CTA
#pragma unroll
          for (int e = 0; e < 8; ++e)
            acc_dot = fmaf(q[g][e], kf[e], acc_dot);
        }
        s[g][j] = acc_dot;
      }
    }
#pragma unroll
    for (int g = 0; g < max_group; ++g) {
      if (g < nh) {  // uniform across the CTA
#pragma unroll
        for (int j = 0; j < tokens_per_lane; ++j) {
#pragma unroll
          for (int off = bdx / 2; off > 0; off /= 2) {
            s[g][j] += __shfl_xor_sync(0xffffffffu, s[g][j], off);
          }
        }
      }
    }

#pragma unroll
    for (int j = 0; j < tokens_per_lane; ++j) {
      if (tile_begin + ty + j * bdy >= end) {
#pragma unroll
        for (int g = 0; g < max_group; ++g)
          s[g][j] = neg_inf;
      }
    }

#pragma unroll
    for (int g = 0; g < max_group; ++g) {
      if (g >= nh)
        continue;
      float mx = neg_inf;
#pragma unroll
      for (int j = 0; j < tokens_per_lane; ++j)
        mx = fmaxf(mx, s[g][j]);
      // Merge the tile's scores into the running state (<kvkit/attention_merge.hpp>).
      const merge_scales<float> f = merge_factors(m[g], mx);
      const float corr = f.scale_a;
      m[g] = f.max;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < tokens_per_lane; ++j) {
        s[g][j] = exp2_of(s[g][j] - f.ref);
        sum += s[g][j];
      }
      d[g] = d[g] * corr + sum;
#pragma unroll
      for (int e = 0; e < 8; ++e)
        acc[g][e] *= corr;
    }

#pragma unroll
    for (int j = 0; j < tokens_per_lane; ++j) {
      float vf[8];
      unpack8<DT>(*slot_ptr(stage, 1, ty + j * bdy), vf);
#pragma unroll
      for (int g = 0; g < max_group; ++g) {
        if (g < nh) {
#pragma unroll
          for (int e = 0; e < 8; ++e)
            acc[g][e] = fmaf(s[g][j], vf[e], acc[g][e]);
        }
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the pipeline buffers become the reduction buffer

  float* red_acc = reinterpret_cast<float*>(smem);  // [bdy][max_group][HeadDim]
#pragma unroll
  for (int g = 0; g < max_group; ++g) {
    if (g < nh) {
      float* dst = red_acc + (ty * max_group + g) * HeadDim + tx * 8;
      reinterpret_cast<float4*>(dst)[0] = make_float4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]);
      reinterpret_cast<float4*>(dst)[1] = make_float4(acc[g][4], acc[g][5], acc[g][6], acc[g][7]);
      if (tx == 0) {
        red_m[ty][g] = m[g];
        red_d[ty][g] = d[g];
      }
    }
  }
  __syncthreads();

  for (int idx = threadIdx.x; idx < nh * bdx; idx += tr::threads) {
    const int g = idx / bdx;
    const int x = idx % bdx;
    // Merge the token lanes' states (<kvkit/attention_merge.hpp>).
    float mx = neg_inf;
    float den = 0.0f;
    float out[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#pragma unroll
    for (int y = 0; y < bdy; ++y) {
      const merge_scales<float> f = merge_factors(mx, red_m[y][g]);
      den = den * f.scale_a + red_d[y][g] * f.scale_b;
      const float* src = red_acc + (y * max_group + g) * HeadDim + x * 8;
#pragma unroll
      for (int e = 0; e < 8; ++e)
        out[e] = out[e] * f.scale_a + src[e] * f.scale_b;
      mx = f.max;
    }
    const float inv = den > 0.0f ? 1.0f / den : 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e)
      out[e] *= inv;
    const float lse_nat = state_lse2(mx, den) * ln2;
    const std::uint32_t head = head0 + g;
    if (p.num_splits == 1) {
      DT* obase = static_cast<DT*>(p.o);
      const std::uint64_t row = qo_row(b, head, p.num_qo_heads);
      *reinterpret_cast<uint4*>(obase + row * HeadDim + x * 8) = pack8<DT>(out);
      if (p.lse != nullptr && x == 0)
        p.lse[row] = lse_nat;
    } else {
      const std::uint64_t row = split_row(b, split, head, p.num_splits, p.num_qo_heads);
      float4* dst = reinterpret_cast<float4*>(p.partial_o + row * HeadDim + x * 8);
      dst[0] = make_float4(out[0], out[1], out[2], out[3]);
      dst[1] = make_float4(out[4], out[5], out[6], out[7]);
      if (x == 0)
        p.partial_lse[row] = lse_nat;
    }
  }
}

struct decode_merge_params {
  const float* partial_o;
  const float* partial_lse;
  void* o;
  float* lse;
  std::uint32_t batch;
  std::uint32_t num_qo_heads;
  std::uint32_t num_splits;
};

// One row (sequence, query head) per bdx threads; each thread merges 8 elements over the splits.
template <int HeadDim, class DT>
__global__ void __launch_bounds__(128) decode_merge_kernel(const decode_merge_params p) {
  constexpr int bdx = HeadDim / 8;
  const std::uint64_t rows = std::uint64_t{p.batch} * p.num_qo_heads;
  const std::uint64_t total = rows * bdx;
  for (std::uint64_t idx = blockIdx.x * std::uint64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += std::uint64_t{gridDim.x} * blockDim.x) {
    const std::uint64_t row = idx / bdx;  // qo_row(b, head, num_qo_heads)
    const int x = static_cast<int>(idx % bdx);
    const auto b = static_cast<std::uint32_t>(row / p.num_qo_heads);
    const auto head = static_cast<std::uint32_t>(row % p.num_qo_heads);
    // Each split's result is the normalised state (lse * log2(e), 1, o); merge them in order
    // (<kvkit/attention_merge.hpp>).
    float mx = neg_inf;
    float den = 0.0f;
    float out[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (std::uint32_t s = 0; s < p.num_splits; ++s) {
      const std::uint64_t prow = split_row(b, s, head, p.num_splits, p.num_qo_heads);
      const merge_scales<float> f = merge_factors(mx, p.partial_lse[prow] * log2e);
      den = den * f.scale_a + f.scale_b;
      const float4* src = reinterpret_cast<const float4*>(p.partial_o + prow * HeadDim + x * 8);
      const float4 a = src[0];
      const float4 c = src[1];
      const float in[8] = {a.x, a.y, a.z, a.w, c.x, c.y, c.z, c.w};
#pragma unroll
      for (int e = 0; e < 8; ++e)
        out[e] = out[e] * f.scale_a + in[e] * f.scale_b;
      mx = f.max;
    }
    const float inv = den > 0.0f ? 1.0f / den : 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e)
      out[e] *= inv;
    const float lse_nat = state_lse2(mx, den) * ln2;
    *reinterpret_cast<uint4*>(static_cast<DT*>(p.o) + row * HeadDim + x * 8) = pack8<DT>(out);
    if (p.lse != nullptr && x == 0)
      p.lse[row] = lse_nat;
  }
}

}  // namespace kvkit::detail
