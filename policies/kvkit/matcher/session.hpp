// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `session_matcher`: per-session conversation state, matched by walking each node's few
/// children.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/detail/assert.hpp>
#include <kvkit/types.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

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
/// Each node keeps a plain list of its children, newest first, and a lookup compares the tokens of
/// each: no hashing, no table, 12 bytes per block. That is the right trade-off when a node has one
/// or a few children (one conversation, occasional edits or regenerations); for many prompts
/// sharing one prefix use `radix_matcher` or `hash_matcher`.
class session_matcher {
 public:
  /// @brief Policy name used in benchmarks and replays.
  static constexpr std::string_view name = "session";

  /// @brief A position in a session's tree: a node id.
  struct cursor {
    std::uint32_t node = 0;  ///< Node id (a block, or a namespace node).
  };

  /// @brief Makes an empty matcher for a pool of @p capacity blocks.
  /// @param capacity Blocks in the pool.
  /// @param seed Unused (nothing is hashed).
  session_matcher(std::uint32_t capacity, std::uint64_t seed)
      : capacity_(capacity),
        parent_(capacity, invalid_block),
        next_(capacity, invalid_block),
        prev_(capacity, invalid_block),
        head_(capacity, invalid_block) {
    (void)seed;
  }

  /// @brief The root of a namespace (a session).
  /// @param ns_node The namespace's node id.
  /// @param ns_key The namespace key (unused).
  /// @return A cursor at @p ns_node.
  [[nodiscard]] cursor root(std::uint32_t ns_node, std::uint64_t ns_key) const noexcept {
    (void)ns_key;
    return cursor{ns_node};
  }

  /// @brief The key of a child of @p parent: the parent itself (tokens are compared in find()).
  /// @param parent The parent's cursor.
  /// @param tokens The block's tokens (unused).
  /// @return A cursor naming the parent.
  [[nodiscard]] cursor child(const cursor& parent,
                             std::span<const token_id> tokens) const noexcept {
    (void)tokens;
    return parent;
  }

  /// @brief Moves a child cursor onto the block found or inserted for it.
  /// @param c A child cursor.
  /// @param b The block.
  void bind(cursor& c, block_id b) const noexcept { c.node = b; }

  /// @brief The first child of the cursor's node that @p verify accepts.
  /// @tparam Verify Callable `bool(block_id)`.
  /// @param c A child cursor from child().
  /// @param verify Confirms a candidate (parent link and all tokens).
  /// @return The block, or `invalid_block`.
  template <class Verify>
  [[nodiscard]] block_id find(const cursor& c, Verify&& verify) const {
    for (block_id b = first_child(c.node); b != invalid_block; b = next_[b]) {
      if (verify(b))
        return b;
    }
    return invalid_block;
  }

  /// @brief The child of @p parent sharing the most leading tokens with @p tokens.
  /// @tparam Score Callable `std::uint32_t(block_id)`: leading tokens a candidate shares.
  /// @param parent The parent's cursor.
  /// @param tokens The prompt's tokens for the next block.
  /// @param score Counts the shared leading tokens of a candidate (0 rejects it).
  /// @return The best candidate, or `invalid_block`.
  template <class Score>
  [[nodiscard]] block_id find_partial(const cursor& parent, std::span<const token_id> tokens,
                                      Score&& score) const {
    (void)tokens;
    block_id best = invalid_block;
    std::uint32_t best_score = 0;
    for (block_id b = first_child(parent.node); b != invalid_block; b = next_[b]) {
      const std::uint32_t s = score(b);
      if (s > best_score) {
        best_score = s;
        best = b;
      }
    }
    return best;
  }

  /// @brief Registers block @p b as the newest child of the cursor's node.
  /// @param c A child cursor from child().
  /// @param b A block not registered yet.
  void insert(const cursor& c, block_id b) {
    block_id& h = head_ref(c.node);
    parent_[b] = c.node;
    prev_[b] = invalid_block;
    next_[b] = h;
    if (h != invalid_block)
      prev_[h] = b;
    h = b;
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
      block_id& h = head_ref(parent_[b]);
      KVKIT_ASSERT(h == b, "session_matcher::erase: block not registered");
      h = n;
    }
    parent_[b] = next_[b] = prev_[b] = invalid_block;
    --size_;
  }

  /// @brief Registered blocks.
  /// @return The count.
  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }

  /// @brief Bytes of bookkeeping.
  /// @return Per-block arrays plus namespace heads.
  [[nodiscard]] std::size_t metadata_bytes() const noexcept {
    return (parent_.size() + next_.size() + prev_.size() + head_.size()) * sizeof(block_id) +
           ns_head_.size() * sizeof(block_id);
  }

 private:
  [[nodiscard]] block_id first_child(std::uint32_t node) const noexcept {
    if (node < capacity_)
      return head_[node];
    const std::size_t i = node - capacity_;
    return i < ns_head_.size() ? ns_head_[i] : invalid_block;
  }
  block_id& head_ref(std::uint32_t node) {
    if (node < capacity_)
      return head_[node];
    const std::size_t i = node - capacity_;
    if (i >= ns_head_.size())
      ns_head_.resize(i + 1, invalid_block);
    return ns_head_[i];
  }

  std::uint32_t capacity_;
  std::vector<std::uint32_t> parent_;
  std::vector<block_id> next_;
  std::vector<block_id> prev_;
  std::vector<block_id> head_;
  std::vector<block_id> ns_head_;
  std::uint32_t size_ = 0;
};

static_assert(prefix_matcher<session_matcher>);

}  // namespace kvkit
