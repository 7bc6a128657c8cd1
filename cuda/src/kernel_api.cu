// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Host API of kvkit's kernels: argument checks, split planning and dispatch to the entry points
// of the built configuration, through one generic can_implement / run path (kernel_op below
// holds what differs per kernel). Nothing here synchronises with the device.
#include <kvkit/append_kv.hpp>
#include <kvkit/copy_blocks.hpp>
#include <kvkit/detail/kernel_table.hpp>
#include <kvkit/detail/kv_ops_kernels.cuh>
#include <kvkit/detail/paged_decode_kernel.cuh>
#include <kvkit/index_math.hpp>
#include <kvkit/merge_states.hpp>
#include <kvkit/paged_decode.hpp>
#include <kvkit/paged_prefill.hpp>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace kvkit {
namespace {

status bad(const char* args, const char* field, const std::string& value, const char* accepted) {
  return error{errc::invalid_argument, std::string("kvkit: ") + args + "." + field + " = " + value +
                                           "; accepted: " + accepted};
}

status null_pointer(const char* args, const char* field) {
  return bad(args, field, "null", "a device pointer");
}

bool aligned16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

std::string pointer_text(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

status misaligned(const char* args, const char* field, const void* p) {
  return bad(args, field, pointer_text(p), "a 16-byte aligned device pointer");
}

status cuda_failure(const char* what, cudaError_t err) {
  return error{errc::device_error, std::string("kvkit: ") + what +
                                       " failed: " + cudaGetErrorName(err) + " (" +
                                       cudaGetErrorString(err) + ")"};
}

// The built configuration for (head_dim, dtype), or the registry's error listing the built ones.
status lookup(std::uint32_t head_dim, cuda_dtype dtype, const detail::kernel_entry_points** out) {
  if (static_cast<unsigned>(dtype) > static_cast<unsigned>(cuda_dtype::bf16)) {
    return error{errc::invalid_argument, "kvkit: dtype = " + std::to_string(unsigned(dtype)) +
                                             "; accepted: cuda_dtype::fp16, cuda_dtype::bf16"};
  }
  const kernel_config_lookup found = find_kernel_config(static_cast<int>(head_dim), dtype);
  if (!found)
    return error{errc::invalid_config, found.error};
  *out = detail::find_entry_points(*found.config);
  if (*out == nullptr) {
    return error{errc::invalid_config,
                 "kvkit: kernel table missing for " + to_string(*found.config)};
  }
  return {};
}

// Checks shared by the paged attention kernels.
status check_paged_kv(const char* args, const paged_kv<const void>& kv,
                      std::uint32_t num_qo_heads) {
  if (kv.batch > 65535u) {
    return bad(args, "kv.batch", std::to_string(kv.batch), "0 .. 65535");
  }
  if (kv.block_size == 0)
    return bad(args, "kv.block_size", "0", ">= 1 (any page size)");
  if (kv.num_kv_heads == 0)
    return bad(args, "kv.num_kv_heads", "0", ">= 1");
  if (num_qo_heads == 0 || num_qo_heads % kv.num_kv_heads != 0) {
    return bad(
        args, "num_qo_heads", std::to_string(num_qo_heads),
        ("a positive multiple of kv.num_kv_heads = " + std::to_string(kv.num_kv_heads)).c_str());
  }
  if (num_qo_heads > 65535u) {
    return bad(args, "num_qo_heads", std::to_string(num_qo_heads), "<= 65535");
  }
  if (kv.order != kv_order::nhd && kv.order != kv_order::hnd) {
    return bad(args, "kv.order", std::to_string(unsigned(kv.order)),
               "kv_order::nhd, kv_order::hnd");
  }
  if (kv.batch == 0)
    return {};
  if (kv.k == nullptr)
    return null_pointer(args, "kv.k");
  if (kv.v == nullptr)
    return null_pointer(args, "kv.v");
  if (kv.indptr == nullptr)
    return null_pointer(args, "kv.indptr");
  if (kv.indices == nullptr)
    return null_pointer(args, "kv.indices");
  if (kv.kv_len == nullptr)
    return null_pointer(args, "kv.kv_len");
  if (!aligned16(kv.k))
    return misaligned(args, "kv.k", kv.k);
  if (!aligned16(kv.v))
    return misaligned(args, "kv.v", kv.v);
  return {};
}

status check_scale(const char* args, float scale) {
  if (!std::isfinite(scale) || scale < 0.0f) {
    return bad(args, "scale", std::to_string(scale),
               "0 (1/sqrt(head_dim)) or a positive finite value");
  }
  return {};
}

// ---- the multiprocessor count a plan is made for ----------------------------------------------

// Used when no device answers (host-only checks, machines without a GPU): an H100/H200 SXM.
constexpr int fallback_multiprocessors = 132;

// The device that holds `p`, or the current device when `p` is not device memory (or no device
// answers). A failed query leaves no error behind unless one was pending already.
int device_of(const void* p) {
  const bool pending = cudaPeekAtLastError() != cudaSuccess;
  cudaPointerAttributes attributes{};
  if (p != nullptr && cudaPointerGetAttributes(&attributes, p) == cudaSuccess &&
      (attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged)) {
    return attributes.device;
  }
  int device = -1;
  if (cudaGetDevice(&device) != cudaSuccess)
    device = -1;
  if (!pending)
    static_cast<void>(cudaGetLastError());
  return device;
}

// Multiprocessors of `device`, queried once per device and cached (the query is not free, and a
// plan must not cost a driver call per launch).
int multiprocessor_count(int device) {
  static std::array<std::atomic<int>, 64> cache{};
  if (device < 0)
    return fallback_multiprocessors;
  if (device < static_cast<int>(cache.size())) {
    if (const int known = cache[static_cast<std::size_t>(device)].load(std::memory_order_relaxed);
        known > 0)
      return known;
  }
  const bool pending = cudaPeekAtLastError() != cudaSuccess;
  int sms = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      sms <= 0) {
    if (!pending)
      static_cast<void>(cudaGetLastError());
    return fallback_multiprocessors;
  }
  if (device < static_cast<int>(cache.size()))
    cache[static_cast<std::size_t>(device)].store(sms, std::memory_order_relaxed);
  return sms;
}

// ---- what differs per kernel ----------------------------------------------------------------
//
// kernel_op<Args> says how to find the configuration (key), what to check beyond it (check),
// how much workspace run() needs (workspace) and how to launch (launch). The generic
// can_implement_with / run_with below do the rest the same way for every kernel, looking the
// kernel table up once per call.
template <class Args>
struct kernel_op;

template <>
struct kernel_op<append_kv_args> {
  static constexpr bool per_config = true;
  static std::uint32_t head_dim(const append_kv_args& a) { return a.head_dim; }
  static cuda_dtype dtype(const append_kv_args& a) { return a.dtype; }
  static status check(const append_kv_args& a) {
    constexpr const char* n = "append_kv_args";
    if (a.num_kv_heads == 0)
      return bad(n, "num_kv_heads", "0", ">= 1");
    if (a.block_size == 0)
      return bad(n, "block_size", "0", ">= 1 (any page size)");
    if (a.order != kv_order::nhd && a.order != kv_order::hnd) {
      return bad(n, "order", std::to_string(unsigned(a.order)), "kv_order::nhd, kv_order::hnd");
    }
    if (a.num_tokens == 0)
      return {};
    if (a.num_blocks == 0)
      return bad(n, "num_blocks", "0", ">= 1 (pages in each pool)");
    if (a.k_new == nullptr)
      return null_pointer(n, "k_new");
    if (a.v_new == nullptr)
      return null_pointer(n, "v_new");
    if (a.slot_mapping == nullptr)
      return null_pointer(n, "slot_mapping");
    if (a.k_cache == nullptr)
      return null_pointer(n, "k_cache");
    if (a.v_cache == nullptr)
      return null_pointer(n, "v_cache");
    if (!aligned16(a.k_new))
      return misaligned(n, "k_new", a.k_new);
    if (!aligned16(a.v_new))
      return misaligned(n, "v_new", a.v_new);
    if (!aligned16(a.k_cache))
      return misaligned(n, "k_cache", a.k_cache);
    if (!aligned16(a.v_cache))
      return misaligned(n, "v_cache", a.v_cache);
    const std::uint64_t row = std::uint64_t{a.num_kv_heads} * a.head_dim;
    if (a.k_stride != 0 && (a.k_stride % 8 != 0 || a.k_stride < row)) {
      return bad(n, "k_stride", std::to_string(a.k_stride),
                 "0, or a multiple of 8 elements >= num_kv_heads * head_dim");
    }
    if (a.v_stride != 0 && (a.v_stride % 8 != 0 || a.v_stride < row)) {
      return bad(n, "v_stride", std::to_string(a.v_stride),
                 "0, or a multiple of 8 elements >= num_kv_heads * head_dim");
    }
    return {};
  }
  static std::size_t workspace(const append_kv_args&) { return 0; }
  static status launch(const detail::kernel_entry_points* e, const append_kv_args& a, void*,
                       cudaStream_t stream) {
    if (cudaError_t err = e->append_kv(a, stream); err != cudaSuccess)
      return cuda_failure("append_kv launch", err);
    return {};
  }
};

template <>
struct kernel_op<paged_decode_args> {
  static constexpr bool per_config = true;
  static std::uint32_t head_dim(const paged_decode_args& a) { return a.kv.head_dim; }
  static cuda_dtype dtype(const paged_decode_args& a) { return a.dtype; }
  static status check(const paged_decode_args& a) {
    constexpr const char* n = "paged_decode_args";
    if (auto s = check_paged_kv(n, a.kv, a.num_qo_heads); !s.ok())
      return s;
    if (auto s = check_scale(n, a.scale); !s.ok())
      return s;
    if (a.num_splits > 4096)
      return bad(n, "num_splits", std::to_string(a.num_splits), "0 (auto) .. 4096");
    if (a.kv.batch == 0)
      return {};
    if (a.q == nullptr)
      return null_pointer(n, "q");
    if (a.o == nullptr)
      return null_pointer(n, "o");
    if (!aligned16(a.q))
      return misaligned(n, "q", a.q);
    if (!aligned16(a.o))
      return misaligned(n, "o", a.o);
    return {};
  }
  static std::size_t workspace(const paged_decode_args& a) {
    return detail::decode_workspace(a, plan(a)).total;
  }
  static status launch(const detail::kernel_entry_points* e, const paged_decode_args& a,
                       void* workspace, cudaStream_t stream) {
    const paged_decode_plan p = plan(a);
    const std::size_t need = detail::decode_workspace(a, p).total;
    if (need > 0 && workspace == nullptr) {
      return bad(
          "run(paged_decode_args)", "workspace", "null",
          ("device memory of workspace_size(args) = " + std::to_string(need) + " bytes").c_str());
    }
    if (need > 0 && (reinterpret_cast<std::uintptr_t>(workspace) & 255u) != 0) {
      return bad("run(paged_decode_args)", "workspace", pointer_text(workspace),
                 "a 256-byte aligned device pointer");
    }
    if (cudaError_t err = e->paged_decode(a, p, workspace, stream); err != cudaSuccess)
      return cuda_failure("paged_decode launch", err);
    return {};
  }
};

template <>
struct kernel_op<paged_prefill_args> {
  static constexpr bool per_config = true;
  static std::uint32_t head_dim(const paged_prefill_args& a) { return a.kv.head_dim; }
  static cuda_dtype dtype(const paged_prefill_args& a) { return a.dtype; }
  static status check(const paged_prefill_args& a) {
    constexpr const char* n = "paged_prefill_args";
    if (auto s = check_paged_kv(n, a.kv, a.num_qo_heads); !s.ok())
      return s;
    if (auto s = check_scale(n, a.scale); !s.ok())
      return s;
    if (a.kv.batch == 0)
      return {};
    if (a.max_qo_len == 0) {
      return bad(n, "max_qo_len", "0", ">= 1 (a host-side bound of the queries per sequence)");
    }
    if (a.q == nullptr)
      return null_pointer(n, "q");
    if (a.o == nullptr)
      return null_pointer(n, "o");
    if (a.qo_indptr == nullptr)
      return null_pointer(n, "qo_indptr");
    if (!aligned16(a.q))
      return misaligned(n, "q", a.q);
    if (!aligned16(a.o))
      return misaligned(n, "o", a.o);
    return {};
  }
  static std::size_t workspace(const paged_prefill_args&) { return 0; }
  static status launch(const detail::kernel_entry_points* e, const paged_prefill_args& a, void*,
                       cudaStream_t stream) {
    if (cudaError_t err = e->paged_prefill(a, stream); err != cudaSuccess)
      return cuda_failure("paged_prefill launch", err);
    return {};
  }
};

template <>
struct kernel_op<merge_states_args> {
  static constexpr bool per_config = true;
  static std::uint32_t head_dim(const merge_states_args& a) { return a.head_dim; }
  static cuda_dtype dtype(const merge_states_args& a) { return a.dtype; }
  static status check(const merge_states_args& a) {
    constexpr const char* n = "merge_states_args";
    if (a.rows == 0)
      return {};
    if (a.o_a == nullptr)
      return null_pointer(n, "o_a");
    if (a.o_b == nullptr)
      return null_pointer(n, "o_b");
    if (a.lse_a == nullptr)
      return null_pointer(n, "lse_a");
    if (a.lse_b == nullptr)
      return null_pointer(n, "lse_b");
    if (a.o == nullptr)
      return null_pointer(n, "o");
    if (!aligned16(a.o_a))
      return misaligned(n, "o_a", a.o_a);
    if (!aligned16(a.o_b))
      return misaligned(n, "o_b", a.o_b);
    if (!aligned16(a.o))
      return misaligned(n, "o", a.o);
    return {};
  }
  static std::size_t workspace(const merge_states_args&) { return 0; }
  static status launch(const detail::kernel_entry_points* e, const merge_states_args& a, void*,
                       cudaStream_t stream) {
    if (cudaError_t err = e->merge_states(a, stream); err != cudaSuccess)
      return cuda_failure("merge_states launch", err);
    return {};
  }
};

// ---- copy_blocks: bytes, compiled once (no configuration to look up) ---------------------------

status check_copy(const void* base, const kv_layout& layout, const void* pairs,
                  std::uint32_t num_pairs, const char* pairs_field) {
  constexpr const char* n = "copy_blocks_args";
  if (auto s = layout.validate(); !s.ok())
    return error{s.code(), s.message()};
  if (num_pairs == 0)
    return {};
  if (base == nullptr)
    return null_pointer(n, "base");
  if (pairs == nullptr)
    return null_pointer(n, pairs_field);
  return {};
}

template <class V, bool Inline>
cudaError_t launch_copy_kernel(const detail::copy_params& p, const detail::inline_pairs& inl,
                               std::uint32_t num_pairs, cudaStream_t stream) {
  const std::uint64_t vecs = p.block_bytes * p.num_pools / sizeof(V);
  // Enough CTAs per pair to keep the copy wide, fewer when many pairs already fill the GPU.
  const std::uint64_t want = (vecs + 255) / 256;
  const std::uint64_t cap =
      std::max<std::uint64_t>(1, 2048 / std::min<std::uint32_t>(num_pairs, 2048));
  const dim3 grid(static_cast<unsigned>(
                      std::max<std::uint64_t>(1, std::min(want, std::max<std::uint64_t>(cap, 4)))),
                  std::min<std::uint32_t>(num_pairs, 65535u));
  return detail::launch_kernel(detail::copy_blocks_kernel<V, Inline>, grid, dim3(256), 0, stream, p,
                               inl);
}

template <bool Inline>
status launch_copy(void* base, const kv_layout& layout, const block_copy* pairs,
                   const detail::inline_pairs& inl, std::uint32_t num_pairs, cudaStream_t stream) {
  if (num_pairs == 0)
    return {};
  detail::copy_params p{};
  p.base = static_cast<unsigned char*>(base);
  p.block_bytes = layout.block_elements() * dtype_size(layout.type);
  p.pool_bytes = p.block_bytes * layout.num_blocks;
  p.num_pools = 2 * layout.num_layers;
  p.num_pairs = num_pairs;
  p.pairs = pairs;
  const std::uintptr_t addr = reinterpret_cast<std::uintptr_t>(base);
  const std::uint64_t grain = p.block_bytes | addr;  // every address is base + k * block_bytes
  cudaError_t err = cudaSuccess;
  if (grain % 16 == 0) {
    err = launch_copy_kernel<uint4, Inline>(p, inl, num_pairs, stream);
  } else if (grain % 8 == 0) {
    err = launch_copy_kernel<uint2, Inline>(p, inl, num_pairs, stream);
  } else if (grain % 4 == 0) {
    err = launch_copy_kernel<unsigned, Inline>(p, inl, num_pairs, stream);
  } else {
    err = launch_copy_kernel<unsigned short, Inline>(p, inl, num_pairs, stream);
  }
  if (err != cudaSuccess)
    return cuda_failure("copy_blocks launch", err);
  return {};
}

template <>
struct kernel_op<copy_blocks_args> {
  static constexpr bool per_config = false;
  static status check(const copy_blocks_args& a) {
    return check_copy(a.base, a.layout, a.pairs, a.num_pairs, "pairs");
  }
  static std::size_t workspace(const copy_blocks_args&) { return 0; }
  static status launch(const detail::kernel_entry_points*, const copy_blocks_args& a, void*,
                       cudaStream_t stream) {
    static const detail::inline_pairs none{};
    return launch_copy<false>(a.base, a.layout, a.pairs, none, a.num_pairs, stream);
  }
};

// ---- the generic path -----------------------------------------------------------------------

// The kernel table of the configuration `a` names (null for kernels without configurations).
template <class Args>
status table_for(const Args& a, const detail::kernel_entry_points** e) {
  if constexpr (kernel_op<Args>::per_config) {
    return lookup(kernel_op<Args>::head_dim(a), kernel_op<Args>::dtype(a), e);
  } else {
    static_cast<void>(a);
    *e = nullptr;
    return {};
  }
}

template <class Args>
status can_implement_with(const Args& a) {
  const detail::kernel_entry_points* e = nullptr;
  if (auto s = table_for(a, &e); !s.ok())
    return s;
  return kernel_op<Args>::check(a);
}

template <class Args>
status run_with(const Args& a, void* workspace, cudaStream_t stream) {
  const detail::kernel_entry_points* e = nullptr;  // looked up once per run
  if (auto s = table_for(a, &e); !s.ok())
    return s;
  if (auto s = kernel_op<Args>::check(a); !s.ok())
    return s;
  return kernel_op<Args>::launch(e, a, workspace, stream);
}

}  // namespace

// ---- the public functions: one line each ------------------------------------------------------

status can_implement(const append_kv_args& a) {
  return can_implement_with(a);
}
std::size_t workspace_size(const append_kv_args& a) noexcept {
  return kernel_op<append_kv_args>::workspace(a);
}
status run(const append_kv_args& a, void* workspace, cudaStream_t stream) {
  return run_with(a, workspace, stream);
}

status can_implement(const copy_blocks_args& a) {
  return can_implement_with(a);
}
std::size_t workspace_size(const copy_blocks_args& a) noexcept {
  return kernel_op<copy_blocks_args>::workspace(a);
}
status run(const copy_blocks_args& a, void* workspace, cudaStream_t stream) {
  return run_with(a, workspace, stream);
}

status copy_blocks_inline(void* base, const kv_layout& layout, const block_copy* pairs,
                          std::uint32_t num_pairs, cudaStream_t stream) {
  if (auto s = check_copy(base, layout, pairs, num_pairs, "pairs"); !s.ok())
    return s;
  if (num_pairs > max_inline_block_copies) {
    return bad("copy_blocks_inline", "num_pairs", std::to_string(num_pairs),
               ("<= max_inline_block_copies = " + std::to_string(max_inline_block_copies)).c_str());
  }
  for (std::uint32_t i = 0; i < num_pairs; ++i) {
    if (pairs[i].src >= layout.num_blocks || pairs[i].dst >= layout.num_blocks) {
      std::string field = "pairs[";
      field += std::to_string(i);
      field += ']';
      std::string value = "{";
      value += std::to_string(pairs[i].src);
      value += ", ";
      value += std::to_string(pairs[i].dst);
      value += '}';
      std::string accepted = "block ids < layout.num_blocks = ";
      accepted += std::to_string(layout.num_blocks);
      return bad("copy_blocks_inline", field.c_str(), value, accepted.c_str());
    }
  }
  detail::inline_pairs inl{};
  std::copy(pairs, pairs + num_pairs, inl.pairs);
  return launch_copy<true>(base, layout, nullptr, inl, num_pairs, stream);
}

status can_implement(const paged_decode_args& a) {
  return can_implement_with(a);
}

paged_decode_plan plan(const paged_decode_args& a) {
  using traits =
      detail::decode_traits<64>;  // tile and group limits are the same for every head_dim
  paged_decode_plan p;
  const std::uint32_t group = a.kv.num_kv_heads ? gqa_group(a.num_qo_heads, a.kv.num_kv_heads) : 1;
  p.head_chunks = head_chunks(group, traits::max_group);
  constexpr std::uint32_t min_split_tokens = 256;  // below this the merge costs more than it gives
  std::uint32_t splits = a.num_splits;
  if (splits == 0) {
    splits = 1;
    if (a.max_kv_len > min_split_tokens) {
      const std::uint64_t ctas = std::uint64_t{a.kv.batch} * a.kv.num_kv_heads * p.head_chunks;
      const std::uint64_t target =
          std::uint64_t{static_cast<unsigned>(multiprocessor_count(device_of(a.kv.k)))} * 4;
      if (ctas > 0 && ctas < target) {
        const std::uint64_t want = (target + ctas - 1) / ctas;
        const std::uint64_t most = (a.max_kv_len + min_split_tokens - 1) / min_split_tokens;
        splits = static_cast<std::uint32_t>(std::min<std::uint64_t>({want, most, 256}));
      }
    }
  }
  splits = std::max<std::uint32_t>(1, splits);
  if (splits > 1) {
    const std::uint32_t bound = std::max<std::uint32_t>(a.max_kv_len, 1);
    // Tokens per split, a multiple of the largest tile so that no tile straddles two splits.
    p.split_tokens = split_tokens_for(bound, splits, traits::tile);
    p.num_splits = a.num_splits != 0 ? splits  // an explicit request is kept as given
                                     : ceil_div(bound, p.split_tokens);
  } else {
    p.num_splits = 1;
    p.split_tokens = 0;
  }
  return p;
}

std::size_t workspace_size(const paged_decode_args& a) {
  return kernel_op<paged_decode_args>::workspace(a);
}
status run(const paged_decode_args& a, void* workspace, cudaStream_t stream) {
  return run_with(a, workspace, stream);
}

status can_implement(const paged_prefill_args& a) {
  return can_implement_with(a);
}
std::size_t workspace_size(const paged_prefill_args& a) noexcept {
  return kernel_op<paged_prefill_args>::workspace(a);
}
status run(const paged_prefill_args& a, void* workspace, cudaStream_t stream) {
  return run_with(a, workspace, stream);
}

status can_implement(const merge_states_args& a) {
  return can_implement_with(a);
}
std::size_t workspace_size(const merge_states_args& a) noexcept {
  return kernel_op<merge_states_args>::workspace(a);
}
status run(const merge_states_args& a, void* workspace, cudaStream_t stream) {
  return run_with(a, workspace, stream);
}

}  // namespace kvkit
