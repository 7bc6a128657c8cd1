// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The mini engine's CUDA backend: bf16 weights, cuBLAS GEMMs with fp32 accumulation and fp32
// outputs, an fp32 residual stream, and kvkit's append_kv / paged_prefill / paged_decode over the
// cache's device storage. The math follows cpu_backend.hpp step by step.
#include <kvkit/append_kv.hpp>
#include <kvkit/index_math.hpp>
#include <kvkit/kernel_registry.hpp>
#include <kvkit/paged_decode.hpp>
#include <kvkit/paged_prefill.hpp>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <mini_engine/cuda_backend.hpp>

namespace mini_engine {
namespace {

using bf16_t = __nv_bfloat16;

kvkit::error cuda_failure(const std::string& what, cudaError_t e) {
  return kvkit::error{kvkit::errc::device_error, "mini_engine: cuda_backend: " + what + ": " +
                                                     cudaGetErrorName(e) + " (" +
                                                     cudaGetErrorString(e) + ")"};
}

kvkit::error cublas_failure(const std::string& what, cublasStatus_t s) {
  return kvkit::error{kvkit::errc::device_error, "mini_engine: cuda_backend: " + what +
                                                     ": cuBLAS status " +
                                                     std::to_string(static_cast<int>(s))};
}

kvkit::status with_context(const std::string& what, const kvkit::status& s) {
  if (s.ok())
    return s;
  return kvkit::error{s.code(), "mini_engine: cuda_backend: " + what + ": " + s.message()};
}

// Device memory that only grows.
class device_buffer {
 public:
  device_buffer() = default;
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  device_buffer(device_buffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  ~device_buffer() {
    if (p_ != nullptr)
      cudaFree(p_);
  }
  kvkit::status reserve(std::size_t bytes, const char* what) {
    if (bytes <= size_)
      return {};
    if (p_ != nullptr)
      cudaFree(p_);
    p_ = nullptr;
    size_ = 0;
    if (cudaError_t e = cudaMalloc(&p_, bytes); e != cudaSuccess)
      return cuda_failure(
          std::string("cudaMalloc of ") + std::to_string(bytes) + " bytes for " + what, e);
    size_ = bytes;
    return {};
  }
  template <class T>
  T* as() const noexcept {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  std::size_t size_ = 0;
};

// Pinned host memory that only grows.
class pinned_buffer {
 public:
  pinned_buffer() = default;
  pinned_buffer(const pinned_buffer&) = delete;
  pinned_buffer& operator=(const pinned_buffer&) = delete;
  ~pinned_buffer() {
    if (p_ != nullptr)
      cudaFreeHost(p_);
  }
  kvkit::status reserve(std::size_t bytes) {
    if (bytes <= size_)
      return {};
    if (p_ != nullptr)
      cudaFreeHost(p_);
    p_ = nullptr;
    size_ = 0;
    if (cudaError_t e = cudaMallocHost(&p_, bytes); e != cudaSuccess)
      return cuda_failure("cudaMallocHost of " + std::to_string(bytes) + " bytes", e);
    size_ = bytes;
    return {};
  }
  unsigned char* data() const noexcept { return static_cast<unsigned char*>(p_); }

 private:
  void* p_ = nullptr;
  std::size_t size_ = 0;
};

// ---- kernels (one CTA per token row) ----------------------------------------------------------

__global__ void embed_kernel(const std::int32_t* tokens, const bf16_t* table, float* x,
                             std::uint32_t hidden, std::uint32_t vocab) {
  const std::uint32_t r = blockIdx.x;
  const std::size_t row = static_cast<std::uint32_t>(tokens[r]) % vocab;
  for (std::uint32_t i = threadIdx.x; i < hidden; i += blockDim.x)
    x[std::size_t{r} * hidden + i] = __bfloat162float(table[row * hidden + i]);
}

// out[r] = bf16(x[rows[r]] / rms(x[rows[r]]) * gain); rows == nullptr means row r.
__global__ void rmsnorm_kernel(const float* x, const std::uint32_t* rows, const float* gain,
                               bf16_t* out, std::uint32_t hidden, float eps) {
  __shared__ float partial[32];
  const std::uint32_t r = blockIdx.x;
  const float* xr = x + std::size_t{rows != nullptr ? rows[r] : r} * hidden;
  float ss = 0.0f;
  for (std::uint32_t i = threadIdx.x; i < hidden; i += blockDim.x)
    ss += xr[i] * xr[i];
  for (int off = 16; off > 0; off /= 2)
    ss += __shfl_xor_sync(0xffffffffu, ss, off);
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.0f;
    for (int off = 16; off > 0; off /= 2)
      v += __shfl_xor_sync(0xffffffffu, v, off);
    if (threadIdx.x == 0)
      partial[0] = v;
  }
  __syncthreads();
  const float inv = rsqrtf(partial[0] / float(hidden) + eps);
  for (std::uint32_t i = threadIdx.x; i < hidden; i += blockDim.x)
    out[std::size_t{r} * hidden + i] = __float2bfloat16(xr[i] * inv * gain[i]);
}

// Rotary embedding of an fp32 [n][heads][head_dim] row block (pairs 2i, 2i+1), written as bf16.
__global__ void rope_kernel(const float* in, bf16_t* out, const std::uint32_t* positions,
                            std::uint32_t heads, std::uint32_t head_dim, float theta) {
  const std::uint32_t r = blockIdx.x;
  const std::uint32_t half = head_dim / 2;
  const double pos = positions[r];
  for (std::uint32_t j = threadIdx.x; j < heads * half; j += blockDim.x) {
    const std::uint32_t h = j / half;
    const std::uint32_t i = j % half;
    const double freq = pow(double(theta), -2.0 * double(i) / double(head_dim));
    double s, c;
    sincos(pos * freq, &s, &c);
    const std::size_t base = (std::size_t{r} * heads + h) * head_dim + 2 * i;
    const float a = in[base], b = in[base + 1];
    out[base] = __float2bfloat16(a * float(c) - b * float(s));
    out[base + 1] = __float2bfloat16(a * float(s) + b * float(c));
  }
}

__global__ void to_bf16_kernel(const float* in, bf16_t* out, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x)
    out[i] = __float2bfloat16(in[i]);
}

__global__ void add_kernel(float* x, const float* t, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x)
    x[i] += t[i];
}

__global__ void swiglu_kernel(const float* gate, const float* up, bf16_t* out, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x) {
    const float g = gate[i];
    out[i] = __float2bfloat16(g / (1.0f + expf(-g)) * up[i]);
  }
}

// Random non-zero bf16 values in [-1, 1) for the rate measurements: a GEMM or an attention
// kernel over zeros can run faster than over real data.
__global__ void fill_random_bf16_kernel(bf16_t* p, std::size_t n, std::uint32_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2bfloat16(static_cast<float>(h >> 8) * (2.0f / 16777216.0f) - 1.0f);
  }
}

unsigned grid_for(std::size_t n) {
  return static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 65535));
}

std::vector<std::uint16_t> to_bf16_bits(const std::vector<float>& v) {
  std::vector<std::uint16_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    out[i] = kvkit::to_bf16(v[i]).bits;
  return out;
}

}  // namespace

struct cuda_backend::impl {
  model_config config;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  std::string device_name;
  // Weights.
  device_buffer embed, final_norm, lm_head;
  struct layer {
    device_buffer attn_norm, wq, wk, wv, wo, mlp_norm, w_gate, w_up, w_down;
  };
  std::vector<layer> layers;
  // Activations (grow-only).
  device_buffer x, t, h, qf, kf, vf, q, k, v, o, g, u, a, last_h, logits, workspace, batch;
  pinned_buffer staging, logits_host;

  ~impl() {
    if (blas != nullptr)
      cublasDestroy(blas);
  }

  kvkit::status upload(device_buffer& dst, const std::vector<float>& src, bool bf16,
                       const char* what) {
    if (bf16) {
      const auto bits = to_bf16_bits(src);
      if (auto s = dst.reserve(bits.size() * 2, what); !s)
        return s;
      if (cudaError_t e =
              cudaMemcpy(dst.as<void>(), bits.data(), bits.size() * 2, cudaMemcpyHostToDevice);
          e != cudaSuccess)
        return cuda_failure(std::string("upload of ") + what, e);
      return {};
    }
    if (auto s = dst.reserve(src.size() * 4, what); !s)
      return s;
    if (cudaError_t e =
            cudaMemcpy(dst.as<void>(), src.data(), src.size() * 4, cudaMemcpyHostToDevice);
        e != cudaSuccess)
      return cuda_failure(std::string("upload of ") + what, e);
    return {};
  }

  // Row-major y[rows][out] (fp32) = x[rows][in] (bf16) W[in][out] (bf16).
  kvkit::status gemm(const bf16_t* x_in, const device_buffer& w, float* y, std::uint32_t rows,
                     std::uint32_t in, std::uint32_t out, const char* what) {
    const float alpha = 1.0f, beta = 0.0f;
    const cublasStatus_t s =
        cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, int(out), int(rows), int(in), &alpha,
                     w.as<bf16_t>(), CUDA_R_16BF, int(out), x_in, CUDA_R_16BF, int(in), &beta, y,
                     CUDA_R_32F, int(out), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
      return cublas_failure(what, s);
    return {};
  }

  // Launches with <<<>>> report their configuration errors through cudaGetLastError();
  // forward() clears an error left pending by earlier, unrelated calls before its first launch.
  kvkit::status launched(const char* what) {
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess)
      return cuda_failure(what, e);
    return {};
  }
};

cuda_backend::cuda_backend(std::unique_ptr<impl> p) noexcept : p_(std::move(p)) {}
cuda_backend::cuda_backend(cuda_backend&&) noexcept = default;
cuda_backend& cuda_backend::operator=(cuda_backend&&) noexcept = default;
cuda_backend::~cuda_backend() = default;

const model_config& cuda_backend::config() const noexcept {
  return p_->config;
}

std::string cuda_backend::name() const {
  return "cuda (" + p_->device_name + "; cuBLAS bf16 GEMM + kvkit paged kernels)";
}

kvkit::result<cuda_backend> cuda_backend::create(const model_weights& weights,
                                                 cudaStream_t stream) {
  const model_config& c = weights.config;
  if (auto s = c.validate(); !s)
    return kvkit::error{s.code(), s.message()};
  if (auto found = kvkit::find_kernel_config(int(c.head_dim), kvkit::cuda_dtype::bf16); !found)
    return kvkit::error{kvkit::errc::invalid_config, "mini_engine: cuda_backend: " + found.error};
  int device = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess)
    return cuda_failure("no CUDA device", e);
  cudaDeviceProp prop{};
  if (cudaError_t e = cudaGetDeviceProperties(&prop, device); e != cudaSuccess)
    return cuda_failure("cudaGetDeviceProperties", e);
  auto p = std::make_unique<impl>();
  p->config = c;
  p->stream = stream;
  p->device_name = prop.name;
  if (cublasStatus_t s = cublasCreate(&p->blas); s != CUBLAS_STATUS_SUCCESS)
    return cublas_failure("cublasCreate", s);
  if (cublasStatus_t s = cublasSetStream(p->blas, stream); s != CUBLAS_STATUS_SUCCESS)
    return cublas_failure("cublasSetStream", s);
  struct item {
    device_buffer* dst;
    const std::vector<float>* src;
    bool bf16;
    const char* what;
  };
  std::vector<item> items = {{&p->embed, &weights.embed, true, "embed"},
                             {&p->final_norm, &weights.final_norm, false, "final_norm"},
                             {&p->lm_head, &weights.lm_head, true, "lm_head"}};
  p->layers.resize(c.num_layers);
  for (std::uint32_t i = 0; i < c.num_layers; ++i) {
    const layer_weights& l = weights.layers[i];
    impl::layer& d = p->layers[i];
    items.insert(items.end(), {{&d.attn_norm, &l.attn_norm, false, "attn_norm"},
                               {&d.wq, &l.wq, true, "wq"},
                               {&d.wk, &l.wk, true, "wk"},
                               {&d.wv, &l.wv, true, "wv"},
                               {&d.wo, &l.wo, true, "wo"},
                               {&d.mlp_norm, &l.mlp_norm, false, "mlp_norm"},
                               {&d.w_gate, &l.w_gate, true, "w_gate"},
                               {&d.w_up, &l.w_up, true, "w_up"},
                               {&d.w_down, &l.w_down, true, "w_down"}});
  }
  for (const item& it : items) {
    if (auto st = p->upload(*it.dst, *it.src, it.bf16, it.what); !st)
      return kvkit::error{st.code(), st.message()};
  }
  return cuda_backend(std::move(p));
}

kvkit::status cuda_backend::forward(const forward_batch& batch, storage_type& kv,
                                    std::span<float> logits) {
  impl& p = *p_;
  const model_config& c = p.config;
  const kvkit::kv_layout& layout = kv.layout();
  const std::uint32_t n = batch.num_tokens;
  const std::uint32_t nb = batch.batch;
  if (n == 0 || nb == 0)
    return {};
  // A copy on write the cache asked for while admitting or extending these sequences must have
  // been enqueued, or the blocks hold another prompt's K/V.
  if (auto s = kv.take_copy_error(); !s.ok())
    return with_context("copy on write", s);
  // The launch checks below read cudaGetLastError(): clear what an earlier, unrelated call left
  // pending (a sticky error comes back at the next call anyway), so that they report these
  // launches only.
  static_cast<void>(cudaGetLastError());
  if (logits.size() < std::size_t{nb} * c.vocab_size) {
    return kvkit::error{kvkit::errc::invalid_argument,
                        "mini_engine: cuda_backend: logits holds " + std::to_string(logits.size()) +
                            " floats; the batch needs " +
                            std::to_string(std::size_t{nb} * c.vocab_size)};
  }
  // --- the batch's arrays, packed into one pinned buffer and copied once ------------------------
  std::vector<std::int64_t> slots(n);
  std::vector<std::uint32_t> last_rows(nb);
  std::uint32_t max_kv_len = 0;
  for (std::uint32_t b = 0; b < nb; ++b) {
    for (std::uint32_t r = batch.qo_indptr[b]; r < batch.qo_indptr[b + 1]; ++r) {
      slots[r] = kvkit::token_slot_id(batch.kv_indices + batch.kv_indptr[b], batch.positions[r],
                                      layout.block_size);
    }
    last_rows[b] = batch.qo_indptr[b + 1] - 1;
    max_kv_len = std::max(max_kv_len, batch.kv_len[b]);
  }
  const std::uint32_t pages = batch.kv_indptr[nb];
  struct part {
    const void* src;
    std::size_t bytes;
    std::size_t offset = 0;
  };
  part parts[] = {{batch.tokens, n * sizeof(std::int32_t)},
                  {batch.positions, n * sizeof(std::uint32_t)},
                  {batch.qo_indptr, (nb + 1) * sizeof(std::uint32_t)},
                  {batch.kv_indptr, (nb + 1) * sizeof(std::uint32_t)},
                  {batch.kv_indices, pages * sizeof(std::uint32_t)},
                  {batch.kv_len, nb * sizeof(std::uint32_t)},
                  {slots.data(), n * sizeof(std::int64_t)},
                  {last_rows.data(), nb * sizeof(std::uint32_t)}};
  std::size_t total = 0;
  for (part& pt : parts) {
    pt.offset = total;
    total += (pt.bytes + 255) / 256 * 256;
  }
  if (auto s = p.staging.reserve(total); !s)
    return s;
  if (auto s = p.batch.reserve(total, "batch arrays"); !s)
    return s;
  for (const part& pt : parts)
    std::memcpy(p.staging.data() + pt.offset, pt.src, pt.bytes);
  if (cudaError_t e = cudaMemcpyAsync(p.batch.as<void>(), p.staging.data(), total,
                                      cudaMemcpyHostToDevice, p.stream);
      e != cudaSuccess)
    return cuda_failure("copy of the batch arrays", e);
  auto dev = [&](int i) {
    return p.batch.as<unsigned char>() + parts[i].offset;
  };
  const auto* d_tokens = reinterpret_cast<const std::int32_t*>(dev(0));
  const auto* d_positions = reinterpret_cast<const std::uint32_t*>(dev(1));
  const auto* d_qo_indptr = reinterpret_cast<const std::uint32_t*>(dev(2));
  const auto* d_kv_indptr = reinterpret_cast<const std::uint32_t*>(dev(3));
  const auto* d_kv_indices = reinterpret_cast<const std::uint32_t*>(dev(4));
  const auto* d_kv_len = reinterpret_cast<const std::uint32_t*>(dev(5));
  const auto* d_slots = reinterpret_cast<const std::int64_t*>(dev(6));
  const auto* d_last = reinterpret_cast<const std::uint32_t*>(dev(7));

  // --- activations ----------------------------------------------------------------------------
  const std::size_t H = c.hidden, QW = c.q_width(), KW = c.kv_width(), F = c.ffn;
  struct want {
    device_buffer* buf;
    std::size_t bytes;
    const char* what;
  };
  const want wants[] = {{&p.x, n * H * 4, "residual"},
                        {&p.t, n * std::max(H, F) * 4, "gemm output"},
                        {&p.h, n * std::max(H, F) * 2, "normed input"},
                        {&p.qf, n * QW * 4, "q"},
                        {&p.kf, n * KW * 4, "k"},
                        {&p.vf, n * KW * 4, "v"},
                        {&p.q, n * QW * 2, "q bf16"},
                        {&p.k, n * KW * 2, "k bf16"},
                        {&p.v, n * KW * 2, "v bf16"},
                        {&p.o, n * QW * 2, "attention output"},
                        {&p.g, n * F * 4, "gate"},
                        {&p.u, n * F * 4, "up"},
                        {&p.last_h, std::size_t{nb} * H * 2, "last rows"},
                        {&p.logits, std::size_t{nb} * c.vocab_size * 4, "logits"}};
  for (const want& w : wants) {
    if (auto st = w.buf->reserve(w.bytes, w.what); !st)
      return st;
  }
  if (auto st = p.logits_host.reserve(std::size_t{nb} * c.vocab_size * 4); !st)
    return st;

  const unsigned threads = 256;
  embed_kernel<<<n, threads, 0, p.stream>>>(d_tokens, p.embed.as<bf16_t>(), p.x.as<float>(),
                                            c.hidden, c.vocab_size);
  if (auto e = p.launched("embedding"); !e)
    return e;
  bf16_t* pool = reinterpret_cast<bf16_t*>(kv.data());
  for (std::uint32_t layer = 0; layer < c.num_layers; ++layer) {
    const impl::layer& l = p.layers[layer];
    rmsnorm_kernel<<<n, threads, 0, p.stream>>>(p.x.as<float>(), nullptr, l.attn_norm.as<float>(),
                                                p.h.as<bf16_t>(), c.hidden, c.norm_eps);
    if (auto e = p.launched("attention rmsnorm"); !e)
      return e;
    if (auto e = p.gemm(p.h.as<bf16_t>(), l.wq, p.qf.as<float>(), n, c.hidden, c.q_width(), "wq");
        !e)
      return e;
    if (auto e = p.gemm(p.h.as<bf16_t>(), l.wk, p.kf.as<float>(), n, c.hidden, c.kv_width(), "wk");
        !e)
      return e;
    if (auto e = p.gemm(p.h.as<bf16_t>(), l.wv, p.vf.as<float>(), n, c.hidden, c.kv_width(), "wv");
        !e)
      return e;
    rope_kernel<<<n, threads, 0, p.stream>>>(p.qf.as<float>(), p.q.as<bf16_t>(), d_positions,
                                             c.num_qo_heads, c.head_dim, c.rope_theta);
    rope_kernel<<<n, threads, 0, p.stream>>>(p.kf.as<float>(), p.k.as<bf16_t>(), d_positions,
                                             c.num_kv_heads, c.head_dim, c.rope_theta);
    to_bf16_kernel<<<grid_for(n * KW), threads, 0, p.stream>>>(p.vf.as<float>(), p.v.as<bf16_t>(),
                                                               n * KW);
    if (auto e = p.launched("rope"); !e)
      return e;

    bf16_t* k_pool = pool + layout.offset(layer, 0, 0, 0, 0, 0);
    bf16_t* v_pool = pool + layout.offset(layer, 1, 0, 0, 0, 0);
    kvkit::append_kv_args ap;
    ap.k_new = p.k.as<bf16_t>();
    ap.v_new = p.v.as<bf16_t>();
    ap.slot_mapping = d_slots;
    ap.k_cache = k_pool;
    ap.v_cache = v_pool;
    ap.num_tokens = n;
    ap.num_kv_heads = c.num_kv_heads;
    ap.head_dim = c.head_dim;
    ap.block_size = layout.block_size;
    ap.num_blocks = layout.num_blocks;
    ap.order = layout.order;
    ap.dtype = kvkit::cuda_dtype::bf16;
    if (auto e = with_context("append_kv", kvkit::run(ap, nullptr, p.stream)); !e)
      return e;

    kvkit::paged_kv<const void> view;
    view.k = k_pool;
    view.v = v_pool;
    view.indptr = d_kv_indptr;
    view.indices = d_kv_indices;
    view.kv_len = d_kv_len;
    view.batch = nb;
    view.block_size = layout.block_size;
    view.num_kv_heads = c.num_kv_heads;
    view.head_dim = c.head_dim;
    view.order = layout.order;
    if (batch.max_qo_len == 1) {
      kvkit::paged_decode_args da;
      da.q = p.q.as<bf16_t>();
      da.kv = view;
      da.o = p.o.as<bf16_t>();
      da.num_qo_heads = c.num_qo_heads;
      da.dtype = kvkit::cuda_dtype::bf16;
      da.max_kv_len = max_kv_len;
      if (auto e = with_context("paged_decode", kvkit::can_implement(da)); !e)
        return e;
      if (auto e = p.workspace.reserve(std::max<std::size_t>(kvkit::workspace_size(da), 256),
                                       "decode workspace");
          !e)
        return e;
      if (auto e = with_context("paged_decode", kvkit::run(da, p.workspace.as<void>(), p.stream));
          !e)
        return e;
    } else {
      kvkit::paged_prefill_args pa;
      pa.q = p.q.as<bf16_t>();
      pa.qo_indptr = d_qo_indptr;
      pa.kv = view;
      pa.o = p.o.as<bf16_t>();
      pa.num_qo_heads = c.num_qo_heads;
      pa.causal = true;
      pa.dtype = kvkit::cuda_dtype::bf16;
      pa.max_qo_len = batch.max_qo_len;
      if (auto e = with_context("paged_prefill", kvkit::run(pa, nullptr, p.stream)); !e)
        return e;
    }
    if (auto e = p.gemm(p.o.as<bf16_t>(), l.wo, p.t.as<float>(), n, c.q_width(), c.hidden, "wo");
        !e)
      return e;
    add_kernel<<<grid_for(n * H), threads, 0, p.stream>>>(p.x.as<float>(), p.t.as<float>(), n * H);
    rmsnorm_kernel<<<n, threads, 0, p.stream>>>(p.x.as<float>(), nullptr, l.mlp_norm.as<float>(),
                                                p.h.as<bf16_t>(), c.hidden, c.norm_eps);
    if (auto e = p.launched("mlp rmsnorm"); !e)
      return e;
    if (auto e = p.gemm(p.h.as<bf16_t>(), l.w_gate, p.g.as<float>(), n, c.hidden, c.ffn, "w_gate");
        !e)
      return e;
    if (auto e = p.gemm(p.h.as<bf16_t>(), l.w_up, p.u.as<float>(), n, c.hidden, c.ffn, "w_up"); !e)
      return e;
    swiglu_kernel<<<grid_for(n * F), threads, 0, p.stream>>>(p.g.as<float>(), p.u.as<float>(),
                                                             p.h.as<bf16_t>(), n * F);
    if (auto e = p.gemm(p.h.as<bf16_t>(), l.w_down, p.t.as<float>(), n, c.ffn, c.hidden, "w_down");
        !e)
      return e;
    add_kernel<<<grid_for(n * H), threads, 0, p.stream>>>(p.x.as<float>(), p.t.as<float>(), n * H);
    if (auto e = p.launched("mlp"); !e)
      return e;
  }
  rmsnorm_kernel<<<nb, threads, 0, p.stream>>>(p.x.as<float>(), d_last, p.final_norm.as<float>(),
                                               p.last_h.as<bf16_t>(), c.hidden, c.norm_eps);
  if (auto e = p.launched("final rmsnorm"); !e)
    return e;
  if (auto e = p.gemm(p.last_h.as<bf16_t>(), p.lm_head, p.logits.as<float>(), nb, c.hidden,
                      c.vocab_size, "lm_head");
      !e)
    return e;
  const std::size_t bytes = std::size_t{nb} * c.vocab_size * 4;
  if (cudaError_t e = cudaMemcpyAsync(p.logits_host.data(), p.logits.as<void>(), bytes,
                                      cudaMemcpyDeviceToHost, p.stream);
      e != cudaSuccess)
    return cuda_failure("copy of the logits", e);
  if (cudaError_t e = cudaStreamSynchronize(p.stream); e != cudaSuccess)
    return cuda_failure("forward pass", e);
  std::memcpy(logits.data(), p.logits_host.data(), bytes);
  return {};
}

kvkit::result<cost_rates> cuda_backend::measure_rates() {
  impl& p = *p_;
  const model_config& c = p.config;
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  auto elapsed = [&] {
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    return double(ms) / 1e3;
  };
  cost_rates r;
  // Dense: the MLP's gate projection over 2048 rows.
  const std::uint32_t rows = 2048;
  device_buffer x, y;
  for (auto [buf, bytes] : {std::pair{&x, std::size_t{rows} * c.hidden * 2},
                            std::pair{&y, std::size_t{rows} * c.ffn * 4}}) {
    if (auto st = buf->reserve(bytes, "rate measurement"); !st)
      return kvkit::error{st.code(), st.message()};
  }
  fill_random_bf16_kernel<<<grid_for(std::size_t{rows} * c.hidden), 256, 0, p.stream>>>(
      x.as<bf16_t>(), std::size_t{rows} * c.hidden, 1);
  const int reps = 20;
  for (int i = 0; i < 3; ++i)
    (void)p.gemm(x.as<bf16_t>(), p.layers[0].w_gate, y.as<float>(), rows, c.hidden, c.ffn, "rate");
  cudaEventRecord(start, p.stream);
  for (int i = 0; i < reps; ++i)
    (void)p.gemm(x.as<bf16_t>(), p.layers[0].w_gate, y.as<float>(), rows, c.hidden, c.ffn, "rate");
  cudaEventRecord(stop, p.stream);
  cudaEventSynchronize(stop);
  r.dense_macs_per_s = double(reps) * rows * c.hidden * c.ffn / elapsed();
  // Attention: paged prefill of 2048 queries over a 4096-token sequence in 16-token pages.
  const std::uint32_t kv_len = 4096, nq = 2048, bs = 16, npages = kvkit::pages_for(kv_len, bs);
  const std::size_t pool_elems = std::size_t{kv_len} * c.kv_width();
  device_buffer k, v, q, o, meta;
  for (auto [buf, bytes] : {std::pair{&k, pool_elems * 2}, std::pair{&v, pool_elems * 2},
                            std::pair{&q, std::size_t{nq} * c.q_width() * 2},
                            std::pair{&o, std::size_t{nq} * c.q_width() * 2},
                            std::pair{&meta, std::size_t{npages + 8} * 4}}) {
    if (auto st = buf->reserve(bytes, "rate measurement"); !st)
      return kvkit::error{st.code(), st.message()};
  }
  fill_random_bf16_kernel<<<grid_for(pool_elems), 256, 0, p.stream>>>(k.as<bf16_t>(), pool_elems,
                                                                      2);
  fill_random_bf16_kernel<<<grid_for(pool_elems), 256, 0, p.stream>>>(v.as<bf16_t>(), pool_elems,
                                                                      3);
  fill_random_bf16_kernel<<<grid_for(std::size_t{nq} * c.q_width()), 256, 0, p.stream>>>(
      q.as<bf16_t>(), std::size_t{nq} * c.q_width(), 4);
  std::vector<std::uint32_t> host(npages + 8);
  // [indices (npages)] [indptr 0, npages] [kv_len] [qo_indptr 0, nq]
  std::iota(host.begin(), host.begin() + npages, 0u);
  host[npages] = 0;
  host[npages + 1] = npages;
  host[npages + 2] = kv_len;
  host[npages + 3] = 0;
  host[npages + 4] = nq;
  cudaMemcpy(meta.as<void>(), host.data(), host.size() * 4, cudaMemcpyHostToDevice);
  const auto* m = meta.as<std::uint32_t>();
  kvkit::paged_prefill_args pa;
  pa.q = q.as<bf16_t>();
  pa.qo_indptr = m + npages + 3;
  pa.kv.k = k.as<bf16_t>();
  pa.kv.v = v.as<bf16_t>();
  pa.kv.indices = m;
  pa.kv.indptr = m + npages;
  pa.kv.kv_len = m + npages + 2;
  pa.kv.batch = 1;
  pa.kv.block_size = bs;
  pa.kv.num_kv_heads = c.num_kv_heads;
  pa.kv.head_dim = c.head_dim;
  pa.o = o.as<bf16_t>();
  pa.num_qo_heads = c.num_qo_heads;
  pa.causal = true;
  pa.dtype = kvkit::cuda_dtype::bf16;
  pa.max_qo_len = nq;
  if (auto e = kvkit::run(pa, nullptr, p.stream); !e)
    return kvkit::error{e.code(),
                        "mini_engine: cuda_backend: rate of paged_prefill: " + e.message()};
  cudaEventRecord(start, p.stream);
  for (int i = 0; i < reps; ++i)
    (void)kvkit::run(pa, nullptr, p.stream);
  cudaEventRecord(stop, p.stream);
  cudaEventSynchronize(stop);
  double keys = 0;
  for (std::uint32_t i = 0; i < nq; ++i)
    keys += kvkit::key_limit(kv_len, nq, i, true);
  r.attention_macs_per_s = double(reps) * keys * 2.0 * c.num_qo_heads * c.head_dim / elapsed();
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess)
    return cuda_failure("measuring rates", e);
  r.how = "cuBLAS bf16 GEMM " + std::to_string(rows) + "x" + std::to_string(c.hidden) + "x" +
          std::to_string(c.ffn) + "; kvkit paged_prefill 2048 queries over 4096 tokens";
  return r;
}

}  // namespace mini_engine
