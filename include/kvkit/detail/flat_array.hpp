// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internal: a fixed-size array of trivially copyable values for the per-block state of the cache
// and its policies. Not a public header.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace kvkit::detail {

/// A fixed-size array of trivially copyable `T`, filled with one value at construction.
///
/// Per-block state is read at random block ids, so a large pool's arrays miss the TLB on most
/// accesses. An array of 2 MiB or more is therefore aligned to 2 MiB and, on Linux, marked for
/// transparent huge pages (`madvise(MADV_HUGEPAGE)`; a hint the kernel may ignore). Smaller arrays
/// are plain 64-byte-aligned allocations. Copying copies the elements; moving steals them.
template <class T>
class flat_array {
  static_assert(std::is_trivially_copyable_v<T>, "flat_array holds trivially copyable values");

 public:
  flat_array() noexcept = default;
  flat_array(std::size_t n, const T& value) : size_(n) {
    data_ = allocate(n);
    std::fill_n(data_, n, value);
  }
  flat_array(const flat_array& o) : size_(o.size_) {
    data_ = allocate(size_);
    if (size_ != 0)
      std::memcpy(static_cast<void*>(data_), o.data_, size_ * sizeof(T));
  }
  flat_array(flat_array&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  flat_array& operator=(flat_array o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  ~flat_array() { release(data_, size_); }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] T* data() noexcept { return data_; }
  [[nodiscard]] const T* data() const noexcept { return data_; }
  [[nodiscard]] T& operator[](std::size_t i) noexcept { return data_[i]; }
  [[nodiscard]] const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  [[nodiscard]] T* begin() noexcept { return data_; }
  [[nodiscard]] T* end() noexcept { return data_ + size_; }
  [[nodiscard]] const T* begin() const noexcept { return data_; }
  [[nodiscard]] const T* end() const noexcept { return data_ + size_; }
  /// Bytes of the elements.
  [[nodiscard]] std::size_t bytes() const noexcept { return size_ * sizeof(T); }

 private:
  static constexpr std::size_t huge_page = std::size_t{2} << 20;
  static constexpr std::size_t small_align = std::max<std::size_t>(64, alignof(T));

  static std::size_t padded(std::size_t bytes) noexcept {
    const std::size_t align = bytes >= huge_page ? huge_page : small_align;
    return (bytes + align - 1) / align * align;
  }
  static T* allocate(std::size_t n) {
    if (n == 0)
      return nullptr;
    const std::size_t bytes = n * sizeof(T);
    const std::size_t align = bytes >= huge_page ? huge_page : small_align;
    void* p = ::operator new (padded(bytes), std::align_val_t{align});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= huge_page)
      (void)::madvise(p, padded(bytes), MADV_HUGEPAGE);
#endif
    return static_cast<T*>(p);
  }
  static void release(T* p, std::size_t n) noexcept {
    if (p == nullptr)
      return;
    const std::size_t bytes = n * sizeof(T);
    ::operator delete (p, std::align_val_t{bytes >= huge_page ? huge_page : small_align});
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace kvkit::detail
