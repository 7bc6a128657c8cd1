// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Internals of the hash and session matchers: an open-addressing multimap from 64-bit
/// keys to block ids. Not a public header.
#pragma once

#include <kvkit/detail/assert.hpp>
#include <kvkit/detail/flat_array.hpp>
#include <kvkit/types.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace kvkit::detail {

/// @brief Block ids by 64-bit key, for at most `capacity` blocks: a linear-probing table of
/// `2 * capacity` 8-byte slots (a 32-bit fingerprint of the key beside the block id), so at most
/// half full, deletion by backward shift (no tombstones), plus the fingerprint of each registered
/// block (to find its slot again on erase): 20 bytes per block, nothing allocated after
/// construction. A fingerprint's home slot is `fingerprint * slots >> 32` (no power-of-two
/// rounding of the table).
///
/// A lookup reads one slot per probe and compares fingerprints there, so it touches a block's own
/// state only for a candidate whose fingerprint matches; the caller's verifier then decides.
/// Several blocks may have equal keys (or fingerprints): find() offers each to the verifier.
class block_index {
 public:
  /// @brief An empty index for block ids below @p capacity.
  /// @param capacity Blocks in the pool.
  explicit block_index(std::uint32_t capacity)
      : fingerprint_(capacity, 0),
        table_(std::max<std::size_t>(2, std::size_t{capacity} * 2), slot{}),
        slots_(table_.size()) {}

  /// @brief The first block with key @p key that @p verify accepts, or `invalid_block`.
  /// @tparam Verify Callable `bool(block_id)`.
  /// @param key The key.
  /// @param verify Confirms a candidate.
  /// @return The block, or `invalid_block`.
  template <class Verify>
  [[nodiscard]] block_id find(std::uint64_t key, Verify&& verify) const {
    const std::uint32_t fp = fingerprint(key);
    for (std::size_t i = home(fp);; i = next(i)) {
      const slot s = table_[i];
      if (s.block == invalid_block)
        return invalid_block;
      if (s.fingerprint == fp && verify(s.block))
        return s.block;
    }
  }

  /// @brief The first block a find() of @p key would offer (its fingerprint matches the home run's
  /// first matching slot), without verifying it.
  /// @param key The key.
  /// @return The block, or `invalid_block`.
  [[nodiscard]] block_id peek(std::uint64_t key) const noexcept {
    const std::uint32_t fp = fingerprint(key);
    for (std::size_t i = home(fp);; i = next(i)) {
      const slot s = table_[i];
      if (s.block == invalid_block || s.fingerprint == fp)
        return s.block;
    }
  }

  /// @brief Starts loading the slot where a lookup of @p key begins.
  /// @param key The key.
  void prefetch(std::uint64_t key) const noexcept {
    __builtin_prefetch(&table_[home(fingerprint(key))]);
  }

  /// @brief Registers block @p b under @p key.
  /// @param key The key.
  /// @param b A block not registered yet.
  void insert(std::uint64_t key, block_id b) noexcept {
    KVKIT_ASSERT(size_ < fingerprint_.size(), "block_index::insert: more blocks than capacity");
    const std::uint32_t fp = fingerprint(key);
    fingerprint_[b] = fp;
    std::size_t i = home(fp);
    while (table_[i].block != invalid_block)
      i = next(i);
    table_[i] = slot{fp, b};
    ++size_;
  }

  /// @brief Forgets block @p b.
  /// @param b A registered block.
  void erase(block_id b) noexcept {
    std::size_t i = home(fingerprint_[b]);
    while (table_[i].block != b) {
      KVKIT_ASSERT(table_[i].block != invalid_block, "block_index::erase: block not registered");
      i = next(i);
    }
    // Backward-shift deletion: pull later entries of the probe run into the hole.
    std::size_t hole = i;
    for (std::size_t j = next(i); table_[j].block != invalid_block; j = next(j)) {
      // Move j into the hole if its home is not in the cyclic range (hole, j].
      if (distance(home(table_[j].fingerprint), j) >= distance(hole, j)) {
        table_[hole] = table_[j];
        hole = j;
      }
    }
    table_[hole] = slot{};
    --size_;
  }

  /// @brief Registered blocks.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }

  /// @brief Bytes of bookkeeping.
  /// @return Fingerprints plus table.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return fingerprint_.bytes() + table_.bytes();
  }

 private:
  struct slot {
    std::uint32_t fingerprint = 0;
    block_id block = invalid_block;
  };

  [[nodiscard]] static std::uint32_t fingerprint(std::uint64_t key) noexcept {
    return static_cast<std::uint32_t>(key ^ (key >> 32));
  }
  [[nodiscard]] std::size_t home(std::uint32_t fp) const noexcept {
    return static_cast<std::size_t>((std::uint64_t{fp} * slots_) >> 32);
  }
  [[nodiscard]] std::size_t next(std::size_t i) const noexcept {
    return i + 1 == slots_ ? 0 : i + 1;
  }
  /// Probe steps from slot @p from forward to slot @p to (cyclic).
  [[nodiscard]] std::size_t distance(std::size_t from, std::size_t to) const noexcept {
    return to >= from ? to - from : to + slots_ - from;
  }

  flat_array<std::uint32_t> fingerprint_;
  flat_array<slot> table_;
  std::size_t slots_;
  std::uint32_t size_ = 0;
};

}  // namespace kvkit::detail
