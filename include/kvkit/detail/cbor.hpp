// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A minimal CBOR encoder (RFC 8949) for the values vLLM hashes: unsigned and negative integers,
// byte strings, text strings, arrays and null, written in the core deterministic encoding of
// RFC 8949 section 4.2.1 (shortest argument, definite lengths), which is what Python's
// `cbor2.dumps(x, canonical=True)` writes for these types. Maps, floats and tags are not needed
// and not supported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace kvkit::detail::cbor {

/// Appends CBOR bytes to a caller-owned buffer (std::vector<std::uint8_t> or similar).
template <class Buffer>
class writer {
 public:
  explicit writer(Buffer& out) noexcept : out_(out) {}

  void uint(std::uint64_t v) { head(0, v); }
  void sint(std::int64_t v) {
    if (v >= 0)
      head(0, static_cast<std::uint64_t>(v));
    else
      head(1, ~static_cast<std::uint64_t>(v));  // -1 - v
  }
  void bytes(std::span<const std::uint8_t> b) {
    head(2, b.size());
    out_.insert(out_.end(), b.begin(), b.end());
  }
  void text(std::string_view s) {
    head(3, s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void array(std::size_t n) { head(4, n); }
  void null() { out_.push_back(std::uint8_t{0xf6}); }

 private:
  void head(std::uint8_t major, std::uint64_t v) {
    const auto m = static_cast<std::uint8_t>(major << 5);
    if (v < 24) {
      out_.push_back(static_cast<std::uint8_t>(m | v));
    } else if (v <= 0xFFu) {
      out_.push_back(static_cast<std::uint8_t>(m | 24));
      out_.push_back(static_cast<std::uint8_t>(v));
    } else if (v <= 0xFFFFu) {
      out_.push_back(static_cast<std::uint8_t>(m | 25));
      big_endian(v, 2);
    } else if (v <= 0xFFFFFFFFu) {
      out_.push_back(static_cast<std::uint8_t>(m | 26));
      big_endian(v, 4);
    } else {
      out_.push_back(static_cast<std::uint8_t>(m | 27));
      big_endian(v, 8);
    }
  }
  void big_endian(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
      out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }

  Buffer& out_;
};

}  // namespace kvkit::detail::cbor
