// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internals of the remote tiers: the byte format of one stored block (a "value") and its
// verification. Not a public header; the format is described in docs/tiers.md.
//
// Format version 1, all integers little-endian:
//   offset  size  field
//        0     4  magic "KVKT"
//        4     2  format version (1)
//        6     2  header bytes (80 + 4 * block_size: the fixed part and the tokens)
//        8     8  layout fingerprint (model name and K/V layout)
//       16     8  content key of the block
//       24     8  parent key
//       32     8  tenant salt
//       40     8  session id
//       48     8  digest of the extra keys (0 when none)
//       56     4  tokens in the block (block_size)
//       60     4  reserved (0)
//       64     8  payload bytes (the block's K/V, all layers)
//       72     8  checksum: XXH3-64 of the payload
//       80  4*bs  the block's tokens (int32)
//        -     -  payload: 2 * num_layers segments [layer][K|V] in the layout's memory order
#pragma once

#include <kvkit/layout.hpp>
#include <kvkit/tier.hpp>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace kvkit::detail {

static_assert(std::endian::native == std::endian::little,
              "kvkit's tier value format is written in host byte order: little-endian hosts only");

inline constexpr std::uint32_t tier_value_magic = 0x544B564BU;  // "KVKT" in memory order
inline constexpr std::uint16_t tier_value_version = 1;
inline constexpr std::size_t tier_value_fixed = 80;

struct tier_value_header {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t header_bytes;
  std::uint64_t fingerprint;
  std::uint64_t key;
  std::uint64_t parent;
  std::uint64_t salt;
  std::uint64_t session;
  std::uint64_t extra_digest;
  std::uint32_t tokens;
  std::uint32_t reserved;
  std::uint64_t payload_bytes;
  std::uint64_t checksum;
};
static_assert(sizeof(tier_value_header) == tier_value_fixed);

// Digest of a namespace's extra keys (0 when there are none).
inline std::uint64_t extra_keys_digest(std::span<const std::uint64_t> extra) noexcept {
  return extra.empty() ? 0 : XXH3_64bits(extra.data(), extra.size_bytes());
}

// Fingerprint of a model and a K/V layout (num_blocks excluded): values of different models or
// layouts never verify against each other.
inline std::uint64_t layout_fingerprint(const kv_layout& l, std::string_view model) noexcept {
  const std::uint64_t fields[] = {l.num_layers,
                                  l.num_kv_heads,
                                  l.head_dim,
                                  l.block_size,
                                  static_cast<std::uint64_t>(l.type),
                                  static_cast<std::uint64_t>(l.order),
                                  tier_value_version};
  return XXH3_64bits_withSeed(model.data(), model.size(), XXH3_64bits(fields, sizeof(fields)));
}

inline std::size_t tier_value_header_bytes(const kv_layout& l) noexcept {
  return tier_value_fixed + sizeof(token_id) * std::size_t{l.block_size};
}

inline std::size_t tier_value_bytes(const kv_layout& l) noexcept {
  return tier_value_header_bytes(l) + l.block_bytes_all_layers();
}

// Writes block `b` as a value into `out` (tier_value_bytes(l) bytes).
inline void encode_tier_value(std::byte* out, const kv_layout& l, std::uint64_t fingerprint,
                              const tier_block& b) noexcept {
  const std::size_t seg = kv_segment_bytes(l);
  std::byte* payload = out + tier_value_header_bytes(l);
  for (std::size_t g = 0; g < kv_segments(l); ++g)
    std::memcpy(payload + g * seg, b.kv.data + g * b.kv.stride, seg);
  tier_value_header h{};
  h.magic = tier_value_magic;
  h.version = tier_value_version;
  h.header_bytes = static_cast<std::uint16_t>(tier_value_header_bytes(l));
  h.fingerprint = fingerprint;
  h.key = b.key;
  h.parent = b.parent;
  h.salt = b.ns.tenant_salt;
  h.session = b.ns.session_id;
  h.extra_digest = extra_keys_digest(b.ns.extra_keys);
  h.tokens = l.block_size;
  h.reserved = 0;
  h.payload_bytes = l.block_bytes_all_layers();
  h.checksum = XXH3_64bits(payload, l.block_bytes_all_layers());
  std::memcpy(out, &h, sizeof(h));
  std::memcpy(out + tier_value_fixed, b.tokens.data(), b.tokens.size_bytes());
}

// What verification found. `ok` is the only outcome whose bytes may be used.
enum class value_check : std::uint8_t {
  ok,
  malformed,
  version_mismatch,
  layout_mismatch,
  checksum_mismatch,
  content_mismatch,
};

inline tier_error to_tier_error(value_check c) noexcept {
  switch (c) {
    case value_check::malformed:
      return tier_error::malformed;
    case value_check::version_mismatch:
      return tier_error::version_mismatch;
    case value_check::layout_mismatch:
      return tier_error::layout_mismatch;
    case value_check::checksum_mismatch:
      return tier_error::checksum_mismatch;
    case value_check::ok:
    case value_check::content_mismatch:
      break;
  }
  return tier_error::content_mismatch;
}

// What a value must be to serve a block of a chain.
struct value_expectation {
  const kv_layout* layout;
  std::uint64_t fingerprint;
  std::uint64_t key;
  std::uint64_t parent;
  const tier_namespace* ns;
  std::uint64_t extra_digest;
  std::span<const token_id> tokens;
};

// Checks a value. `head` holds at least the value's header and tokens (the whole value when
// `with_payload`); `total` is the value's full length as the store reports it.
inline value_check check_tier_value(std::span<const std::byte> head, std::size_t total,
                                    const value_expectation& e, bool with_payload) noexcept {
  const kv_layout& l = *e.layout;
  if (head.size() < tier_value_fixed)
    return value_check::malformed;
  tier_value_header h;
  std::memcpy(&h, head.data(), sizeof(h));
  if (h.magic != tier_value_magic)
    return value_check::malformed;
  if (h.version != tier_value_version)
    return value_check::version_mismatch;
  if (h.fingerprint != e.fingerprint)
    return value_check::layout_mismatch;
  if (h.header_bytes != tier_value_header_bytes(l) || h.tokens != l.block_size ||
      h.payload_bytes != l.block_bytes_all_layers() || total != tier_value_bytes(l) ||
      head.size() < tier_value_header_bytes(l))
    return value_check::malformed;  // truncated, or sizes that disagree with the fingerprint
  if (h.key != e.key || h.parent != e.parent || h.salt != e.ns->tenant_salt ||
      h.session != e.ns->session_id || h.extra_digest != e.extra_digest ||
      std::memcmp(head.data() + tier_value_fixed, e.tokens.data(), e.tokens.size_bytes()) != 0)
    return value_check::content_mismatch;
  if (with_payload) {
    if (head.size() != total)
      return value_check::malformed;
    if (XXH3_64bits(head.data() + tier_value_header_bytes(l), h.payload_bytes) != h.checksum)
      return value_check::checksum_mismatch;
  }
  return value_check::ok;
}

// Copies a verified value's payload into a block view.
inline void copy_tier_payload(std::span<const std::byte> value, const kv_layout& l,
                              const kv_block_view& dst) noexcept {
  const std::size_t seg = kv_segment_bytes(l);
  const std::byte* payload = value.data() + tier_value_header_bytes(l);
  for (std::size_t g = 0; g < kv_segments(l); ++g)
    std::memcpy(dst.data + g * dst.stride, payload + g * seg, seg);
}

}  // namespace kvkit::detail
