// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `radix_matcher`: a page-aligned token radix tree with partial-block reuse.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/detail/assert.hpp>
#include <kvkit/types.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace kvkit {

/// @brief Matches prompts along a radix tree of blocks: a node's children are found by comparing
/// tokens, indexed by (parent node, first token of the child block).
///
/// Nothing is hashed from the block's content: a lookup compares the tokens of the children that
/// start with the right token, so matching is collision-free by construction. It also answers
/// partial matches: the cached child sharing the longest run of leading tokens with a prompt's
/// next block, which the cache reuses by copying that block (copy on write) — a request that
/// diverges in the middle of a block keeps the tokens before the divergence.
///
/// State: per block its parent node, first token and two links of the list of siblings sharing
/// that first token (16 bytes), and an open-addressing table of list heads, at most half full
/// (8 to 16 bytes per block). No heap allocation after construction.
class radix_matcher {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "radix";

  /// @brief A position in the tree, or the key of a child: parent node and first token.
  struct cursor {
    std::uint32_t node = 0;  ///< Node id (a block, or a namespace node).
    token_id first = 0;      ///< First token of the child block (child cursors only).
  };

  /// @brief Makes an empty matcher for a pool of @p capacity blocks.
  /// @param capacity Blocks in the pool.
  /// @param seed Key of the index's hash (spreads keys; not needed for correctness).
  radix_matcher(std::uint32_t capacity, std::uint64_t seed)
      : seed_(seed),
        parent_(capacity, invalid_block),
        first_(capacity, 0),
        next_(capacity, invalid_block),
        prev_(capacity, invalid_block),
        table_(std::bit_ceil(std::max<std::size_t>(2, std::size_t{capacity} * 2)), invalid_block),
        mask_(table_.size() - 1) {}

  /// @brief The root of a namespace.
  /// @param ns_node The namespace's node id.
  /// @param ns_key The namespace key (unused: the node identifies the namespace).
  /// @return A cursor at @p ns_node.
  [[nodiscard]] cursor root(std::uint32_t ns_node, std::uint64_t ns_key) const noexcept {
    (void)ns_key;
    return cursor{ns_node, 0};
  }

  /// @brief The key of the block holding @p tokens under @p parent.
  /// @param parent The parent's cursor.
  /// @param tokens The block's tokens (not empty).
  /// @return The child's cursor.
  [[nodiscard]] cursor child(const cursor& parent,
                             std::span<const token_id> tokens) const noexcept {
    return cursor{parent.node, tokens.empty() ? 0 : tokens[0]};
  }

  /// @brief Moves a child cursor onto the block found or inserted for it.
  /// @param c A child cursor.
  /// @param b The block.
  void bind(cursor& c, block_id b) const noexcept { c.node = b; }

  /// @brief Finds a child for the key of @p c that @p verify accepts.
  /// @tparam Verify Callable `bool(block_id)`.
  /// @param c A child cursor from child().
  /// @param verify Confirms a candidate (parent link and all tokens).
  /// @return The block, or `invalid_block`.
  template <class Verify>
  [[nodiscard]] block_id find(const cursor& c, Verify&& verify) const {
    for (block_id b = head(c.node, c.first); b != invalid_block; b = next_[b]) {
      if (verify(b))
        return b;
    }
    return invalid_block;
  }

  /// @brief The child of @p parent sharing the most leading tokens with @p tokens.
  /// @tparam Score Callable `std::uint32_t(block_id)`: leading tokens a candidate shares.
  /// @tparam Tree A @ref kvkit::block_tree_reader (unused: the index groups children by their
  /// first token).
  /// @param parent The parent's cursor.
  /// @param tokens The prompt's tokens for the next block (not empty).
  /// @param score Counts the shared leading tokens of a candidate (0 rejects it).
  /// @param tree The cache's block tree.
  /// @return The best candidate, or `invalid_block`.
  template <class Score, class Tree>
  [[nodiscard]] block_id find_partial(const cursor& parent, std::span<const token_id> tokens,
                                      Score&& score, const Tree& tree) const {
    (void)tree;
    if (tokens.empty())
      return invalid_block;
    block_id best = invalid_block;
    std::uint32_t best_score = 0;
    for (block_id b = head(parent.node, tokens[0]); b != invalid_block; b = next_[b]) {
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
  void insert(const cursor& c, block_id b) noexcept {
    parent_[b] = c.node;
    first_[b] = c.first;
    prev_[b] = invalid_block;
    const std::size_t i = slot(c.node, c.first);
    next_[b] = table_[i];
    if (table_[i] != invalid_block)
      prev_[table_[i]] = b;
    table_[i] = b;
    ++size_;
  }

  /// @brief Forgets block @p b.
  /// @param b A registered block.
  void erase(block_id b) noexcept {
    const block_id p = prev_[b];
    const block_id n = next_[b];
    if (n != invalid_block)
      prev_[n] = p;
    if (p != invalid_block) {
      next_[p] = n;
    } else {
      const std::size_t i = slot(parent_[b], first_[b]);
      KVKIT_ASSERT(table_[i] == b, "radix_matcher::erase: block not registered");
      table_[i] = n;
      if (n == invalid_block)
        remove_slot(i);
    }
    parent_[b] = next_[b] = prev_[b] = invalid_block;
    --size_;
  }

  /// @brief Registered blocks.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }

  /// @brief Bytes of bookkeeping.
  /// @return Per-block arrays plus the table.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return parent_.size() * (sizeof(std::uint32_t) + sizeof(token_id) + 2 * sizeof(block_id)) +
           table_.size() * sizeof(block_id);
  }

 private:
  [[nodiscard]] std::size_t home(std::uint32_t node, token_id first) const noexcept {
    std::uint64_t x = (std::uint64_t{node} << 32 | static_cast<std::uint32_t>(first)) ^ seed_;
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return static_cast<std::size_t>(x) & mask_;
  }
  // The slot holding the list head of key (node, first), or the empty slot where it would go.
  [[nodiscard]] std::size_t slot(std::uint32_t node, token_id first) const noexcept {
    for (std::size_t i = home(node, first);; i = (i + 1) & mask_) {
      const block_id b = table_[i];
      if (b == invalid_block || (parent_[b] == node && first_[b] == first))
        return i;
    }
  }
  [[nodiscard]] block_id head(std::uint32_t node, token_id first) const noexcept {
    return table_[slot(node, first)];
  }
  // Backward-shift deletion of an emptied slot.
  void remove_slot(std::size_t hole) noexcept {
    for (std::size_t j = (hole + 1) & mask_; table_[j] != invalid_block; j = (j + 1) & mask_) {
      const std::size_t h = home(parent_[table_[j]], first_[table_[j]]);
      if (((j - h) & mask_) >= ((j - hole) & mask_)) {
        table_[hole] = table_[j];
        table_[j] = invalid_block;
        hole = j;
      }
    }
  }

  std::uint64_t seed_;
  std::vector<std::uint32_t> parent_;
  std::vector<token_id> first_;
  std::vector<block_id> next_;
  std::vector<block_id> prev_;
  std::vector<block_id> table_;
  std::size_t mask_;
  std::uint32_t size_ = 0;
};

static_assert(prefix_matcher<radix_matcher>);
static_assert(matcher_has_find_partial<radix_matcher>);
static_assert(matcher_has_bind<radix_matcher>);

}  // namespace kvkit
