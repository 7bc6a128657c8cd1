// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Block hashes computed as vLLM computes them (`--prefix-caching-hash-algo sha256_cbor`),
/// so that an index keyed on vLLM's block hashes (a KV-aware router) agrees with kvkit.
///
/// vLLM hashes block `i` of a request as
/// `sha256(cbor2.dumps((parent_hash, tuple(block_tokens), extra_keys), canonical=True))`, where
/// `parent_hash` is the previous block's 32-byte hash, or `NONE_HASH = sha256_cbor(seed)` for the
/// first block (seed `"vllm-none-hash"`, or `PYTHONHASHSEED` when the engine sets it), and
/// `extra_keys` is `None` or a tuple of tagged keys: `("lora", name, path)` on every block of a
/// LoRA request, `("mm", identifier, offset_in_block)` for each multimodal input overlapping the
/// block, `("cache_salt", salt)` on the first block of a salted request, and
/// `("prompt_embeds", sha256_of_block_embeddings)`. In KV events vLLM reports a block hash as the
/// low 64 bits of the digest read big-endian (vllm_external_hash()).
///
/// This header needs OpenSSL's libcrypto (SHA-256): link `kvkit::vllm_hashing`, which exists when
/// CMake finds OpenSSL (Debian package libssl-dev).
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/types.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kvkit {

/// @brief A vLLM block hash: the 32-byte SHA-256 digest (vLLM's `BlockHash`).
using vllm_block_hash = std::array<std::uint8_t, 32>;

/// @brief vLLM's seed of `NONE_HASH` for SHA-256 when `PYTHONHASHSEED` is not set.
inline constexpr std::string_view vllm_default_none_hash_seed = "vllm-none-hash";

/// @brief LoRA extra key `("lora", name, path)`: on every block of a LoRA request.
struct vllm_lora_key {
  std::string name;  ///< The adapter's name (`LoRARequest.lora_name`).
  std::string path;  ///< The adapter's path (`LoRARequest.lora_path`).
};
/// @brief Multimodal extra key `("mm", identifier, offset)`: one per input overlapping the block.
struct vllm_mm_key {
  std::string identifier;   ///< The input's identifier (its content hash).
  std::int64_t offset = 0;  ///< Where the input starts relative to the block's first token
                            ///< (negative when it started in an earlier block).
};
/// @brief Salt extra key `("cache_salt", salt)`: on the first block of a salted request.
struct vllm_cache_salt_key {
  std::string salt;  ///< The request's `cache_salt`.
};
/// @brief Prompt-embedding extra key `("prompt_embeds", digest)`.
struct vllm_prompt_embeds_key {
  vllm_block_hash digest{};  ///< SHA-256 of the block's prompt-embedding bytes.
};
/// @brief One extra key of a block, in vLLM's tagged form.
using vllm_extra_key =
    std::variant<vllm_lora_key, vllm_mm_key, vllm_cache_salt_key, vllm_prompt_embeds_key>;

/// @brief A multimodal input of a request (vLLM's `mm_feature`): its identifier and token span.
struct vllm_mm_feature {
  std::string identifier;    ///< Content identifier.
  std::uint32_t offset = 0;  ///< First placeholder token.
  std::uint32_t length = 0;  ///< Placeholder tokens.
};

/// @brief What of a request besides its tokens enters vLLM's block hashes.
struct vllm_request_keys {
  std::optional<vllm_lora_key> lora;         ///< LoRA adapter, if any.
  std::vector<vllm_mm_feature> mm_features;  ///< Multimodal inputs, sorted by offset and not
                                             ///< overlapping (as vLLM assumes).
  std::string cache_salt;                    ///< The request's `cache_salt` (empty: none).
};

/// @brief `NONE_HASH`: the parent hash of every first block, `sha256_cbor(seed)`.
/// @param seed vLLM's seed: @ref vllm_default_none_hash_seed, or the engine's `PYTHONHASHSEED`.
/// @return The digest.
[[nodiscard]] vllm_block_hash vllm_none_hash(std::string_view seed = vllm_default_none_hash_seed);

/// @brief vLLM's `hash_block_tokens(sha256_cbor, parent, tokens, extra_keys)`.
/// @param parent The parent block's hash; vllm_none_hash() for a first block.
/// @param tokens The block's tokens.
/// @param extra_keys The block's extra keys in vLLM's order (LoRA, multimodal, salt, prompt
/// embeddings); empty hashes `None`.
/// @return The block's hash.
[[nodiscard]] vllm_block_hash vllm_hash_block_tokens(
    const vllm_block_hash& parent, std::span<const token_id> tokens,
    std::span<const vllm_extra_key> extra_keys = {});

/// @brief vLLM's `generate_block_hash_extra_keys` for the block of tokens `[start, end)`.
/// @param keys The request's LoRA, multimodal inputs and salt.
/// @param start First token of the block.
/// @param end One past its last token.
/// @return The block's extra keys (empty: `None`).
[[nodiscard]] std::vector<vllm_extra_key> vllm_block_extra_keys(const vllm_request_keys& keys,
                                                                std::uint32_t start,
                                                                std::uint32_t end);

/// @brief vLLM's request block hasher on a fresh request: the hash of every full block of
/// @p tokens, chained from @p none_hash.
/// @param tokens The request's tokens (prompt, and generated tokens if any).
/// @param block_size Tokens per block (>= 1).
/// @param keys LoRA, multimodal inputs and salt.
/// @param none_hash The root: vllm_none_hash() of the engine's seed.
/// @return One hash per full block (a trailing partial block is not hashed), or
/// `errc::invalid_argument` when @p block_size is 0.
[[nodiscard]] result<std::vector<vllm_block_hash>> vllm_request_block_hashes(
    std::span<const token_id> tokens, std::uint32_t block_size, const vllm_request_keys& keys = {},
    const vllm_block_hash& none_hash = vllm_none_hash());

/// @brief The integer form of a block hash in vLLM's KV events
/// (`VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1`, vLLM's default): the digest's last 8 bytes read
/// big-endian.
/// @param h The digest.
/// @return The 64-bit hash.
[[nodiscard]] constexpr std::uint64_t vllm_external_hash(const vllm_block_hash& h) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = h.size() - 8; i < h.size(); ++i)
    v = (v << 8) | h[i];
  return v;
}

/// @brief Default configuration of kvkit::basic_vllm_hasher (vLLM's default `NONE_HASH` seed).
struct vllm_hash_config {
  /// @brief The seed `NONE_HASH` is derived from.
  static constexpr std::string_view none_hash_seed = vllm_default_none_hash_seed;
};

/// @brief Hasher policy for `basic_hash_matcher` that chains blocks as vLLM does, so that the
/// matcher's 64-bit keys are vLLM's integer block hashes.
///
/// In the shared namespace (tenant salt 0, no session, no extra keys) a chain starts at
/// `NONE_HASH` and every block hashes `(parent, tokens, None)`: the keys equal those of a vLLM
/// engine serving the same tokens without LoRA, multimodal inputs or salt. Any other namespace
/// salts its first block with vLLM's mechanism, the extra key
/// `("cache_salt", "kvkit-ns-<16 hex digits of the namespace key>")`, so tenants never share
/// keys. The namespace key is the one `prefix_cache` computes, `xxh3_hasher(seed).root(...)`;
/// this hasher recognises the shared namespace by the same seed.
///
/// A wide hasher: the matcher's cursor carries the 32-byte digest (a parent's 64-bit key cannot
/// chain a SHA-256), and the table is keyed by key(). The cache still verifies every candidate
/// against the stored tokens and the parent link.
/// @tparam Config Provides `static constexpr std::string_view none_hash_seed`
/// (@ref vllm_hash_config; use the engine's `PYTHONHASHSEED` when it sets one).
template <class Config = vllm_hash_config>
class basic_vllm_hasher {
 public:
  /// @brief Chain state: the digest, and for a namespace root whether its first block is salted.
  struct digest_type {
    vllm_block_hash hash{};           ///< The block's (or the root's) digest.
    std::uint64_t namespace_key = 0;  ///< For a root: the namespace key.
    bool root = false;                ///< True for a namespace root.
    bool salted = false;              ///< For a root: the first block carries a cache salt.
  };

  /// @brief Makes the hasher of a cache whose namespace keys are made with @p seed.
  /// @param seed The cache's seed (identifies the shared namespace's key).
  explicit basic_vllm_hasher(std::uint64_t seed)
      : none_hash_(vllm_none_hash(Config::none_hash_seed)),
        shared_namespace_(xxh3_hasher(seed).root(0, {})) {}

  /// @brief The root of a namespace's chains.
  /// @param namespace_key The key `prefix_cache` computed for the namespace.
  /// @return `NONE_HASH`, salted for every namespace but the shared one.
  [[nodiscard]] digest_type root_digest(std::uint64_t namespace_key) const noexcept {
    return digest_type{none_hash_, namespace_key, true, namespace_key != shared_namespace_};
  }

  /// @brief The digest of the block holding @p tokens under @p parent.
  /// @param parent The parent's state (a root or a block).
  /// @param tokens The block's tokens.
  /// @return The block's state.
  [[nodiscard]] digest_type chain(const digest_type& parent,
                                  std::span<const token_id> tokens) const {
    digest_type d;
    if (parent.root && parent.salted) {
      const vllm_extra_key salt[1] = {vllm_cache_salt_key{namespace_salt(parent.namespace_key)}};
      d.hash = vllm_hash_block_tokens(parent.hash, tokens, salt);
    } else {
      d.hash = vllm_hash_block_tokens(parent.hash, tokens);
    }
    return d;
  }

  /// @brief The 64-bit key of a state: vLLM's integer block hash.
  /// @param d A state.
  /// @return vllm_external_hash() of its digest.
  [[nodiscard]] static std::uint64_t key(const digest_type& d) noexcept {
    return vllm_external_hash(d.hash);
  }

  /// @brief The cache salt that isolates a namespace: `"kvkit-ns-"` and 16 hex digits.
  /// @param namespace_key The namespace key.
  /// @return The salt string.
  [[nodiscard]] static std::string namespace_salt(std::uint64_t namespace_key) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string s = "kvkit-ns-";
    for (int i = 60; i >= 0; i -= 4)
      s.push_back(hex[(namespace_key >> i) & 0xF]);
    return s;
  }

  /// @brief `NONE_HASH` of this configuration.
  /// @return The digest.
  [[nodiscard]] const vllm_block_hash& none_hash() const noexcept { return none_hash_; }

 private:
  vllm_block_hash none_hash_;
  std::uint64_t shared_namespace_;
};

/// @brief @ref basic_vllm_hasher with vLLM's default seed.
using vllm_hasher = basic_vllm_hasher<>;

/// @brief The hash matcher keyed by vLLM's block hashes (@ref vllm_hasher).
using vllm_hash_matcher = basic_hash_matcher<vllm_hasher>;

static_assert(prefix_matcher<vllm_hash_matcher>);

}  // namespace kvkit

#include <kvkit/detail/vllm_hashing_impl.hpp>
