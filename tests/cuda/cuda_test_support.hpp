// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Helpers for the GPU tests in tests/cuda: device check, device buffers, random paged batches.
#pragma once

#include <kvkit/index_math.hpp>
#include <kvkit/kernel_registry.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/paged_kv.hpp>
#include <kvkit/types.hpp>

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

/// Skips the current test (GTEST_SKIP) when no CUDA device is usable; first statement of every
/// test that touches the GPU.
#define KVKIT_REQUIRE_CUDA_DEVICE()                \
  do {                                             \
    if (!::kvkit::test::cuda_device_available()) { \
      GTEST_SKIP() << "no CUDA device";            \
    }                                              \
  } while (0)

/// Fails the current test when a CUDA call does not return cudaSuccess.
#define KVKIT_CUDA_OK(expr)                                                                \
  do {                                                                                     \
    const cudaError_t kvkit_err_ = (expr);                                                 \
    ASSERT_EQ(kvkit_err_, cudaSuccess) << #expr << ": " << cudaGetErrorString(kvkit_err_); \
  } while (0)

/// Fails the current test when a kvkit status is not ok.
#define KVKIT_STATUS_OK(expr)                           \
  do {                                                  \
    const ::kvkit::status kvkit_st_ = (expr);           \
    ASSERT_TRUE(kvkit_st_.ok()) << kvkit_st_.message(); \
  } while (0)

namespace kvkit::test {

inline bool cuda_device_available() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

/// Owning device allocation of `count` elements of T.
template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::size_t count) : count_(count) {
    if (count_ > 0 && cudaMalloc(&ptr_, count_ * sizeof(T)) != cudaSuccess) {
      ptr_ = nullptr;
      ADD_FAILURE() << "cudaMalloc of " << count_ * sizeof(T) << " bytes failed";
    }
  }
  explicit device_buffer(const std::vector<T>& host) : device_buffer(host.size()) { upload(host); }
  device_buffer(device_buffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(count_, o.count_);
    return *this;
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() {
    if (ptr_ != nullptr)
      cudaFree(ptr_);
  }

  T* get() const { return static_cast<T*>(ptr_); }
  std::size_t size() const { return count_; }

  void upload(const std::vector<T>& host) {
    ASSERT_EQ(host.size(), count_);
    if (count_ > 0) {
      ASSERT_EQ(cudaMemcpy(ptr_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice),
                cudaSuccess);
    }
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    if (count_ > 0) {
      EXPECT_EQ(cudaMemcpy(host.data(), ptr_, count_ * sizeof(T), cudaMemcpyDeviceToHost),
                cudaSuccess);
    }
    return host;
  }
  /// Fills every byte with 0xFF: NaN for fp16/bf16/fp32, so unwritten outputs fail comparisons.
  void poison() {
    if (count_ > 0)
      EXPECT_EQ(cudaMemset(ptr_, 0xFF, count_ * sizeof(T)), cudaSuccess);
  }

 private:
  void* ptr_ = nullptr;
  std::size_t count_ = 0;
};

template <class T>
T from_float(float f) {
  if constexpr (std::is_same_v<T, bf16>) {
    return to_bf16(f);
  } else if constexpr (std::is_same_v<T, fp16>) {
    return to_fp16(f);
  } else {
    return f;
  }
}

template <class T>
constexpr cuda_dtype cuda_dtype_of() {
  return std::is_same_v<T, fp16> ? cuda_dtype::fp16 : cuda_dtype::bf16;
}

/// Output tolerance (absolute) of a kernel whose only rounding is the output's own: decode,
/// its split merge and merge_states accumulate in fp32 and round once to T. Outputs are convex
/// combinations of values in [-1, 1], so the rounding error is at most half an ulp of a value
/// below 1: 2^-9 = 1.95e-3 for bf16 (8 significant bits), 2^-12 = 2.4e-4 for fp16 (11 bits);
/// fp32 accumulation adds ~1e-6. The bounds leave 1.5-2x for that, and are 100x below what one
/// dropped or added dominant key moves an output (0.1-1, see planted_key below).
template <class T>
constexpr float output_tolerance() {
  return std::is_same_v<T, bf16> ? 3e-3f : 5e-4f;
}
/// Output tolerance (absolute) of prefill, which also rounds the softmax probabilities P to T
/// before the P V product on tensor cores (the denominator sums the unrounded fp32 P): a relative
/// error of at most one unit roundoff per probability (2^-8 = 3.9e-3 bf16, 2^-11 = 4.9e-4 fp16)
/// moves a convex combination of values in [-1, 1] by at most that much, on top of the output's
/// own rounding (1.95e-3 / 2.4e-4). Worst case 5.9e-3 / 7.3e-4.
template <class T>
constexpr float prefill_output_tolerance() {
  return std::is_same_v<T, bf16> ? 8e-3f : 1.5e-3f;
}
/// Log-sum-exp tolerance (absolute): fp32 scores of exactly representable inputs, summed over at
/// most 256 products, plus exp2/log2 of a few ulp; observed errors are ~1e-5 of |lse| <= 40.
inline constexpr float lse_tolerance = 2e-3f;

/// Whether the reduced case set is asked for (`KVKIT_GPU_TEST_QUICK=1`, as the compute-sanitizer
/// passes of benchmarks/cuda/gpu_check do): one kernel configuration, fewer page sizes and
/// groups, no multi-GiB pools.
inline bool quick() {
  const char* v = std::getenv("KVKIT_GPU_TEST_QUICK");
  return v != nullptr && v[0] != '\0' && v[0] != '0';
}

/// The built configurations a test loops over: all of them, or the first in quick mode.
inline std::vector<kernel_config> test_configs() {
  const auto all = built_kernel_configs();
  if (quick())
    return {all.front()};
  return {all.begin(), all.end()};
}

/// `all` in a full run, `reduced` in quick mode.
inline std::vector<std::uint32_t> pick(std::vector<std::uint32_t> all,
                                       std::vector<std::uint32_t> reduced) {
  return quick() ? reduced : all;
}

/// Free device memory in bytes (0 without a device).
inline std::size_t free_device_memory() {
  std::size_t free_bytes = 0, total = 0;
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return free_bytes;
}

template <class T>
std::vector<T> random_values(std::size_t n, float lo, float hi, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v)
    x = from_float<T>(dist(rng));
  return v;
}

template <class T>
std::vector<float> to_floats(const std::vector<T>& v) {
  std::vector<float> f(v.size());
  std::transform(v.begin(), v.end(), f.begin(), [](T x) { return to_float(x); });
  return f;
}

/// A random ragged batch of paged sequences over one layer's K/V pools, on host and device.
template <class T>
struct paged_batch {
  std::uint32_t block_size = 16;
  std::uint32_t num_kv_heads = 1;
  std::uint32_t head_dim = 128;
  kv_order order = kv_order::nhd;
  std::uint32_t num_pages = 0;
  std::uint32_t extra_pages = 0;  ///< Pages each sequence owns past its last token.
  std::vector<std::uint32_t> kv_len, indptr, indices;
  std::vector<T> k, v;  // pools, num_pages pages each
  device_buffer<std::uint32_t> d_kv_len, d_indptr, d_indices;
  device_buffer<T> d_k, d_v;

  /// Pages are a random permutation of the pool, with unused pages in between.
  void build(const std::vector<std::uint32_t>& lens, std::mt19937_64& rng) {
    kv_len = lens;
    indptr.assign(1, 0);
    std::uint32_t used = 0;
    for (std::uint32_t len : lens) {
      used += pages_for(len, block_size) + extra_pages;
      indptr.push_back(used);
    }
    num_pages = used + 3;  // spare pages hold garbage that must never be read
    std::vector<std::uint32_t> perm(num_pages);
    std::iota(perm.begin(), perm.end(), 0u);
    std::shuffle(perm.begin(), perm.end(), rng);
    indices.assign(perm.begin(), perm.begin() + used);
    const std::size_t elems = std::size_t{num_pages} * block_size * num_kv_heads * head_dim;
    k = random_values<T>(elems, -1.0f, 1.0f, rng);
    v = random_values<T>(elems, -1.0f, 1.0f, rng);
    upload();
  }
  void upload() {
    d_kv_len = device_buffer<std::uint32_t>(kv_len);
    d_indptr = device_buffer<std::uint32_t>(indptr);
    d_indices =
        device_buffer<std::uint32_t>(indices.empty() ? std::vector<std::uint32_t>{0} : indices);
    d_k = device_buffer<T>(k);
    d_v = device_buffer<T>(v);
  }
  paged_kv<const T> host_view() const {
    paged_kv<const T> view;
    view.k = k.data();
    view.v = v.data();
    view.indptr = indptr.data();
    view.indices = indices.data();
    view.kv_len = kv_len.data();
    view.batch = static_cast<std::uint32_t>(kv_len.size());
    view.block_size = block_size;
    view.num_kv_heads = num_kv_heads;
    view.head_dim = head_dim;
    view.order = order;
    return view;
  }
  paged_kv<const void> device_view() const {
    paged_kv<const void> view;
    view.k = d_k.get();
    view.v = d_v.get();
    view.indptr = d_indptr.get();
    view.indices = d_indices.get();
    view.kv_len = d_kv_len.get();
    view.batch = static_cast<std::uint32_t>(kv_len.size());
    view.block_size = block_size;
    view.num_kv_heads = num_kv_heads;
    view.head_dim = head_dim;
    view.order = order;
    return view;
  }
};

/// Element 0 of every planted query, and of a planted key: their product, times the softmax
/// scale, is the planted score (128 * 2 / sqrt(head_dim) = 16 / 11.3 / 8 for head_dim 64 / 128 /
/// 256), while a random key (elements in [-1, 1]) scores within ~3 of 0 against a query with
/// elements in [-2, 2]. e^8 is 3000x the weight of a typical key, so one planted key outweighs
/// the rest of a 1500-token sequence and the output is within ~0.1 of its value vector: a
/// kernel that drops it, or reads a planted key it must not see, moves the output by 0.1-1.
inline constexpr float planted_query_element = 2.0f;
inline constexpr float planted_key_element = 128.0f;

/// Sets element 0 of every query row to planted_query_element (q is [rows][heads][head_dim]).
template <class T>
void plant_queries(std::vector<T>& q, std::uint32_t head_dim) {
  for (std::size_t i = 0; i < q.size(); i += head_dim)
    q[i] = from_float<T>(planted_query_element);
}

/// Makes position @p pos of sequence @p b dominant in every K/V head: K = (128, 0, ..., 0); V
/// keeps its random values. @p pos may lie past the sequence's last token (in its last partial
/// page or its extra pages), where a correct kernel never looks. Call upload() afterwards.
template <class T>
void plant_key(paged_batch<T>& batch, std::uint32_t b, std::uint32_t pos) {
  paged_kv<const T> view = batch.host_view();
  ASSERT_LT(token_slot_of(pos, batch.block_size).page_index, batch.indptr[b + 1] - batch.indptr[b])
      << "position " << pos << " is not in a page of sequence " << b;
  for (std::uint32_t h = 0; h < batch.num_kv_heads; ++h) {
    T* k = batch.k.data() + view.token_offset(b, pos, h);
    for (std::uint32_t x = 0; x < batch.head_dim; ++x)
      k[x] = from_float<T>(x == 0 ? planted_key_element : 0.0f);
  }
}

/// Largest |got - want| over all elements; NaN (an unwritten or broken output) gives +inf.
inline float max_abs_error(const std::vector<float>& got, const std::vector<float>& want) {
  float worst = 0.0f;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool got_inf = std::isinf(got[i]);
    const bool want_inf = std::isinf(want[i]);
    if (got_inf || want_inf) {
      if (!(got_inf && want_inf && (got[i] > 0) == (want[i] > 0)))
        return INFINITY;
      continue;
    }
    const float e = std::fabs(got[i] - want[i]);
    if (std::isnan(e))
      return INFINITY;
    worst = std::max(worst, e);
  }
  return worst;
}

/// Calls f.template operator()<T>() with the host element type of a built configuration.
template <class F>
void with_dtype(cuda_dtype dtype, F&& f) {
  if (dtype == cuda_dtype::fp16) {
    f.template operator()<fp16>();
  } else {
    f.template operator()<bf16>();
  }
}

inline std::string case_name(const kernel_config& c, kv_order order, std::uint32_t page,
                             std::uint32_t group) {
  return to_string(c) + " " + std::string(to_string(order)) + " page=" + std::to_string(page) +
         " group=" + std::to_string(group);
}

}  // namespace kvkit::test
