// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Tiers under a GPU pool: binds `device_storage<T>` to a `kvkit::tiered` composition.
///
/// Promotion copies the blocks a tier loaded into a host buffer to the pool with
/// `cudaMemcpy2DAsync` on the storage's stream (one copy per block: its `2 * num_layers` segments
/// as rows), ordered before the prefill the engine enqueues next on that stream; the host buffer
/// is reused only after `cudaStreamSynchronize`. Demotion and write-through copy a block to a host
/// buffer the same way and wait for it (the block may be reused as soon as the cache frees it).
/// A copy that fails is a miss (promotion stops there; demotion skips the block), never a failed
/// request. Needs the CUDA runtime (link `kvkit::cuda`).
#pragma once

#include <kvkit/device_storage.hpp>
#include <kvkit/tiered.hpp>

#include <cuda_runtime.h>

namespace kvkit {

/// @brief Binding of a device storage: copies through a host buffer on the storage's stream.
/// @tparam T Element type.
template <class T>
struct tier_storage_binding<device_storage<T>> {
  /// @brief The binding.
  /// @param s The storage.
  /// @return Its addresses and copy functions.
  static kv_binding make(device_storage<T>& s) {
    const kv_layout& l = s.layout();
    kv_binding b;
    b.base = reinterpret_cast<std::byte*>(s.data());
    b.step = kv_segment_bytes(l);
    b.stride = std::size_t{l.num_blocks} * b.step;
    b.context = static_cast<void*>(s.stream());
    b.to_host = &to_host;
    b.to_pool = &to_pool;
    b.wait = &wait;
    return b;
  }

 private:
  static cudaStream_t stream_of(void* context) noexcept {
    return static_cast<cudaStream_t>(context);
  }
  static bool to_host(void* context, kv_block_cview src, std::byte* dst, const kv_layout& l) {
    const std::size_t seg = kv_segment_bytes(l);
    const cudaStream_t stream = stream_of(context);
    if (cudaMemcpy2DAsync(dst, seg, src.data, src.stride, seg, kv_segments(l),
                          cudaMemcpyDeviceToHost, stream) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    if (cudaStreamSynchronize(stream) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return true;
  }
  static bool to_pool(void* context, const std::byte* src, kv_block_view dst, const kv_layout& l) {
    const std::size_t seg = kv_segment_bytes(l);
    if (cudaMemcpy2DAsync(dst.data, dst.stride, src, seg, seg, kv_segments(l),
                          cudaMemcpyHostToDevice, stream_of(context)) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return true;
  }
  static void wait(void* context) { (void)cudaStreamSynchronize(stream_of(context)); }
};

}  // namespace kvkit
