// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Device helpers shared by kvkit's kernels: element types, 16-byte vectors, cp.async, ldmatrix,
// mma.sync, and the launch helper. Internal (kvkit::detail); needs nvcc. The index arithmetic
// (pages, slots, offsets, splits, GQA rows, causal limits) is <kvkit/index_math.hpp>, the
// log-sum-exp merge <kvkit/attention_merge.hpp>; the kernels call those, never a copy.
#pragma once

#include <kvkit/attention_merge.hpp>
#include <kvkit/index_math.hpp>
#include <kvkit/paged_kv.hpp>
#include <kvkit/types.hpp>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace kvkit::detail {

/// Device element type of a host storage type (kvkit::fp16 -> __half, kvkit::bf16 ->
/// __nv_bfloat16). The host types are bit-compatible 16-bit PODs.
template <class T>
struct device_element;
template <>
struct device_element<fp16> {
  using type = __half;
};
template <>
struct device_element<bf16> {
  using type = __nv_bfloat16;
};
template <class T>
using device_element_t = typename device_element<T>::type;

static_assert(sizeof(fp16) == 2 && sizeof(bf16) == 2);

/// A paged view with a concrete device element type.
template <class DT>
KVKIT_HOST_DEVICE inline paged_kv<const DT> typed_view(const paged_kv<const void>& v) {
  paged_kv<const DT> t;
  t.k = static_cast<const DT*>(v.k);
  t.v = static_cast<const DT*>(v.v);
  t.indptr = v.indptr;
  t.indices = v.indices;
  t.kv_len = v.kv_len;
  t.batch = v.batch;
  t.block_size = v.block_size;
  t.num_kv_heads = v.num_kv_heads;
  t.head_dim = v.head_dim;
  t.order = v.order;
  return t;
}

#if defined(__CUDACC__)

// ---- conversions --------------------------------------------------------------------------

template <class DT>
__device__ __forceinline__ float to_f32(DT x);
template <>
__device__ __forceinline__ float to_f32<__half>(__half x) {
  return __half2float(x);
}
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

template <class DT>
__device__ __forceinline__ DT from_f32(float x);
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

/// Two floats packed into one 32-bit register of two 16-bit elements (low = a).
template <class DT>
__device__ __forceinline__ std::uint32_t pack2(float a, float b);
template <>
__device__ __forceinline__ std::uint32_t pack2<__half>(float a, float b) {
  __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<std::uint32_t*>(&h);
}
template <>
__device__ __forceinline__ std::uint32_t pack2<__nv_bfloat16>(float a, float b) {
  __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<std::uint32_t*>(&h);
}

/// The two 16-bit elements of one 32-bit word to floats (low half first).
template <class DT>
__device__ __forceinline__ void unpack2(std::uint32_t w, float& lo, float& hi);
template <>
__device__ __forceinline__ void unpack2<__nv_bfloat16>(std::uint32_t w, float& lo, float& hi) {
  lo = __uint_as_float(w << 16);  // bf16 -> fp32 is a shift
  hi = __uint_as_float(w & 0xFFFF0000u);
}
template <>
__device__ __forceinline__ void unpack2<__half>(std::uint32_t w, float& lo, float& hi) {
  lo = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xFFFFu)));
  hi = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
}

/// Eight 16-bit elements (one 16-byte vector, taken by value so that callers load it with one
/// 16-byte access) to floats.
template <class DT>
__device__ __forceinline__ void unpack8(const uint4 v, float (&f)[8]) {
  unpack2<DT>(v.x, f[0], f[1]);
  unpack2<DT>(v.y, f[2], f[3]);
  unpack2<DT>(v.z, f[4], f[5]);
  unpack2<DT>(v.w, f[6], f[7]);
}

/// Eight floats to one 16-byte vector of 16-bit elements.
template <class DT>
__device__ __forceinline__ uint4 pack8(const float (&f)[8]) {
  uint4 v;
  v.x = pack2<DT>(f[0], f[1]);
  v.y = pack2<DT>(f[2], f[3]);
  v.z = pack2<DT>(f[4], f[5]);
  v.w = pack2<DT>(f[6], f[7]);
  return v;
}

// ---- cp.async -----------------------------------------------------------------------------

__device__ __forceinline__ std::uint32_t smem_u32(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

/// 16-byte global -> shared copy; when !valid the destination is zero-filled and the source is
/// not read.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  const std::uint32_t dst = smem_u32(smem);
  const int src_size = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem),
               "r"(src_size)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---- ldmatrix / mma.sync (sm_80+) -----------------------------------------------------------

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem)));
}

/// D = A * B + D for one m16n8k16 tile, 16-bit inputs, fp32 accumulators.
template <class DT>
__device__ __forceinline__ void mma_16816(float (&d)[4], const std::uint32_t (&a)[4],
                                          std::uint32_t b0, std::uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const std::uint32_t (&a)[4],
                                                         std::uint32_t b0, std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const std::uint32_t (&a)[4],
                                                  std::uint32_t b0, std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---- math -----------------------------------------------------------------------------------

inline constexpr float log2e = static_cast<float>(log2_e);
inline constexpr float ln2 = static_cast<float>(ln_2);
inline constexpr float neg_inf = -__builtin_huge_valf();

/// Enqueues `kernel<<<grid, block, smem, stream>>>(args...)` through cudaLaunchKernelEx and
/// returns the launch's own status: an error left pending by an earlier, unrelated call is
/// neither reported here nor cleared.
template <class... Params, class... Args>
inline cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem,
                                 cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = nullptr;
  config.numAttrs = 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

#endif  // __CUDACC__

}  // namespace kvkit::detail
