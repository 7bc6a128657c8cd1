// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internals of the key-ordered eviction policies: a binary min-heap of block ids with a position
// array (O(log n) push, erase anywhere, pop) and the default clock of the time-based policies.
// Not a public header.
#pragma once

#include <kvkit/detail/assert.hpp>
#include <kvkit/types.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvkit::detail {

/// Nanoseconds since the epoch of std::chrono::steady_clock.
inline std::chrono::nanoseconds steady_now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
}

/// A binary min-heap of block ids in flat arrays sized at construction: heap_ holds the ids in
/// heap order and pos_[b] is b's index in heap_ (npos when b is not in the heap). The order is
/// given by the caller on every mutating call (`less(a, b)` on block ids), so the keys live in the
/// policy's own per-block arrays. No operation allocates.
class indexed_min_heap {
 public:
  explicit indexed_min_heap(std::uint32_t capacity) : heap_(capacity), pos_(capacity, npos) {}

  [[nodiscard]] bool contains(block_id b) const noexcept { return pos_[b] != npos; }
  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
  [[nodiscard]] block_id top() const noexcept { return size_ != 0 ? heap_[0] : invalid_block; }

  template <class Less>
  void push(block_id b, Less&& less) noexcept {
    KVKIT_ASSERT(!contains(b), "indexed_min_heap::push: block already in the heap");
    heap_[size_] = b;
    pos_[b] = size_;
    sift_up(size_++, less);
  }

  template <class Less>
  void erase(block_id b, Less&& less) noexcept {
    KVKIT_ASSERT(contains(b), "indexed_min_heap::erase: block not in the heap");
    const std::uint32_t i = pos_[b];
    pos_[b] = npos;
    --size_;
    if (i == size_)
      return;
    const block_id last = heap_[size_];
    heap_[i] = last;
    pos_[last] = i;
    if (!sift_up(i, less))
      sift_down(i, less);
  }

  /// Restores the order after b's key changed.
  template <class Less>
  void update(block_id b, Less&& less) noexcept {
    KVKIT_ASSERT(contains(b), "indexed_min_heap::update: block not in the heap");
    const std::uint32_t i = pos_[b];
    if (!sift_up(i, less))
      sift_down(i, less);
  }

  [[nodiscard]] std::size_t bytes() const noexcept {
    return (heap_.size() + pos_.size()) * sizeof(std::uint32_t);
  }

 private:
  static constexpr std::uint32_t npos = 0xFFFFFFFFu;

  template <class Less>
  bool sift_up(std::uint32_t i, Less& less) noexcept {
    const block_id b = heap_[i];
    const std::uint32_t start = i;
    while (i > 0) {
      const std::uint32_t parent = (i - 1) / 2;
      if (!less(b, heap_[parent]))
        break;
      heap_[i] = heap_[parent];
      pos_[heap_[i]] = i;
      i = parent;
    }
    heap_[i] = b;
    pos_[b] = i;
    return i != start;
  }

  template <class Less>
  void sift_down(std::uint32_t i, Less& less) noexcept {
    const block_id b = heap_[i];
    for (;;) {
      std::uint32_t child = 2 * i + 1;
      if (child >= size_)
        break;
      if (child + 1 < size_ && less(heap_[child + 1], heap_[child]))
        ++child;
      if (!less(heap_[child], b))
        break;
      heap_[i] = heap_[child];
      pos_[heap_[i]] = i;
      i = child;
    }
    heap_[i] = b;
    pos_[b] = i;
  }

  std::vector<block_id> heap_;
  std::vector<std::uint32_t> pos_;
  std::uint32_t size_ = 0;
};

}  // namespace kvkit::detail
