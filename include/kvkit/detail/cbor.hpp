// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A minimal CBOR encoder (RFC 8949) for the values vLLM hashes: unsigned and negative integers,
// byte strings, text strings, arrays and null, written in the core deterministic encoding of
// RFC 8949 section 4.2.1 (shortest argument, definite lengths), which is what Python's
// `cbor2.dumps(x, canonical=True)` writes for these types. Maps, floats and tags are not needed
// and not supported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace kvkit::detail::cbor {

/// Bytes a head (major type + argument) takes at most; an item takes at most this plus its
/// payload (string bytes).
inline constexpr std::size_t max_head = 9;

/// Writes CBOR through a raw pointer into a buffer the caller sized (see max_head).
class writer {
 public:
  explicit writer(std::uint8_t* out) noexcept : p_(out) {}

  /// One past the last byte written.
  [[nodiscard]] std::uint8_t* end() const noexcept { return p_; }

  void uint(std::uint64_t v) noexcept { head(0, v); }
  void sint(std::int64_t v) noexcept {
    if (v >= 0)
      head(0, static_cast<std::uint64_t>(v));
    else
      head(1, ~static_cast<std::uint64_t>(v));  // -1 - v
  }
  void bytes(std::span<const std::uint8_t> b) noexcept {
    head(2, b.size());
    copy(b.data(), b.size());
  }
  void text(std::string_view s) noexcept {
    head(3, s.size());
    copy(s.data(), s.size());
  }
  void array(std::size_t n) noexcept { head(4, n); }
  void null() noexcept { *p_++ = 0xf6; }

 private:
  void copy(const void* src, std::size_t n) noexcept {
    if (n != 0)
      std::memcpy(p_, src, n);
    p_ += n;
  }
  void head(std::uint8_t major, std::uint64_t v) noexcept {
    const auto m = static_cast<std::uint8_t>(major << 5);
    if (v < 24) {
      *p_++ = static_cast<std::uint8_t>(m | v);
      return;
    }
    int bytes = 8;
    std::uint8_t info = 27;
    if (v <= 0xFFu) {
      bytes = 1;
      info = 24;
    } else if (v <= 0xFFFFu) {
      bytes = 2;
      info = 25;
    } else if (v <= 0xFFFFFFFFu) {
      bytes = 4;
      info = 26;
    }
    *p_++ = static_cast<std::uint8_t>(m | info);
    for (int i = bytes - 1; i >= 0; --i)
      *p_++ = static_cast<std::uint8_t>(v >> (8 * i));
  }

  std::uint8_t* p_;
};

}  // namespace kvkit::detail::cbor
