// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Shape and memory order of paged KV storage.
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/index_math.hpp>
#include <kvkit/types.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace kvkit {

/// @brief Order of the dimensions inside one block of one layer's K (or V) pool.
enum class kv_order : std::uint8_t {
  nhd,  ///< `[block][token][head][dim]`: a token's heads are contiguous.
  hnd,  ///< `[block][head][token][dim]`: a head's tokens are contiguous.
};

/// @brief Name of a memory order ("NHD" or "HND").
/// @param o The order.
/// @return A static string.
constexpr std::string_view to_string(kv_order o) noexcept {
  return o == kv_order::nhd ? "NHD" : "HND";
}

/// @brief Describes paged KV storage: per layer one K pool and one V pool of `num_blocks`
/// blocks of `block_size` tokens, each token holding `num_kv_heads x head_dim` elements.
///
/// Memory is `[layer][K|V][block][...]`, where `...` is `[token][head][dim]` for NHD and
/// `[head][token][dim]` for HND.
struct kv_layout {
  std::uint32_t num_layers = 1;    ///< Transformer layers (>= 1).
  std::uint32_t num_kv_heads = 1;  ///< Key/value heads per layer (>= 1).
  std::uint32_t head_dim = 128;    ///< Elements per head (>= 1).
  std::uint32_t block_size = 16;   ///< Tokens per block (a power of two >= 1).
  std::uint32_t num_blocks = 0;    ///< Blocks in each pool (>= 1).
  dtype type = dtype::bf16;        ///< Element type of K and V.
  kv_order order = kv_order::nhd;  ///< Memory order inside a block.

  /// @brief Elements of one block of one layer's K (or V) pool.
  /// @return `block_size * num_kv_heads * head_dim`.
  [[nodiscard]] constexpr std::size_t block_elements() const noexcept {
    return std::size_t{block_size} * num_kv_heads * head_dim;
  }
  /// @brief Bytes of one block across all layers, K and V.
  /// @return `2 * num_layers * block_elements() * dtype_size(type)`.
  [[nodiscard]] constexpr std::size_t block_bytes_all_layers() const noexcept {
    return 2 * std::size_t{num_layers} * block_elements() * dtype_size(type);
  }
  /// @brief Total elements of the storage.
  /// @return `2 * num_layers * num_blocks * block_elements()`.
  [[nodiscard]] constexpr std::size_t total_elements() const noexcept {
    return 2 * std::size_t{num_layers} * num_blocks * block_elements();
  }
  /// @brief Total bytes of the storage.
  /// @return `total_elements() * dtype_size(type)`.
  [[nodiscard]] constexpr std::size_t total_bytes() const noexcept {
    return total_elements() * dtype_size(type);
  }

  /// @brief Element offset of one value from the start of the storage.
  /// @param layer Layer index.
  /// @param kv 0 for K, 1 for V.
  /// @param block Block index.
  /// @param token Token position inside the block.
  /// @param head KV head index.
  /// @param dim Element index inside the head.
  /// @return The offset in elements.
  [[nodiscard]] constexpr std::size_t offset(std::uint32_t layer, std::uint32_t kv, block_id block,
                                             std::uint32_t token, std::uint32_t head,
                                             std::uint32_t dim) const noexcept {
    const std::uint64_t pool = (std::uint64_t{layer} * 2 + kv) * num_blocks + block;
    return pool * block_elements() +
           in_page_offset(token, head, block_size, num_kv_heads, head_dim, order == kv_order::hnd) +
           dim;
  }

  /// @brief Checks every field against its accepted range.
  /// @return An ok status, or `errc::invalid_config` naming the field, its value and what is
  /// accepted.
  [[nodiscard]] status validate() const {
    auto bad = [](const char* field, std::uint64_t v, const char* accepted) {
      return status{error{errc::invalid_config, std::string("kvkit: kv_layout.") + field +
                                                    " must be " + accepted + ", got " +
                                                    std::to_string(v)}};
    };
    if (num_layers == 0)
      return bad("num_layers", num_layers, ">= 1");
    if (num_kv_heads == 0)
      return bad("num_kv_heads", num_kv_heads, ">= 1");
    if (head_dim == 0)
      return bad("head_dim", head_dim, ">= 1");
    if (block_size == 0 || !std::has_single_bit(block_size)) {
      return bad("block_size", block_size, "a power of two >= 1 (1, 2, 4, ..., 16, ...)");
    }
    if (num_blocks == 0)
      return bad("num_blocks", num_blocks, ">= 1");
    if (num_blocks > max_blocks) {
      return bad("num_blocks", num_blocks, "<= 2^31 (2147483648)");
    }
    if (static_cast<unsigned>(type) > static_cast<unsigned>(dtype::fp32)) {
      return bad("type", static_cast<unsigned>(type), "fp16, bf16 or fp32");
    }
    if (static_cast<unsigned>(order) > static_cast<unsigned>(kv_order::hnd)) {
      return bad("order", static_cast<unsigned>(order), "nhd or hnd");
    }
    // The whole storage, in bytes, must be addressable.
    std::size_t bytes = 2 * dtype_size(type);
    for (const std::uint64_t f :
         {std::uint64_t{num_layers}, std::uint64_t{num_blocks}, std::uint64_t{block_size},
          std::uint64_t{num_kv_heads}, std::uint64_t{head_dim}}) {
      if (bytes > SIZE_MAX / f) {
        return status{error{errc::invalid_config,
                            "kvkit: kv_layout is too large: 2 x num_layers x num_blocks x "
                            "block_size x num_kv_heads x head_dim x element size exceeds the "
                            "address space (" +
                                std::to_string(SIZE_MAX) + " bytes)"}};
      }
      bytes *= static_cast<std::size_t>(f);
    }
    return {};
  }

  /// @brief The largest accepted `num_blocks` (2^31).
  static constexpr std::uint32_t max_blocks = 0x80000000u;
};

}  // namespace kvkit
