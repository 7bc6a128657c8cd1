// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `paged_kv`: a plain-old-data view of one layer's paged K/V for a batch of sequences, the
/// form attention code (CPU reference, CUDA kernels) takes by value.
#pragma once

#include <kvkit/index_math.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/types.hpp>

#include <cstddef>
#include <cstdint>

namespace kvkit {

/// @brief One layer's paged K/V for a batch, with the page table in CSR form.
///
/// Sequence `b` owns pages `indices[indptr[b] .. indptr[b+1])` in order and holds `kv_len[b]`
/// tokens: token `t` lives in page `indices[indptr[b] + t / block_size]` at slot
/// `t % block_size` (token_slot_of(), page_offset() in `<kvkit/index_math.hpp>`). Every page is
/// `block_size` tokens of `num_kv_heads x head_dim` elements, in NHD or HND order (see @ref
/// kvkit::kv_order). CSR (rather than a padded table) keeps ragged batches compact and is what a
/// cache's block tables concatenate to. All pointers are borrowed.
/// @tparam T Element type (`fp16`, `bf16`, `float`; const-qualified for read-only views).
template <class T>
struct paged_kv {
  T* k = nullptr;  ///< Start of this layer's K pool (page 0, slot 0, head 0).
  T* v = nullptr;  ///< Start of this layer's V pool.
  const std::uint32_t* indptr = nullptr;   ///< `batch + 1` offsets into `indices`.
  const std::uint32_t* indices = nullptr;  ///< Page ids, sequence after sequence.
  const std::uint32_t* kv_len = nullptr;   ///< Tokens per sequence (`batch` entries).
  std::uint32_t batch = 0;                 ///< Number of sequences.
  std::uint32_t block_size = 16;           ///< Tokens per page.
  std::uint32_t num_kv_heads = 1;          ///< K/V heads.
  std::uint32_t head_dim = 128;            ///< Elements per head.
  kv_order order = kv_order::nhd;          ///< Order inside a page.

  /// @brief Element offset of (page, slot, head, 0) from the start of a pool.
  /// @param page Page id.
  /// @param slot Token position inside the page.
  /// @param head K/V head.
  /// @return The offset in elements.
  KVKIT_HOST_DEVICE std::size_t offset(std::uint32_t page, std::uint32_t slot,
                                       std::uint32_t head) const noexcept {
    return page_offset(page, slot, head, block_size, num_kv_heads, head_dim,
                       order == kv_order::hnd);
  }

  /// @brief Element offset of token @p t of sequence @p b, head @p h, from the start of a pool.
  /// @param b Sequence.
  /// @param t Token position in the sequence.
  /// @param h K/V head.
  /// @return The offset in elements.
  KVKIT_HOST_DEVICE std::size_t token_offset(std::uint32_t b, std::uint32_t t,
                                             std::uint32_t h) const noexcept {
    const token_slot s = token_slot_of(t, block_size);
    return offset(indices[indptr[b] + s.page_index], s.position, h);
  }

  /// @brief Pointer to the key vector of token @p t of sequence @p b, head @p h.
  /// @param b Sequence.
  /// @param t Token position in the sequence.
  /// @param h K/V head.
  /// @return `head_dim` contiguous elements.
  KVKIT_HOST_DEVICE T* key(std::uint32_t b, std::uint32_t t, std::uint32_t h) const noexcept {
    return k + token_offset(b, t, h);
  }
  /// @brief Pointer to the value vector of token @p t of sequence @p b, head @p h.
  /// @param b Sequence.
  /// @param t Token position in the sequence.
  /// @param h K/V head.
  /// @return `head_dim` contiguous elements.
  KVKIT_HOST_DEVICE T* value(std::uint32_t b, std::uint32_t t, std::uint32_t h) const noexcept {
    return v + token_offset(b, t, h);
  }
};

/// @brief A read-only view of layer @p layer of a host storage whose layout is @p layout.
/// @tparam T Element type.
/// @param base Start of the whole storage (all layers; see @ref kvkit::kv_layout).
/// @param layout The storage's layout.
/// @param layer The layer.
/// @return A view with pointers set and the page table left empty (fill `indptr`, `indices`,
/// `kv_len`, `batch`).
template <class T>
paged_kv<const T> make_paged_kv(const T* base, const kv_layout& layout, std::uint32_t layer) {
  paged_kv<const T> view;
  view.k = base + layout.offset(layer, 0, 0, 0, 0, 0);
  view.v = base + layout.offset(layer, 1, 0, 0, 0, 0);
  view.block_size = layout.block_size;
  view.num_kv_heads = layout.num_kv_heads;
  view.head_dim = layout.head_dim;
  view.order = layout.order;
  return view;
}

}  // namespace kvkit
