// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Implementation of kvkit::lowest_index_allocator (included by <kvkit/allocator/lowest_index.hpp>).
#pragma once

#include <kvkit/allocator/lowest_index.hpp>
#include <kvkit/detail/assert.hpp>

#include <bit>
#include <cstdint>
#include <vector>

namespace kvkit {

inline lowest_index_allocator::lowest_index_allocator(std::uint32_t capacity)
    : capacity_(capacity), free_(capacity) {
  const std::uint32_t leaf_words = capacity <= 64 ? 1u : (capacity - 1) / 64 + 1;
  leaf_.resize(leaf_words);
  const std::uint32_t last_bits = capacity - (leaf_words - 1) * 64;  // 0..64
  last_mask_ = last_bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << last_bits) - 1;
  for (std::uint32_t w = 0; w < leaf_words; ++w)
    leaf_[w] = full_mask(w);
  std::uint32_t words = leaf_words;
  std::uint32_t total = 0;
  while (words > 1) {
    words = (words - 1) / 64 + 1;
    offset_[levels_++] = total;
    total += words;
  }
  free_summary_.assign(total, 0);
  used_summary_.assign(total, 0);
  for (std::uint32_t w = 0; w < leaf_words; ++w) {
    if (leaf_[w] != 0)
      set_up(free_summary_, w);
  }
}

inline std::uint64_t lowest_index_allocator::full_mask(std::uint32_t word) const noexcept {
  return word + 1 == leaf_.size() ? last_mask_ : ~std::uint64_t{0};
}

// The bit of leaf word `word` became set in the summary's sense: set it, and its parents' bits
// while the word they live in was empty.
inline void lowest_index_allocator::set_up(std::vector<std::uint64_t>& summary,
                                           std::uint32_t word) noexcept {
  for (std::uint32_t k = 0; k < levels_; ++k) {
    std::uint64_t& s = summary[offset_[k] + (word >> 6)];
    const bool was_empty = s == 0;
    s |= std::uint64_t{1} << (word & 63);
    if (!was_empty)
      return;
    word >>= 6;
  }
}

// The bit of leaf word `word` became clear in the summary's sense: clear it, and its parents'
// bits while the word they live in becomes empty.
inline void lowest_index_allocator::clear_up(std::vector<std::uint64_t>& summary,
                                             std::uint32_t word) noexcept {
  for (std::uint32_t k = 0; k < levels_; ++k) {
    std::uint64_t& s = summary[offset_[k] + (word >> 6)];
    s &= ~(std::uint64_t{1} << (word & 63));
    if (s != 0)
      return;
    word >>= 6;
  }
}

inline block_id lowest_index_allocator::allocate() noexcept {
  if (free_ == 0)
    return invalid_block;
  std::uint32_t w = 0;
  for (std::uint32_t k = levels_; k > 0; --k)
    w = (w << 6) | static_cast<std::uint32_t>(std::countr_zero(free_summary_[offset_[k - 1] + w]));
  std::uint64_t& word = leaf_[w];
  const bool was_full = word == full_mask(w);
  const auto bit = static_cast<std::uint32_t>(std::countr_zero(word));
  word &= word - 1;
  --free_;
  if (word == 0)
    clear_up(free_summary_, w);
  if (was_full)
    set_up(used_summary_, w);
  return (w << 6) | bit;
}

inline void lowest_index_allocator::deallocate(block_id b) noexcept {
  KVKIT_CHECK(b < capacity_, "lowest_index_allocator: block id out of range");
  const std::uint32_t w = b >> 6;
  const std::uint64_t mask = std::uint64_t{1} << (b & 63);
  std::uint64_t& word = leaf_[w];
  KVKIT_CHECK((word & mask) == 0, "lowest_index_allocator: block returned twice");
  const bool was_empty = word == 0;
  word |= mask;
  ++free_;
  if (was_empty)
    set_up(free_summary_, w);
  if (word == full_mask(w))
    clear_up(used_summary_, w);
}

inline std::uint32_t lowest_index_allocator::high_water_mark() const noexcept {
  if (free_ == capacity_)
    return 0;
  std::uint32_t w = 0;
  for (std::uint32_t k = levels_; k > 0; --k)
    w = (w << 6) |
        static_cast<std::uint32_t>(63 - std::countl_zero(used_summary_[offset_[k - 1] + w]));
  const std::uint64_t used = ~leaf_[w] & full_mask(w);
  return (w << 6) + static_cast<std::uint32_t>(64 - std::countl_zero(used));
}

inline bool lowest_index_allocator::is_free(block_id b) const noexcept {
  KVKIT_ASSERT(b < capacity_, "lowest_index_allocator: block id out of range");
  return ((leaf_[b >> 6] >> (b & 63)) & 1u) != 0;
}

}  // namespace kvkit
