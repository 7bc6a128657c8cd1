// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `hash_matcher`: block-granular chained-hash prefix matching.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/detail/assert.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/matcher/detail/block_index.hpp>
#include <kvkit/types.hpp>

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace kvkit {

namespace detail {

// A wide hasher chains a digest wider than the 64-bit table key (e.g. a SHA-256 for vLLM-compatible
// hashes): the cursor carries the digest, the table is keyed by Hasher::key(digest).
template <class H>
concept wide_hasher = requires(const H& h, const typename H::digest_type& d,
                               std::span<const token_id> t, std::uint64_t ns_key) {
  { h.root_digest(ns_key) } -> std::same_as<typename H::digest_type>;
  { h.chain(d, t) } -> std::same_as<typename H::digest_type>;
  { H::key(d) } -> std::convertible_to<std::uint64_t>;
};

struct no_digest {};

template <class H>
struct hasher_digest {
  using type = no_digest;
};
template <wide_hasher H>
struct hasher_digest<H> {
  using type = typename H::digest_type;
};

}  // namespace detail

/// @brief Matches prompts block by block through a chained hash of (parent hash, block tokens),
/// rooted in a namespace key (cache seed, tenant salt, extra keys).
///
/// State: an open-addressing table of (32-bit fingerprint, block id) slots, two per block, linear
/// probing, deletion by backward shift, no tombstones; plus each block's fingerprint: 20 bytes per
/// block, no heap allocation after construction. A lookup compares fingerprints in the slots it
/// probes, so only a candidate whose fingerprint matches is handed to the cache's verifier (which
/// compares the block's stored tokens and parent link). Equal hashes of different blocks may
/// coexist: find() offers each to the verifier, so a collision costs a comparison, never a wrong
/// hit. prefetch() lets the cache overlap the lookups of a long prompt.
/// @tparam Hasher Provides `std::uint64_t chain(std::uint64_t parent, std::span<const token_id>)
/// const` and construction from a 64-bit seed; @ref xxh3_hasher by default. A wide hasher, whose
/// digest does not fit the 64-bit key (e.g. @ref vllm_hasher's SHA-256), provides instead
/// `digest_type`, `digest_type root_digest(std::uint64_t ns_key) const`,
/// `digest_type chain(const digest_type&, std::span<const token_id>) const` and
/// `static std::uint64_t key(const digest_type&)`; its cursors carry the digest.
template <class Hasher>
class basic_hash_matcher {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "hash";

  /// @brief With the default hasher, a block's cursor is the cache's content key of the block
  /// (see @ref kvkit::matcher_cursor_is_block_key).
  static constexpr bool cursor_is_block_key = std::is_same_v<Hasher, xxh3_hasher>;

  /// @brief A position in a chain: the hash of the chain up to and including a block.
  struct cursor {
    std::uint64_t hash = 0;  ///< Chained hash (the table key).
    /// The full digest, for a wide hasher (empty otherwise).
    [[no_unique_address]] typename detail::hasher_digest<Hasher>::type digest{};
  };

  /// @brief Makes an empty matcher for a pool of @p capacity blocks.
  /// @param capacity Blocks in the pool.
  /// @param seed Key of the hash (one random value per cache).
  basic_hash_matcher(std::uint32_t capacity, std::uint64_t seed)
      : hasher_(seed), index_(capacity) {}

  /// @brief The start of a chain in a namespace.
  /// @param ns_node The namespace's node id (unused: the key identifies the namespace).
  /// @param ns_key The namespace key.
  /// @return A cursor whose hash is @p ns_key (a wide hasher's cursor also carries its root
  /// digest).
  [[nodiscard]] cursor root(std::uint32_t ns_node, std::uint64_t ns_key) const
      noexcept(!detail::wide_hasher<Hasher>) {
    (void)ns_node;
    if constexpr (detail::wide_hasher<Hasher>) {
      return cursor{ns_key, hasher_.root_digest(ns_key)};
    } else {
      return cursor{ns_key};
    }
  }

  /// @brief The key of the block holding @p tokens under @p parent.
  /// @param parent The parent's cursor.
  /// @param tokens The block's tokens.
  /// @return The child's cursor.
  [[nodiscard]] cursor child(const cursor& parent, std::span<const token_id> tokens) const
      noexcept(!detail::wide_hasher<Hasher>) {
    if constexpr (detail::wide_hasher<Hasher>) {
      auto d = hasher_.chain(parent.digest, tokens);
      return cursor{static_cast<std::uint64_t>(Hasher::key(d)), std::move(d)};
    } else {
      return cursor{hasher_.chain(parent.hash, tokens)};
    }
  }

  /// @brief Finds a registered block with the key of @p c that @p verify accepts.
  /// @tparam Verify Callable `bool(block_id)`.
  /// @param c A child cursor from child().
  /// @param verify Confirms a candidate (parent link and tokens).
  /// @return The block, or `invalid_block`.
  template <class Verify>
  [[nodiscard]] block_id find(const cursor& c, Verify&& verify) const {
    return index_.find(c.hash, verify);
  }

  /// @brief The block a find() of @p c would offer the verifier first, unverified.
  /// @param c A child cursor from child().
  /// @return The block, or `invalid_block`.
  [[nodiscard]] block_id peek(const cursor& c) const noexcept { return index_.peek(c.hash); }

  /// @brief Starts loading the table slot a find() of @p c reads first.
  /// @param c A child cursor from child().
  void prefetch(const cursor& c) const noexcept { index_.prefetch(c.hash); }

  /// @brief Registers block @p b under the key of @p c.
  /// @param c A child cursor from child().
  /// @param b A block not registered yet.
  void insert(const cursor& c, block_id b) noexcept { index_.insert(c.hash, b); }

  /// @brief Forgets block @p b.
  /// @param b A registered block.
  void erase(block_id b) noexcept { index_.erase(b); }

  /// @brief Registered blocks.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return index_.size(); }

  /// @brief Bytes of bookkeeping.
  /// @return Fingerprints plus table.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept { return index_.metadata_bytes(); }

 private:
  Hasher hasher_;
  detail::block_index index_;
};

/// @brief The hash matcher with the default keyed xxHash3 hasher.
using hash_matcher = basic_hash_matcher<xxh3_hasher>;

static_assert(prefix_matcher<hash_matcher>);
static_assert(matcher_has_prefetch<hash_matcher>);
static_assert(matcher_has_peek<hash_matcher>);
static_assert(matcher_cursor_is_block_key<hash_matcher>);
static_assert(!matcher_has_bind<hash_matcher>);

}  // namespace kvkit
