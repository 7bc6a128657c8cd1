// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Shared pieces of the GPU benchmarks: device check, event timing, random device data, and the
// two machine limits every kernel figure is reported beside, measured in the same process:
//   BM_Limits_MemcpyD2D        device-to-device cudaMemcpy bandwidth (bytes read + written)
//   BM_Limits_CublasGemmBf16   cuBLAS bf16 GEMM rate (fp32 accumulation), 8192^3
// Kernel benchmarks report `GB/s` or `TFLOP/s` beside `limit_GB/s` / `limit_TFLOP/s` and
// `pct_of_limit` counters.
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>
#if defined(KVKIT_HAVE_CUBLAS)
#include <cublas_v2.h>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kvkit::bench {

inline bool has_device() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

/// Skips the benchmark (SkipWithError) when there is no device; use as the first statement.
#define KVKIT_BENCH_REQUIRE_DEVICE(state)      \
  do {                                         \
    if (!::kvkit::bench::has_device()) {       \
      (state).SkipWithError("no CUDA device"); \
      return;                                  \
    }                                          \
  } while (0)

/// Skips the benchmark with the CUDA error when a call fails.
#define KVKIT_BENCH_CUDA(state, expr)                                                              \
  do {                                                                                             \
    const cudaError_t kvkit_err_ = (expr);                                                         \
    if (kvkit_err_ != cudaSuccess) {                                                               \
      (state).SkipWithError((std::string(#expr) + ": " + cudaGetErrorString(kvkit_err_)).c_str()); \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/// Device allocation freed at scope exit.
class device_memory {
 public:
  explicit device_memory(std::size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0 && cudaMalloc(&ptr_, bytes_) != cudaSuccess) {
      cudaGetLastError();
      ptr_ = nullptr;
    }
  }
  device_memory(const device_memory&) = delete;
  device_memory& operator=(const device_memory&) = delete;
  ~device_memory() {
    if (ptr_ != nullptr)
      cudaFree(ptr_);
  }
  [[nodiscard]] bool ok() const { return bytes_ == 0 || ptr_ != nullptr; }
  template <class T = void>
  [[nodiscard]] T* get() const {
    return static_cast<T*>(ptr_);
  }
  [[nodiscard]] std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

namespace detail {
__global__ inline void fill_random_bf16_kernel(std::uint16_t* p, std::size_t n,
                                               std::uint32_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    // A bf16/fp16-agnostic small value: sign, exponent for [2^-3, 2^0), random mantissa bits.
    const std::uint16_t sign = static_cast<std::uint16_t>((h & 1u) << 15);
    p[i] = static_cast<std::uint16_t>(sign | (0x3E00u + ((h >> 8) & 0x1FFu)));
  }
}
}  // namespace detail

/// Fills @p n 16-bit elements with random non-zero bf16 values, magnitudes in [1/8, 2) (never
/// zeros, which can run faster than real data).
inline cudaError_t fill_random(void* p, std::size_t n, std::uint32_t seed) {
  detail::fill_random_bf16_kernel<<<1024, 256>>>(static_cast<std::uint16_t*>(p), n, seed);
  return cudaGetLastError();
}

/// Times `launch()` with CUDA events: `reps` launches per benchmark iteration, manual time.
/// @return Mean seconds per launch, or 0 after SkipWithError.
template <class Launch>
double time_with_events(benchmark::State& state, int reps, Launch&& launch) {
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < 3; ++i)
    launch();  // warm-up: module load, first touch
  if (const cudaError_t err = cudaDeviceSynchronize(); err != cudaSuccess) {
    state.SkipWithError((std::string("warm-up failed: ") + cudaGetErrorString(err)).c_str());
    return 0.0;
  }
  double total = 0.0;
  std::int64_t launches = 0;
  for (auto _ : state) {
    cudaEventRecord(start);
    for (int i = 0; i < reps; ++i)
      launch();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    const double seconds = static_cast<double>(ms) / 1e3;
    state.SetIterationTime(seconds / reps);
    total += seconds;
    launches += reps;
  }
  const cudaError_t err = cudaGetLastError();
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (err != cudaSuccess) {
    state.SkipWithError(cudaGetErrorString(err));
    return 0.0;
  }
  return launches > 0 ? total / static_cast<double>(launches) : 0.0;
}

/// Times `launch(stream)` replayed from a CUDA graph: after three eager warm-up launches (module
/// load, first touch, the kernel API's per-device caches), `reps` launches are captured once into
/// a graph on a stream of its own, and each benchmark iteration times one replay of that graph
/// with CUDA events (manual time, per launch). The host work of run() (argument checks, planning,
/// table lookup) is done at capture and never timed, and launch gaps shrink to the graph's, so
/// small cases measure the kernels. Falls back to eager launches if capture fails.
/// @return Mean seconds per launch, or 0 after SkipWithError.
template <class Launch>
double time_with_graph(benchmark::State& state, int reps, Launch&& launch) {
  cudaStream_t stream = nullptr;
  if (const cudaError_t err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
      err != cudaSuccess) {
    state.SkipWithError((std::string("cudaStreamCreate: ") + cudaGetErrorString(err)).c_str());
    return 0.0;
  }
  for (int i = 0; i < 3; ++i)
    launch(stream);
  if (const cudaError_t err = cudaStreamSynchronize(stream); err != cudaSuccess) {
    state.SkipWithError((std::string("warm-up failed: ") + cudaGetErrorString(err)).c_str());
    cudaStreamDestroy(stream);
    return 0.0;
  }
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  bool graphed = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
  if (graphed) {
    for (int i = 0; i < reps; ++i)
      launch(stream);
    graphed = cudaStreamEndCapture(stream, &graph) == cudaSuccess &&
              cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
  }
  if (!graphed) {
    cudaGetLastError();
    state.counters["graph"] = 0;
  } else {
    state.counters["graph"] = 1;
  }
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  double total = 0.0;
  std::int64_t launches = 0;
  for (auto _ : state) {
    cudaEventRecord(start, stream);
    if (graphed) {
      cudaGraphLaunch(exec, stream);
    } else {
      for (int i = 0; i < reps; ++i)
        launch(stream);
    }
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    const double seconds = static_cast<double>(ms) / 1e3;
    state.SetIterationTime(seconds / reps);
    total += seconds;
    launches += reps;
  }
  const cudaError_t err = cudaStreamSynchronize(stream);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (exec != nullptr)
    cudaGraphExecDestroy(exec);
  if (graph != nullptr)
    cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  if (err != cudaSuccess) {
    state.SkipWithError(cudaGetErrorString(err));
    return 0.0;
  }
  return launches > 0 ? total / static_cast<double>(launches) : 0.0;
}

/// Device-to-device copy bandwidth in GB/s (bytes read + bytes written), measured once per
/// process over a 1 GiB buffer; 0 without a device.
inline double measured_copy_gbps() {
  static const double gbps = [] {
    if (!has_device())
      return 0.0;
    const std::size_t bytes = std::size_t{1} << 30;
    device_memory a(bytes), b(bytes);
    if (!a.ok() || !b.ok())
      return 0.0;
    cudaMemset(a.get(), 1, bytes);
    cudaEvent_t start = nullptr, stop = nullptr;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    cudaMemcpy(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice);  // warm-up
    std::vector<float> times;
    for (int i = 0; i < 10; ++i) {
      cudaEventRecord(start);
      cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice);
      cudaEventRecord(stop);
      cudaEventSynchronize(stop);
      float ms = 0.0f;
      cudaEventElapsedTime(&ms, start, stop);
      times.push_back(ms);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::sort(times.begin(), times.end());
    return 2.0 * static_cast<double>(bytes) / (times[times.size() / 2] * 1e-3) / 1e9;
  }();
  return gbps;
}

/// cuBLAS bf16 GEMM rate in TFLOP/s (8192^3, fp32 accumulation), measured once per process;
/// 0 without a device or without cuBLAS.
inline double measured_gemm_tflops() {
#if defined(KVKIT_HAVE_CUBLAS)
  static const double tflops = [] {
    if (!has_device())
      return 0.0;
    constexpr int n = 8192;
    const std::size_t elems = std::size_t{n} * n;
    device_memory a(elems * 2), b(elems * 2), c(elems * 2);
    if (!a.ok() || !b.ok() || !c.ok())
      return 0.0;
    fill_random(a.get(), elems, 1);
    fill_random(b.get(), elems, 2);
    cublasHandle_t handle = nullptr;
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS)
      return 0.0;
    const float alpha = 1.0f, beta = 0.0f;
    auto gemm = [&] {
      return cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a.get(), CUDA_R_16BF,
                          n, b.get(), CUDA_R_16BF, n, &beta, c.get(), CUDA_R_16BF, n,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    };
    for (int i = 0; i < 3; ++i)
      gemm();
    cudaEvent_t start = nullptr, stop = nullptr;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    std::vector<float> times;
    for (int i = 0; i < 10; ++i) {
      cudaEventRecord(start);
      const cublasStatus_t st = gemm();
      cudaEventRecord(stop);
      cudaEventSynchronize(stop);
      if (st != CUBLAS_STATUS_SUCCESS)
        break;
      float ms = 0.0f;
      cudaEventElapsedTime(&ms, start, stop);
      times.push_back(ms);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cublasDestroy(handle);
    if (times.empty())
      return 0.0;
    std::sort(times.begin(), times.end());
    return 2.0 * n * double(n) * n / (times[times.size() / 2] * 1e-3) / 1e12;
  }();
  return tflops;
#else
  return 0.0;
#endif
}

/// Sets `GB/s` (bytes moved per launch over the mean launch time), `limit_GB/s` (the copy
/// bandwidth measured in this process) and `pct_of_limit`.
inline void report_bandwidth(benchmark::State& state, double bytes, double seconds) {
  if (seconds <= 0.0)
    return;
  const double gbps = bytes / seconds / 1e9;
  const double limit = measured_copy_gbps();
  state.counters["GB/s"] = gbps;
  state.counters["bytes_per_launch"] = bytes;
  state.counters["limit_GB/s"] = limit;
  state.counters["pct_of_limit"] = limit > 0.0 ? 100.0 * gbps / limit : 0.0;
  state.counters["MB_moved"] = bytes / 1e6;
}

/// Sets `TFLOP/s`, `limit_TFLOP/s` (the cuBLAS bf16 GEMM rate measured in this process) and
/// `pct_of_limit`.
inline void report_flops(benchmark::State& state, double flops, double seconds) {
  if (seconds <= 0.0)
    return;
  const double tflops = flops / seconds / 1e12;
  const double limit = measured_gemm_tflops();
  state.counters["TFLOP/s"] = tflops;
  state.counters["flops_per_launch"] = flops;
  state.counters["limit_TFLOP/s"] = limit;
  state.counters["pct_of_limit"] = limit > 0.0 ? 100.0 * tflops / limit : 0.0;
}

inline void BM_Limits_MemcpyD2D(benchmark::State& state) {
  KVKIT_BENCH_REQUIRE_DEVICE(state);
  const std::size_t bytes = std::size_t{1} << 30;
  device_memory a(bytes), b(bytes);
  if (!a.ok() || !b.ok()) {
    state.SkipWithError("cudaMalloc failed");
    return;
  }
  KVKIT_BENCH_CUDA(state, cudaMemset(a.get(), 1, bytes));
  const double seconds = time_with_events(
      state, 1, [&] { cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice); });
  if (seconds > 0.0)
    state.counters["GB/s"] = 2.0 * static_cast<double>(bytes) / seconds / 1e9;
}

inline void BM_Limits_CublasGemmBf16(benchmark::State& state) {
  KVKIT_BENCH_REQUIRE_DEVICE(state);
#if defined(KVKIT_HAVE_CUBLAS)
  const double tflops = measured_gemm_tflops();
  if (tflops <= 0.0) {
    state.SkipWithError("cuBLAS GEMM failed");
    return;
  }
  constexpr int n = 8192;
  const std::size_t elems = std::size_t{n} * n;
  device_memory a(elems * 2), b(elems * 2), c(elems * 2);
  fill_random(a.get(), elems, 3);
  fill_random(b.get(), elems, 4);
  cublasHandle_t handle = nullptr;
  cublasCreate(&handle);
  const float alpha = 1.0f, beta = 0.0f;
  const double seconds = time_with_events(state, 1, [&] {
    cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a.get(), CUDA_R_16BF, n,
                 b.get(), CUDA_R_16BF, n, &beta, c.get(), CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                 CUBLAS_GEMM_DEFAULT);
  });
  cublasDestroy(handle);
  if (seconds > 0.0)
    state.counters["TFLOP/s"] = 2.0 * n * double(n) * n / seconds / 1e12;
#else
  state.SkipWithError("built without cuBLAS (CUDA::cublas not found)");
#endif
}

/// Registers the two limit benchmarks; call once per benchmark executable.
#define KVKIT_REGISTER_LIMIT_BENCHMARKS()             \
  BENCHMARK(::kvkit::bench::BM_Limits_MemcpyD2D)      \
      ->Name("BM_Limits_MemcpyD2D")                   \
      ->UseManualTime()                               \
      ->Unit(benchmark::kMillisecond);                \
  BENCHMARK(::kvkit::bench::BM_Limits_CublasGemmBf16) \
      ->Name("BM_Limits_CublasGemmBf16")              \
      ->UseManualTime()                               \
      ->Unit(benchmark::kMillisecond)

}  // namespace kvkit::bench
