// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Paged prefill attention on tensor cores (internal). See <kvkit/paged_prefill.hpp>.
//
// CTA = (row tile, K/V head, sequence), 4 warps. A row tile is 64 packed query rows; packed row
// r of a sequence is (token r / group, query head kvh * group + r % group), so all heads of the
// GQA group share each K/V tile. Warp w owns rows 16w..16w+15: S = Q K^T and O += P V with
// mma.sync.m16n8k16 (fp32 accumulators), FlashAttention-2 online softmax in the log2 domain.
// Q, K and V tiles live in shared memory with the 16-byte chunk index XOR-swizzled by (row % 8),
// so ldmatrix reads are free of bank conflicts; K/V tiles are gathered from the pages with
// cp.async into two stages.
#pragma once

#include <kvkit/detail/common.cuh>

#include <cstdint>

namespace kvkit::detail {

template <int HeadDim>
struct prefill_traits {
  static constexpr int warps = 4;
  static constexpr int threads = warps * 32;
  static constexpr int bm = 16 * warps;                // query rows per CTA
  static constexpr int bn = HeadDim <= 128 ? 64 : 32;  // K/V tokens per tile
  static constexpr int chunks = HeadDim / 8;           // 16-byte chunks per row
  static constexpr int stages = 2;
  static constexpr int q_elems = bm * HeadDim;
  static constexpr int kv_elems = bn * HeadDim;  // one K or V tile
  static constexpr int smem_bytes = (q_elems + stages * 2 * kv_elems) * 2;
  static_assert(HeadDim % 64 == 0, "head_dim 64, 128 or 256");
};

struct prefill_params {
  const void* q;
  const std::uint32_t* qo_indptr;
  paged_kv<const void> kv;
  void* o;
  float* lse;
  std::uint32_t num_qo_heads;
  std::uint32_t group;
  float scale_log2;
  bool causal;
};

// Element offset of 16-byte chunk `c` of row `r` in a swizzled [rows][HeadDim] tile.
template <int HeadDim>
__device__ __forceinline__ int swz(int r, int c) {
  return r * HeadDim + ((c ^ (r & 7)) << 3);
}

template <int HeadDim, class DT>
__global__ void __launch_bounds__(128) paged_prefill_kernel(const prefill_params p) {
  using tr = prefill_traits<HeadDim>;
  constexpr int BM = tr::bm;
  constexpr int BN = tr::bn;
  constexpr int chunks = tr::chunks;
  constexpr int s_tiles = BN / 8;       // S n-tiles per warp
  constexpr int o_tiles = HeadDim / 8;  // O n-tiles per warp

  extern __shared__ __align__(16) unsigned char smem_raw[];
  DT* const sq = reinterpret_cast<DT*>(smem_raw);
  DT* const skv = sq + tr::q_elems;  // [stage][K|V][BN][HeadDim]

  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const std::uint32_t kvh = blockIdx.y;
  const std::uint32_t b = blockIdx.z;

  const std::uint32_t q_begin = p.qo_indptr[b];
  const std::uint32_t n_u = p.qo_indptr[b + 1] - q_begin;
  const std::uint32_t kv_len_u = p.kv.kv_len[b];
  const int rows = static_cast<int>(n_u * p.group);
  const int kv_len = static_cast<int>(kv_len_u);
  const std::uint32_t* pages = p.kv.indices + p.kv.indptr[b];
  const std::uint32_t bs = p.kv.block_size;
  const std::uint32_t hkv = p.kv.num_kv_heads;
  const bool hnd = p.kv.order == kv_order::hnd;
  const DT* const qg = static_cast<const DT*>(p.q);
  const DT* const kpool = static_cast<const DT*>(p.kv.k);
  const DT* const vpool = static_cast<const DT*>(p.kv.v);
  DT* const og = static_cast<DT*>(p.o);

  // Position limit (exclusive) of the keys packed row r may see (rows past the end take the
  // last row's).
  auto limit_of = [&](int r) {
    const int rr = r < rows ? r : rows - 1;
    const packed_row pr = unpack_row(static_cast<std::uint32_t>(rr), kvh, p.group);
    return static_cast<int>(key_limit(kv_len_u, n_u, pr.query, p.causal));
  };
  auto q_row_offset = [&](int r) {  // row of packed row r in q / o (times HeadDim) and lse
    const packed_row pr = unpack_row(static_cast<std::uint32_t>(r), kvh, p.group);
    return qo_row(q_begin + pr.query, pr.qo_head, p.num_qo_heads);
  };

  for (int row0 = static_cast<int>(blockIdx.x) * BM; row0 < rows;
       row0 += static_cast<int>(gridDim.x) * BM) {
    // ---- Q tile -----------------------------------------------------------------------------
    for (int v = tid; v < BM * chunks; v += tr::threads) {
      const int r = v / chunks;
      const int c = v % chunks;
      const bool valid = row0 + r < rows;
      const DT* src = valid ? qg + q_row_offset(row0 + r) * HeadDim + c * 8 : qg;
      cp_async_16(sq + swz<HeadDim>(r, c), src, valid);
    }

    const int last_row = (row0 + BM < rows ? row0 + BM : rows) - 1;
    int kv_end = limit_of(last_row);
    if (kv_end > kv_len)
      kv_end = kv_len;
    if (kv_end < 0)
      kv_end = 0;
    const int first_limit = limit_of(row0);  // tiles ending at or before this need no mask
    const int num_tiles = (kv_end + BN - 1) / BN;

    auto load_kv = [&](int tile, int stage) {
      DT* const sk = skv + stage * 2 * tr::kv_elems;
      DT* const sv = sk + tr::kv_elems;
      for (int v = tid; v < BN * chunks; v += tr::threads) {
        const int r = v / chunks;
        const int c = v % chunks;
        const int t = tile * BN + r;
        const bool valid = t < kv_end;
        std::size_t off = 0;
        if (valid) {
          const token_slot ts = token_slot_of(static_cast<std::uint32_t>(t), bs);
          off = page_offset(pages[ts.page_index], ts.position, kvh, bs, hkv, HeadDim, hnd) + c * 8;
        }
        cp_async_16(sk + swz<HeadDim>(r, c), kpool + off, valid);
        cp_async_16(sv + swz<HeadDim>(r, c), vpool + off, valid);
      }
    };

    if (num_tiles > 0)
      load_kv(0, 0);
    cp_async_commit();  // group: Q + tile 0

    // This thread's two rows of the warp tile: ra (lane / 4) and ra + 8.
    const int ra = row0 + warp * 16 + lane / 4;
    const int lim_a = limit_of(ra);
    const int lim_b = limit_of(ra + 8);

    float o[o_tiles][4];
#pragma unroll
    for (int i = 0; i < o_tiles; ++i)
      o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_a = neg_inf, m_b = neg_inf, l_a = 0.0f, l_b = 0.0f;

    for (int tile = 0; tile < num_tiles; ++tile) {
      const int stage = tile & 1;
      if (tile + 1 < num_tiles) {
        load_kv(tile + 1, stage ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();

      const DT* const sk = skv + stage * 2 * tr::kv_elems;
      const DT* const sv = sk + tr::kv_elems;

      // ---- S = Q K^T ------------------------------------------------------------------------
      float s[s_tiles][4];
#pragma unroll
      for (int i = 0; i < s_tiles; ++i)
        s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < HeadDim / 16; ++kk) {
        std::uint32_t a[4];
        ldmatrix_x4(a, sq + swz<HeadDim>(warp * 16 + (lane & 15), kk * 2 + (lane >> 4)));
#pragma unroll
        for (int jn = 0; jn < BN / 16; ++jn) {
          std::uint32_t bf[4];
          ldmatrix_x4(bf, sk + swz<HeadDim>(jn * 16 + (lane & 7) + ((lane >> 4) << 3),
                                            kk * 2 + ((lane >> 3) & 1)));
          mma_16816<DT>(s[2 * jn], a, bf[0], bf[1]);
          mma_16816<DT>(s[2 * jn + 1], a, bf[2], bf[3]);
        }
      }

      // ---- scale, mask, online softmax ------------------------------------------------------
      const int tile_end = (tile + 1) * BN;
      const bool need_mask = tile_end > first_limit || tile_end > kv_end;
#pragma unroll
      for (int i = 0; i < s_tiles; ++i) {
#pragma unroll
        for (int e = 0; e < 4; ++e)
          s[i][e] *= p.scale_log2;
        if (need_mask) {
          const int t = tile * BN + i * 8 + 2 * (lane & 3);
          if (t >= lim_a)
            s[i][0] = neg_inf;
          if (t + 1 >= lim_a)
            s[i][1] = neg_inf;
          if (t >= lim_b)
            s[i][2] = neg_inf;
          if (t + 1 >= lim_b)
            s[i][3] = neg_inf;
        }
      }
      float mx_a = neg_inf, mx_b = neg_inf;
#pragma unroll
      for (int i = 0; i < s_tiles; ++i) {
        mx_a = fmaxf(mx_a, fmaxf(s[i][0], s[i][1]));
        mx_b = fmaxf(mx_b, fmaxf(s[i][2], s[i][3]));
      }
#pragma unroll
      for (int off = 1; off < 4; off *= 2) {
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, off));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, off));
      }
      // Merge the tile's scores into the rows' running states (<kvkit/attention_merge.hpp>).
      const merge_scales<float> fa = merge_factors(m_a, mx_a);
      const merge_scales<float> fb = merge_factors(m_b, mx_b);
      const float corr_a = fa.scale_a;
      const float corr_b = fb.scale_a;
      m_a = fa.max;
      m_b = fb.max;
      float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
      for (int i = 0; i < s_tiles; ++i) {
        s[i][0] = exp2_of(s[i][0] - fa.ref);
        s[i][1] = exp2_of(s[i][1] - fa.ref);
        s[i][2] = exp2_of(s[i][2] - fb.ref);
        s[i][3] = exp2_of(s[i][3] - fb.ref);
        sum_a += s[i][0] + s[i][1];
        sum_b += s[i][2] + s[i][3];
      }
      l_a = l_a * corr_a + sum_a;  // per-thread partial; reduced over the quad at the end
      l_b = l_b * corr_b + sum_b;
#pragma unroll
      for (int i = 0; i < o_tiles; ++i) {
        o[i][0] *= corr_a;
        o[i][1] *= corr_a;
        o[i][2] *= corr_b;
        o[i][3] *= corr_b;
      }

      // ---- O += P V -------------------------------------------------------------------------
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        std::uint32_t a[4];
        a[0] = pack2<DT>(s[2 * kk][0], s[2 * kk][1]);
        a[1] = pack2<DT>(s[2 * kk][2], s[2 * kk][3]);
        a[2] = pack2<DT>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[3] = pack2<DT>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
        for (int dn = 0; dn < HeadDim / 16; ++dn) {
          std::uint32_t bf[4];
          ldmatrix_x4_trans(bf, sv + swz<HeadDim>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8,
                                                  dn * 2 + (lane >> 4)));
          mma_16816<DT>(o[2 * dn], a, bf[0], bf[1]);
          mma_16816<DT>(o[2 * dn + 1], a, bf[2], bf[3]);
        }
      }
      __syncthreads();  // the next iteration's loads overwrite this stage
    }
    cp_async_wait<0>();

    // ---- epilogue -------------------------------------------------------------------------
#pragma unroll
    for (int off = 1; off < 4; off *= 2) {
      l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
      l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    const float inv_a = l_a > 0.0f ? 1.0f / l_a : 0.0f;
    const float inv_b = l_b > 0.0f ? 1.0f / l_b : 0.0f;
    const int rb = ra + 8;
    if (ra < rows) {
      DT* dst = og + q_row_offset(ra) * HeadDim + 2 * (lane & 3);
#pragma unroll
      for (int i = 0; i < o_tiles; ++i) {
        *reinterpret_cast<std::uint32_t*>(dst + i * 8) =
            pack2<DT>(o[i][0] * inv_a, o[i][1] * inv_a);
      }
      if (p.lse != nullptr && (lane & 3) == 0) {
        p.lse[q_row_offset(ra)] = state_lse2(m_a, l_a) * ln2;
      }
    }
    if (rb < rows) {
      DT* dst = og + q_row_offset(rb) * HeadDim + 2 * (lane & 3);
#pragma unroll
      for (int i = 0; i < o_tiles; ++i) {
        *reinterpret_cast<std::uint32_t*>(dst + i * 8) =
            pack2<DT>(o[i][2] * inv_b, o[i][3] * inv_b);
      }
      if (p.lse != nullptr && (lane & 3) == 0) {
        p.lse[q_row_offset(rb)] = state_lse2(m_b, l_b) * ln2;
      }
    }
    __syncthreads();  // Q buffer is reused by the next row tile
  }
}

}  // namespace kvkit::detail
