// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief KV storage policies on the host: `host_storage<T>` and the bookkeeping-only `no_storage`.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/error.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/types.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string>

namespace kvkit {

/// @brief Paged K/V storage in host memory, one contiguous allocation in the order of
/// @ref kv_layout.
/// @tparam T Element type: `kvkit::fp16`, `kvkit::bf16` or `float`.
template <class T>
class host_storage {
 public:
  /// @brief The element type.
  using element_type = T;

  /// @brief Makes storage for @p layout, zero-filled.
  /// @param layout The shape; its `type` must equal `dtype_of<T>`.
  /// @return The storage, or `errc::invalid_config` / `errc::layout_mismatch` naming the problem.
  [[nodiscard]] static result<host_storage> create(const kv_layout& layout) {
    if (auto s = layout.validate(); !s.ok())
      return error{s.code(), s.message()};
    if (layout.type != dtype_of<T>) {
      return error{errc::layout_mismatch,
                   std::string("kvkit: host_storage<") + std::string(to_string(dtype_of<T>)) +
                       "> needs kv_layout.type = " + std::string(to_string(dtype_of<T>)) +
                       ", got " + std::string(to_string(layout.type))};
    }
    return host_storage(layout);
  }

  /// @brief The layout.
  /// @return The layout this storage was made with.
  [[nodiscard]] const kv_layout& layout() const noexcept { return layout_; }

  /// @brief Bytes of K/V memory held.
  /// @return `layout().total_bytes()`.
  [[nodiscard]] std::size_t bytes() const noexcept { return layout_.total_bytes(); }

  /// @brief One block of one layer's K (kv = 0) or V (kv = 1) pool.
  /// @param layer Layer index.
  /// @param kv 0 for K, 1 for V.
  /// @param block Block index.
  /// @return The block's elements, in the layout's order.
  [[nodiscard]] std::span<T> block(std::uint32_t layer, std::uint32_t kv, block_id block) noexcept {
    return {data_.get() + layout_.offset(layer, kv, block, 0, 0, 0), layout_.block_elements()};
  }
  /// @copydoc block
  [[nodiscard]] std::span<const T> block(std::uint32_t layer, std::uint32_t kv,
                                         block_id block) const noexcept {
    return {data_.get() + layout_.offset(layer, kv, block, 0, 0, 0), layout_.block_elements()};
  }

  /// @brief One element.
  /// @param layer Layer index.
  /// @param kv 0 for K, 1 for V.
  /// @param block Block index.
  /// @param token Position inside the block.
  /// @param head KV head.
  /// @param dim Element inside the head.
  /// @return A reference to the element.
  [[nodiscard]] T& at(std::uint32_t layer, std::uint32_t kv, block_id block, std::uint32_t token,
                      std::uint32_t head, std::uint32_t dim) noexcept {
    return data_[layout_.offset(layer, kv, block, token, head, dim)];
  }

  /// @brief Copies block @p src to block @p dst in every layer's K and V pool (copy on write).
  /// @param src Source block.
  /// @param dst Destination block (different from @p src).
  void copy_block(block_id src, block_id dst) noexcept {
    for (std::uint32_t l = 0; l < layout_.num_layers; ++l) {
      for (std::uint32_t kv = 0; kv < 2; ++kv) {
        auto s = block(l, kv, src);
        std::copy(s.begin(), s.end(), block(l, kv, dst).begin());
      }
    }
  }

  /// @brief All elements, in layout order.
  /// @return The whole storage.
  [[nodiscard]] std::span<T> data() noexcept { return {data_.get(), layout_.total_elements()}; }

 private:
  explicit host_storage(const kv_layout& layout)
      : layout_(layout), data_(std::make_unique<T[]>(layout.total_elements())) {}

  kv_layout layout_;
  std::unique_ptr<T[]> data_;
};

/// @brief A storage policy that holds no K/V bytes: for replays, simulations and benchmarks of
/// the control plane alone.
class no_storage {
 public:
  /// @brief Makes bookkeeping-only storage for @p layout.
  /// @param layout The shape (only `block_size` and `num_blocks` matter).
  /// @return The storage, or `errc::invalid_config` naming the field.
  [[nodiscard]] static result<no_storage> create(const kv_layout& layout) {
    if (auto s = layout.validate(); !s.ok())
      return error{s.code(), s.message()};
    no_storage st;
    st.layout_ = layout;
    return st;
  }
  /// @brief Makes bookkeeping-only storage for a pool of @p num_blocks blocks of @p block_size.
  /// @param block_size Tokens per block.
  /// @param num_blocks Blocks in the pool.
  /// @return The storage, or `errc::invalid_config` naming the field.
  [[nodiscard]] static result<no_storage> create(std::uint32_t block_size,
                                                 std::uint32_t num_blocks) {
    kv_layout l;
    l.block_size = block_size;
    l.num_blocks = num_blocks;
    return create(l);
  }
  /// @brief The layout.
  /// @return The layout this storage was made with.
  [[nodiscard]] const kv_layout& layout() const noexcept { return layout_; }
  /// @brief Bytes of K/V memory held.
  /// @return Always 0.
  [[nodiscard]] std::size_t bytes() const noexcept { return 0; }
  /// @brief Does nothing: there are no bytes to copy.
  void copy_block(block_id, block_id) noexcept {}

 private:
  no_storage() = default;
  kv_layout layout_{};
};

static_assert(kv_storage<host_storage<bf16>>);
static_assert(kv_storage<no_storage>);

}  // namespace kvkit
