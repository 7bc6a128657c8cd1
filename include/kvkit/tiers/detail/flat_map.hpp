// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internals of the tiers: an open-addressing map from 64-bit keys to 32-bit slot ids with a fixed
// number of buckets (linear probing, backward-shift deletion, no tombstones). Not a public header.
#pragma once

#include <kvkit/detail/assert.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvkit::detail {

class flat_u64_map {
 public:
  static constexpr std::uint32_t npos = 0xFFFFFFFFu;

  // Room for at least `max_entries` entries at a load factor of at most 1/2.
  explicit flat_u64_map(std::uint32_t max_entries)
      : mask_(std::bit_ceil(std::max<std::uint64_t>(2 * std::uint64_t{max_entries}, 8)) - 1),
        keys_(mask_ + 1, 0),
        values_(mask_ + 1, npos),
        max_entries_(max_entries) {}

  [[nodiscard]] std::uint32_t find(std::uint64_t key) const noexcept {
    for (std::size_t i = bucket(key);; i = (i + 1) & mask_) {
      if (values_[i] == npos)
        return npos;
      if (keys_[i] == key)
        return values_[i];
    }
  }

  // Inserts or replaces. Precondition: size() < max_entries when the key is new.
  void assign(std::uint64_t key, std::uint32_t value) noexcept {
    KVKIT_ASSERT(value != npos, "flat_u64_map::assign: npos is not a value");
    for (std::size_t i = bucket(key);; i = (i + 1) & mask_) {
      if (values_[i] == npos) {
        KVKIT_ASSERT(size_ < max_entries_, "flat_u64_map::assign: full");
        keys_[i] = key;
        values_[i] = value;
        ++size_;
        return;
      }
      if (keys_[i] == key) {
        values_[i] = value;
        return;
      }
    }
  }

  // Removes `key`; returns whether it was present.
  bool erase(std::uint64_t key) noexcept {
    std::size_t i = bucket(key);
    for (;; i = (i + 1) & mask_) {
      if (values_[i] == npos)
        return false;
      if (keys_[i] == key)
        break;
    }
    // Backward-shift: move later members of the probe run into the hole.
    std::size_t hole = i;
    for (std::size_t j = (hole + 1) & mask_; values_[j] != npos; j = (j + 1) & mask_) {
      const std::size_t home = bucket(keys_[j]);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        keys_[hole] = keys_[j];
        values_[hole] = values_[j];
        hole = j;
      }
    }
    values_[hole] = npos;
    --size_;
    return true;
  }

  void clear() noexcept {
    std::fill(values_.begin(), values_.end(), npos);
    size_ = 0;
  }

  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t bytes() const noexcept {
    return keys_.size() * sizeof(std::uint64_t) + values_.size() * sizeof(std::uint32_t);
  }

 private:
  [[nodiscard]] std::size_t bucket(std::uint64_t k) const noexcept {
    // Murmur3's finaliser: keys are hashes already, but namespace keys and parent keys of
    // different kinds share a table, and the mix makes clustering independent of their origin.
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return static_cast<std::size_t>(k) & mask_;
  }

  std::size_t mask_;
  std::vector<std::uint64_t> keys_;
  std::vector<std::uint32_t> values_;
  std::uint32_t size_ = 0;
  std::uint32_t max_entries_;
};

}  // namespace kvkit::detail
