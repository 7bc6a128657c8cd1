// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Where a workload driver takes its decisions from: a seeded random generator (tests) or
/// the bytes of a fuzzer's input.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <random>

namespace kvkit::test {

/// A source of choices: `next(n)` returns a value in [0, n) (n >= 1); `exhausted()` says that
/// the source has nothing left to say (a driver stops there; `next` then returns 0).
template <class C>
concept choice_source = requires(C& c, std::uint64_t n) {
  { c.next(n) } -> std::same_as<std::uint64_t>;
  { c.exhausted() } -> std::convertible_to<bool>;
};

/// Choices from a seeded `std::mt19937_64`: `next(n)` is `rng() % n`, never exhausted.
class rng_choices {
 public:
  explicit rng_choices(std::uint64_t seed) : rng_(seed) {}
  std::uint64_t next(std::uint64_t n) { return rng_() % n; }
  [[nodiscard]] static constexpr bool exhausted() noexcept { return false; }

 private:
  std::mt19937_64 rng_;
};

/// Choices read from a byte string (a fuzzer's input): as few bytes as `n` needs (none for
/// n = 1, one up to 256, two up to 65536, ...), little-endian, reduced modulo `n`. Zero once the
/// bytes run out.
class byte_choices {
 public:
  byte_choices(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

  std::uint64_t next(std::uint64_t n) noexcept {
    if (n <= 1)
      return 0;
    std::uint64_t v = 0;
    int shift = 0;
    for (std::uint64_t range = n - 1; range != 0 && pos_ < size_; range >>= 8, shift += 8)
      v |= std::uint64_t{data_[pos_++]} << shift;
    return v % n;
  }
  [[nodiscard]] bool exhausted() const noexcept { return pos_ >= size_; }
  /// Bytes consumed so far.
  [[nodiscard]] std::size_t position() const noexcept { return pos_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

static_assert(choice_source<rng_choices>);
static_assert(choice_source<byte_choices>);

}  // namespace kvkit::test
