// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief `device_storage<T>`: paged K/V storage in GPU memory, a @ref kvkit::kv_storage policy.

#include <kvkit/concepts.hpp>
#include <kvkit/copy_blocks.hpp>
#include <kvkit/error.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/paged_kv.hpp>
#include <kvkit/types.hpp>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

namespace kvkit {

/// @brief Paged K/V storage in device memory: one `cudaMalloc` allocation in the order of
/// @ref kv_layout (`[layer][K|V][block][...]`), zero-filled at creation.
///
/// Block copies are enqueued on the stream the storage holds (set_stream()); nothing here
/// synchronises with the device except the destructor, whose `cudaFree` waits for work using
/// the memory. Use as the storage policy of a prefix cache:
/// `kvkit::prefix_cache<..., kvkit::device_storage<kvkit::bf16>>`.
/// @tparam T Host-side element type: `kvkit::fp16` or `kvkit::bf16` (kernels see `__half` /
/// `__nv_bfloat16`, which have the same bits).
template <class T>
class device_storage {
  static_assert(std::is_same_v<T, fp16> || std::is_same_v<T, bf16>,
                "kvkit::device_storage<T>: T must be kvkit::fp16 or kvkit::bf16");

 public:
  /// @brief The element type.
  using element_type = T;

  /// @brief Allocates zero-filled storage for @p layout on the current device.
  /// @param layout The shape; its `type` must equal `dtype_of<T>`.
  /// @param stream Stream on which copies (and the initial zero fill) are enqueued.
  /// @return The storage; `errc::invalid_config` / `errc::layout_mismatch` naming a bad layout
  ///         field; or `errc::device_error` when there is no CUDA device or `cudaMalloc`
  ///         fails (the message carries the CUDA error and the bytes requested).
  [[nodiscard]] static result<device_storage> create(const kv_layout& layout,
                                                     cudaStream_t stream = nullptr) {
    if (auto s = layout.validate(); !s.ok())
      return error{s.code(), s.message()};
    if (layout.type != dtype_of<T>) {
      return error{errc::layout_mismatch,
                   std::string("kvkit: device_storage<") + std::string(to_string(dtype_of<T>)) +
                       "> needs kv_layout.type = " + std::string(to_string(dtype_of<T>)) +
                       ", got " + std::string(to_string(layout.type))};
    }
    int devices = 0;
    if (const cudaError_t err = cudaGetDeviceCount(&devices); err != cudaSuccess || devices == 0) {
      cudaGetLastError();
      return error{errc::device_error,
                   std::string("kvkit: device_storage: no CUDA device (") +
                       (err != cudaSuccess ? cudaGetErrorString(err) : "0 devices") + ")"};
    }
    void* ptr = nullptr;
    const std::size_t bytes = layout.total_bytes();
    if (const cudaError_t err = cudaMalloc(&ptr, bytes); err != cudaSuccess) {
      cudaGetLastError();
      return error{errc::device_error, "kvkit: device_storage: cudaMalloc of " +
                                           std::to_string(bytes) +
                                           " bytes failed: " + cudaGetErrorString(err)};
    }
    if (const cudaError_t err = cudaMemsetAsync(ptr, 0, bytes, stream); err != cudaSuccess) {
      cudaFree(ptr);
      return error{errc::device_error, std::string("kvkit: device_storage: zero fill failed: ") +
                                           cudaGetErrorString(err)};
    }
    return device_storage(layout, static_cast<T*>(ptr), stream);
  }

  /// @brief Moves the allocation out of @p other, which is left empty.
  /// @param other The storage to move from.
  device_storage(device_storage&& other) noexcept
      : layout_(other.layout_),
        data_(std::exchange(other.data_, nullptr)),
        stream_(other.stream_),
        copy_code_(std::exchange(other.copy_code_, errc::ok)),
        copy_message_(std::exchange(other.copy_message_, std::string{})) {}

  /// @brief Frees this storage's memory and takes @p other's.
  /// @param other The storage to move from.
  /// @return `*this`.
  device_storage& operator=(device_storage&& other) noexcept {
    if (this != &other) {
      release();
      layout_ = other.layout_;
      data_ = std::exchange(other.data_, nullptr);
      stream_ = other.stream_;
      copy_code_ = std::exchange(other.copy_code_, errc::ok);
      copy_message_ = std::exchange(other.copy_message_, std::string{});
    }
    return *this;
  }

  device_storage(const device_storage&) = delete;
  device_storage& operator=(const device_storage&) = delete;

  /// @brief Frees the device memory (`cudaFree`; errors are ignored, never thrown).
  ~device_storage() { release(); }

  /// @brief The layout.
  /// @return The layout this storage was made with.
  [[nodiscard]] const kv_layout& layout() const noexcept { return layout_; }

  /// @brief Bytes of device memory held.
  /// @return `layout().total_bytes()`, or 0 after a move.
  [[nodiscard]] std::size_t bytes() const noexcept {
    return data_ != nullptr ? layout_.total_bytes() : 0;
  }

  /// @brief Start of the storage in device memory.
  /// @return The device pointer (null after a move).
  [[nodiscard]] T* data() const noexcept { return data_; }

  /// @brief One layer's K pool (kv = 0) or V pool (kv = 1).
  /// @param layer Layer index.
  /// @param kv 0 for K, 1 for V.
  /// @return Device pointer to block 0 of that pool.
  [[nodiscard]] T* pool(std::uint32_t layer, std::uint32_t kv) const noexcept {
    return data_ + layout_.offset(layer, kv, 0, 0, 0, 0);
  }

  /// @brief A paged view of one layer, for the kernels.
  /// @param layer Layer index.
  /// @return A view with pools, page size, heads, head dimension and order set; fill
  ///         `indptr`, `indices`, `kv_len` and `batch`.
  [[nodiscard]] paged_kv<const void> view(std::uint32_t layer) const noexcept {
    paged_kv<const void> v;
    v.k = pool(layer, 0);
    v.v = pool(layer, 1);
    v.block_size = layout_.block_size;
    v.num_kv_heads = layout_.num_kv_heads;
    v.head_dim = layout_.head_dim;
    v.order = layout_.order;
    return v;
  }

  /// @brief The stream on which copies are enqueued.
  /// @return The stream.
  [[nodiscard]] cudaStream_t stream() const noexcept { return stream_; }

  /// @brief Changes the stream on which later copies are enqueued.
  /// @param stream The stream.
  void set_stream(cudaStream_t stream) noexcept { stream_ = stream; }

  /// @brief Enqueues a copy of block @p src to block @p dst in every layer's K and V pool
  /// (copy on write) on stream(): one launch of the block-copy kernel with the pair as a kernel
  /// parameter; no size limit on the pool, no synchronisation.
  ///
  /// The cache calls this as part of admit() or append() and cannot take a status back, so a
  /// failure is kept rather than dropped: copy_error() turns non-ok, and take_copy_error()
  /// returns the first failure since it was last called. A caller that runs kernels over the
  /// storage checks it before using the blocks (the mini engine's CUDA backend does, every step).
  /// @param src Source block.
  /// @param dst Destination block (different from @p src).
  void copy_block(block_id src, block_id dst) noexcept {
    const block_copy pair{src, dst};
    if (status s = copy_blocks_inline(data_, layout_, &pair, 1, stream_);
        !s.ok() && copy_code_ == errc::ok) {
      copy_code_ = s.code();
      copy_message_ = "kvkit: device_storage::copy_block(";
      copy_message_ += std::to_string(src);
      copy_message_ += ", ";
      copy_message_ += std::to_string(dst);
      copy_message_ += "): ";
      copy_message_ += s.message();
    }
  }

  /// @brief The first copy_block() failure not yet taken.
  /// @return Ok when every copy_block() since the last take_copy_error() was enqueued.
  [[nodiscard]] status copy_error() const {
    return copy_code_ == errc::ok ? status{} : status{error{copy_code_, copy_message_}};
  }

  /// @brief Returns the first copy_block() failure and clears it.
  /// @return The failure (`errc::device_error` carrying the CUDA error, or the argument error),
  ///         or ok.
  [[nodiscard]] status take_copy_error() {
    status s = copy_error();
    copy_code_ = errc::ok;
    copy_message_.clear();
    return s;
  }

  /// @brief Enqueues many block copies on stream(), in launches of up to
  /// @ref max_inline_block_copies pairs that carry the pairs as kernel parameters (no device
  /// buffer, no host-to-device copy, no synchronisation).
  /// @param pairs Host-side pairs; destinations distinct, and no block both source and
  ///        destination.
  /// @return Ok, or the first error (a block id out of range, or a launch error).
  [[nodiscard]] status copy_blocks(std::span<const block_copy> pairs) {
    for (std::size_t i = 0; i < pairs.size(); i += max_inline_block_copies) {
      const std::size_t n = std::min<std::size_t>(max_inline_block_copies, pairs.size() - i);
      if (auto s = copy_blocks_inline(data_, layout_, pairs.data() + i,
                                      static_cast<std::uint32_t>(n), stream_);
          !s.ok()) {
        return s;
      }
    }
    return {};
  }

 private:
  device_storage(const kv_layout& layout, T* data, cudaStream_t stream) noexcept
      : layout_(layout), data_(data), stream_(stream) {}

  void release() noexcept {
    if (data_ != nullptr) {
      static_cast<void>(cudaFree(data_));
      data_ = nullptr;
    }
  }

  kv_layout layout_{};
  T* data_ = nullptr;
  cudaStream_t stream_ = nullptr;
  errc copy_code_ = errc::ok;  // first copy_block() failure not yet taken
  std::string copy_message_;
};

static_assert(kv_storage<device_storage<bf16>>);
static_assert(kv_storage<device_storage<fp16>>);

}  // namespace kvkit
