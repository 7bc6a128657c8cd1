// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Implementation of <kvkit/vllm_hashing.hpp>: the CBOR preimage of each hash and SHA-256 from
// OpenSSL (which uses the CPU's SHA extensions where present). The digest is fetched once and
// each thread reuses one context: OpenSSL 3's one-shot SHA256() looks the algorithm up on every
// call, which costs more than hashing a block.
#pragma once

#include <kvkit/detail/cbor.hpp>

#include <type_traits>

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace kvkit {
namespace detail {

// One buffer per thread for the CBOR preimage: no allocation once it has grown.
inline std::vector<std::uint8_t>& vllm_preimage_buffer() {
  thread_local std::vector<std::uint8_t> buffer;
  return buffer;
}

struct vllm_sha256_context {
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  vllm_sha256_context() = default;
  vllm_sha256_context(const vllm_sha256_context&) = delete;
  vllm_sha256_context& operator=(const vllm_sha256_context&) = delete;
  ~vllm_sha256_context() {
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
  }
};

inline vllm_block_hash vllm_sha256(std::span<const std::uint8_t> bytes) {
  thread_local vllm_sha256_context c;
  vllm_block_hash out;
  unsigned int size = 0;
  if (c.md == nullptr || c.ctx == nullptr || EVP_DigestInit_ex2(c.ctx, c.md, nullptr) != 1 ||
      EVP_DigestUpdate(c.ctx, bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(c.ctx, out.data(), &size) != 1 || size != out.size()) {
    SHA256(bytes.data(), bytes.size(), out.data());  // the slow path gives the same digest
  }
  return out;
}

inline void vllm_encode_extra_key(cbor::writer& w, const vllm_extra_key& key) noexcept {
  std::visit(
      [&w](const auto& k) {
        using K = std::decay_t<decltype(k)>;
        if constexpr (std::is_same_v<K, vllm_lora_key>) {
          w.array(3);
          w.text("lora");
          w.text(k.name);
          w.text(k.path);
        } else if constexpr (std::is_same_v<K, vllm_mm_key>) {
          w.array(3);
          w.text("mm");
          w.text(k.identifier);
          w.sint(k.offset);
        } else if constexpr (std::is_same_v<K, vllm_cache_salt_key>) {
          w.array(2);
          w.text("cache_salt");
          w.text(k.salt);
        } else {
          w.array(2);
          w.text("prompt_embeds");
          w.bytes(k.digest);
        }
      },
      key);
}

// Bytes the CBOR of an extra key takes at most.
inline std::size_t vllm_extra_key_bound(const vllm_extra_key& key) noexcept {
  return std::visit(
      [](const auto& k) -> std::size_t {
        using K = std::decay_t<decltype(k)>;
        constexpr std::size_t h = cbor::max_head;
        if constexpr (std::is_same_v<K, vllm_lora_key>)
          return 4 * h + 4 + k.name.size() + k.path.size();
        else if constexpr (std::is_same_v<K, vllm_mm_key>)
          return 4 * h + 2 + k.identifier.size();
        else if constexpr (std::is_same_v<K, vllm_cache_salt_key>)
          return 3 * h + 10 + k.salt.size();
        else
          return 3 * h + 13 + k.digest.size();
      },
      key);
}

// The CBOR of (parent, tuple(tokens), extra_keys or None), as cbor2.dumps(canonical=True)
// writes it; replaces the contents of `out`.
inline void vllm_block_preimage(const vllm_block_hash& parent, std::span<const token_id> tokens,
                                std::span<const vllm_extra_key> extra_keys,
                                std::vector<std::uint8_t>& out) {
  std::size_t bound = 4 * cbor::max_head + parent.size() + cbor::max_head * tokens.size();
  for (const vllm_extra_key& k : extra_keys)
    bound += vllm_extra_key_bound(k);
  if (out.size() < bound)
    out.resize(bound);
  cbor::writer w(out.data());
  w.array(3);
  w.bytes(parent);
  w.array(tokens.size());
  for (const token_id t : tokens)
    w.sint(t);
  if (extra_keys.empty()) {
    w.null();
  } else {
    w.array(extra_keys.size());
    for (const vllm_extra_key& k : extra_keys)
      vllm_encode_extra_key(w, k);
  }
  out.resize(static_cast<std::size_t>(w.end() - out.data()));
}

}  // namespace detail

inline vllm_block_hash vllm_none_hash(std::string_view seed) {
  std::vector<std::uint8_t> buf(detail::cbor::max_head + seed.size());
  detail::cbor::writer w(buf.data());
  w.text(seed);
  buf.resize(static_cast<std::size_t>(w.end() - buf.data()));
  return detail::vllm_sha256(buf);
}

inline vllm_block_hash vllm_hash_block_tokens(const vllm_block_hash& parent,
                                              std::span<const token_id> tokens,
                                              std::span<const vllm_extra_key> extra_keys) {
  std::vector<std::uint8_t>& buf = detail::vllm_preimage_buffer();
  detail::vllm_block_preimage(parent, tokens, extra_keys, buf);
  return detail::vllm_sha256(buf);
}

inline std::vector<vllm_extra_key> vllm_block_extra_keys(const vllm_request_keys& keys,
                                                         std::uint32_t start, std::uint32_t end) {
  // Order as vLLM's generate_block_hash_extra_keys: LoRA, multimodal inputs, salt.
  std::vector<vllm_extra_key> out;
  if (keys.lora)
    out.emplace_back(*keys.lora);
  for (const vllm_mm_feature& f : keys.mm_features) {
    const std::uint64_t f_end = std::uint64_t{f.offset} + f.length;
    if (f.offset >= end)
      break;  // sorted by offset: no later input reaches this block
    if (f_end > start) {
      out.emplace_back(vllm_mm_key{
          f.identifier, static_cast<std::int64_t>(f.offset) - static_cast<std::int64_t>(start)});
    }
  }
  if (start == 0 && !keys.cache_salt.empty())
    out.emplace_back(vllm_cache_salt_key{keys.cache_salt});
  return out;
}

inline result<std::vector<vllm_block_hash>> vllm_request_block_hashes(
    std::span<const token_id> tokens, std::uint32_t block_size, const vllm_request_keys& keys,
    const vllm_block_hash& none_hash) {
  if (block_size == 0) {
    return error{errc::invalid_argument,
                 "kvkit: vllm_request_block_hashes: block_size must be >= 1, got 0"};
  }
  std::vector<vllm_block_hash> out;
  out.reserve(tokens.size() / block_size);
  vllm_block_hash parent = none_hash;
  for (std::size_t start = 0; start + block_size <= tokens.size(); start += block_size) {
    const auto s = static_cast<std::uint32_t>(start);
    const std::vector<vllm_extra_key> extra = vllm_block_extra_keys(keys, s, s + block_size);
    parent = vllm_hash_block_tokens(parent, tokens.subspan(start, block_size), extra);
    out.push_back(parent);
  }
  return out;
}

}  // namespace kvkit
