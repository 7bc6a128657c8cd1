// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `session_matcher`: per-session conversation state, with partial-block reuse from the
/// cache's own block tree.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/matcher/detail/block_index.hpp>
#include <kvkit/types.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace kvkit {

/// @brief Matches a conversation's follow-up turn against the session's earlier turns.
///
/// Meant for requests that carry `request_options::session_id`: the cache keys every namespace by
/// the session, so sessions never share blocks unless they pass the same id, and a session is
/// closed with `prefix_cache::invalidate_session` (expiry comes from an eviction policy with
/// `pop_expired`, such as `ttl_eviction`). A turn whose prompt extends the previous prompt and
/// answer reuses all of it; a turn that diverges reuses everything up to the first differing
/// token, copying the block it diverges in (copy on write).
///
/// A block is found by its parent node and its tokens: an index keyed by a hash of both (an
/// open-addressing table of fingerprints and block ids, 20 bytes per block), so a node with
/// thousands of children (the root of a namespace that many requests share) costs one probe, not
/// a scan. The hash is a locator only: the cache verifies each candidate's parent link and tokens.
/// Partial reuse walks the node's children in the cache's block tree (handed to find_partial());
/// the matcher keeps no child lists of its own.
class session_matcher {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "session";

  /// @brief A position in a session's tree (a node id), or the key of a child of that node.
  struct cursor {
    std::uint32_t node = 0;  ///< Node id: a block, or a namespace node.
    std::uint64_t key = 0;   ///< Child cursors: hash of the parent node and the child's tokens.
  };

  /// @brief Makes an empty matcher for a pool of @p capacity blocks.
  /// @param capacity Blocks in the pool.
  /// @param seed Key of the index's hash.
  session_matcher(std::uint32_t capacity, std::uint64_t seed) : seed_(seed), index_(capacity) {}

  /// @brief The root of a namespace (a session).
  /// @param ns_node The namespace's node id.
  /// @param ns_key The namespace key (unused: the node identifies the namespace).
  /// @return A cursor at @p ns_node.
  [[nodiscard]] cursor root(std::uint32_t ns_node, std::uint64_t ns_key) const noexcept {
    (void)ns_key;
    return cursor{ns_node, 0};
  }

  /// @brief The key of the block holding @p tokens under @p parent.
  /// @param parent The parent's cursor.
  /// @param tokens The block's tokens.
  /// @return A cursor naming the parent, keyed by the parent and @p tokens.
  [[nodiscard]] cursor child(const cursor& parent,
                             std::span<const token_id> tokens) const noexcept {
    const std::uint64_t node_seed =
        seed_ ^ (0x9E3779B97F4A7C15ull * (std::uint64_t{parent.node} + 1));
    return cursor{parent.node, XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), node_seed)};
  }

  /// @brief Moves a child cursor onto the block found or inserted for it.
  /// @param c A child cursor.
  /// @param b The block.
  void bind(cursor& c, block_id b) const noexcept { c.node = b; }

  /// @brief A registered child with the key of @p c that @p verify accepts.
  /// @tparam Verify Callable `bool(block_id)`.
  /// @param c A child cursor from child().
  /// @param verify Confirms a candidate (parent link and all tokens).
  /// @return The block, or `invalid_block`.
  template <class Verify>
  [[nodiscard]] block_id find(const cursor& c, Verify&& verify) const {
    return index_.find(c.key, verify);
  }

  /// @brief The child of @p parent sharing the most leading tokens with @p tokens.
  /// @tparam Score Callable `std::uint32_t(block_id)`: leading tokens a candidate shares.
  /// @tparam Tree A @ref kvkit::block_tree_reader.
  /// @param parent The parent's cursor.
  /// @param tokens The prompt's tokens for the next block (unused: the score compares them).
  /// @param score Counts the shared leading tokens of a candidate (0 rejects it).
  /// @param tree The cache's block tree, whose children of `parent.node` are the candidates.
  /// @return The best candidate, or `invalid_block`.
  template <class Score, class Tree>
  [[nodiscard]] block_id find_partial(const cursor& parent, std::span<const token_id> tokens,
                                      Score&& score, const Tree& tree) const {
    (void)tokens;
    block_id best = invalid_block;
    std::uint32_t best_score = 0;
    for (block_id b = tree.first_child(parent.node); b != invalid_block; b = tree.next_sibling(b)) {
      const std::uint32_t s = score(b);
      if (s > best_score) {
        best_score = s;
        best = b;
      }
    }
    return best;
  }

  /// @brief Registers block @p b under the key of @p c.
  /// @param c A child cursor from child().
  /// @param b A block not registered yet.
  void insert(const cursor& c, block_id b) noexcept { index_.insert(c.key, b); }

  /// @brief Forgets block @p b.
  /// @param b A registered block.
  void erase(block_id b) noexcept { index_.erase(b); }

  /// @brief Registered blocks.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return index_.size(); }

  /// @brief Bytes of bookkeeping.
  /// @return The index.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept { return index_.metadata_bytes(); }

 private:
  std::uint64_t seed_;
  detail::block_index index_;
};

static_assert(prefix_matcher<session_matcher>);
static_assert(matcher_has_find_partial<session_matcher>);
static_assert(matcher_has_bind<session_matcher>);

}  // namespace kvkit
