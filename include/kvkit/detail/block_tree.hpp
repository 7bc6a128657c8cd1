// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internal: the block tree of a prefix_cache (reference counts, parent and child links, stored
// tokens, chained content keys). Not a public header.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/detail/assert.hpp>
#include <kvkit/detail/flat_array.hpp>
#include <kvkit/error.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/types.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace kvkit::detail {

/// One block's place in the tree: 32 bytes, two blocks per cache line, everything a hit, a
/// commit or a release of the block reads.
struct tree_node {
  std::uint64_t key = 0;                  // chained content key (cached blocks)
  std::uint32_t refs = 0;                 // block tables holding the block
  std::uint32_t parent = invalid_block;   // parent node id; invalid_block: not cached
  block_id first_child = invalid_block;   // newest cached child
  block_id next_sibling = invalid_block;  // next older child of the same parent
  block_id prev_sibling = invalid_block;  // next newer child of the same parent
  std::uint32_t first_generated = 0;      // offset of the block's first generated token
};
static_assert(sizeof(tree_node) == 32);

/// The cache's block tree: which blocks are cached and how they chain, who holds them, and what
/// they hold.
///
/// A block is in one of three states, all read from its node: *free* (not cached, no reference),
/// *owned* (not cached, held by the block tables of one or more sequences: the private blocks of
/// a sequence, or a shared partially filled block after a fork) and *cached* (linked under a
/// parent node: a cached block or a namespace root). Namespace roots are nodes numbered after the
/// blocks (`namespace_node`). Each node keeps its cached children in a doubly linked list, newest
/// first; each cached block keeps its tokens (for hit verification) and a 64-bit chained content
/// key: the keyed xxHash3 of its parent's key and its tokens, rooted at the namespace key.
///
/// The tree keeps four gauges: cached blocks, referenced blocks, evictable blocks (cached and
/// unreferenced) and detached blocks (cached under an invalidated namespace, still referenced).
/// verify() checks its own invariants; the operations keep the policies in step with it.
class block_tree {
 public:
  block_tree(std::uint32_t capacity, std::uint32_t block_size, std::uint64_t seed)
      : capacity_(capacity),
        block_size_(block_size),
        block_shift_(static_cast<std::uint32_t>(std::countr_zero(block_size))),
        hasher_(seed),
        nodes_(capacity, tree_node{}),
        tokens_(std::size_t{capacity} * block_size, 0) {}

  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] std::uint32_t block_size() const noexcept { return block_size_; }
  [[nodiscard]] std::uint32_t block_shift() const noexcept { return block_shift_; }
  [[nodiscard]] const xxh3_hasher& hasher() const noexcept { return hasher_; }

  // ---- one block ------------------------------------------------------------------------------

  [[nodiscard]] bool cached(block_id b) const noexcept { return nodes_[b].parent != invalid_block; }
  [[nodiscard]] bool free(block_id b) const noexcept {
    return nodes_[b].parent == invalid_block && nodes_[b].refs == 0;
  }
  [[nodiscard]] std::uint32_t refs(block_id b) const noexcept { return nodes_[b].refs; }
  [[nodiscard]] std::uint32_t parent(block_id b) const noexcept { return nodes_[b].parent; }
  [[nodiscard]] std::uint64_t key(block_id b) const noexcept { return nodes_[b].key; }
  [[nodiscard]] std::uint32_t first_generated(block_id b) const noexcept {
    return nodes_[b].first_generated;
  }
  [[nodiscard]] bool has_children(std::uint32_t node) const noexcept {
    return first_child(node) != invalid_block;
  }
  /// The newest cached child of a block or namespace node (@ref kvkit::block_tree_reader).
  [[nodiscard]] block_id first_child(std::uint32_t node) const noexcept {
    return node < capacity_ ? nodes_[node].first_child : ns_heads_[node - capacity_];
  }
  /// The next older child of the same parent (@ref kvkit::block_tree_reader).
  [[nodiscard]] block_id next_sibling(block_id b) const noexcept { return nodes_[b].next_sibling; }
  /// The key of a node: a cached block's content key, or a namespace's key.
  [[nodiscard]] std::uint64_t node_key(std::uint32_t node) const noexcept {
    return node < capacity_ ? nodes_[node].key : ns_keys_[node - capacity_];
  }

  /// The stored tokens of block @p b.
  [[nodiscard]] std::span<const token_id> tokens(block_id b) const noexcept {
    return {tokens_.data() + (std::size_t{b} << block_shift_), block_size_};
  }
  /// Whether block @p b stores @p toks (a whole block's worth).
  [[nodiscard]] bool holds(block_id b, std::span<const token_id> toks) const noexcept {
    return std::memcmp(tokens_.data() + (std::size_t{b} << block_shift_), toks.data(),
                       toks.size_bytes()) == 0;
  }
  /// Leading tokens block @p b shares with @p toks.
  [[nodiscard]] std::uint32_t shared_prefix(block_id b,
                                            std::span<const token_id> toks) const noexcept {
    const token_id* stored = tokens_.data() + (std::size_t{b} << block_shift_);
    std::uint32_t n = 0;
    while (n < toks.size() && stored[n] == toks[n])
      ++n;
    return n;
  }
  /// Starts loading block @p b's node (a release reads it).
  void prefetch_node(block_id b) const noexcept { __builtin_prefetch(&nodes_[b]); }
  /// Starts loading block @p b's node and tokens (a hit will read both).
  void prefetch(block_id b) const noexcept {
    __builtin_prefetch(&nodes_[b]);
    __builtin_prefetch(tokens_.data() + (std::size_t{b} << block_shift_));
  }

  // ---- references -----------------------------------------------------------------------------

  /// A free block is handed to one sequence: owned, one reference.
  void take_fresh(block_id b) noexcept {
    KVKIT_ASSERT(free(b), "prefix_cache: allocator handed out a block that is in use");
    nodes_[b].refs = 1;
    ++referenced_;
  }
  /// One more block table holds @p b. Returns whether it was unreferenced (an evictable cached
  /// block stops being evictable).
  bool acquire(block_id b) noexcept {
    tree_node& n = nodes_[b];
    if (n.refs++ != 0)
      return false;
    ++referenced_;
    if (n.parent != invalid_block)
      --evictable_;
    return true;
  }
  /// One block table fewer holds @p b. Returns whether it is now unreferenced (a cached block
  /// becomes evictable, an owned one free).
  bool release(block_id b) noexcept {
    tree_node& n = nodes_[b];
    KVKIT_ASSERT(n.refs > 0, "prefix_cache: reference count underflow");
    if (--n.refs != 0)
      return false;
    --referenced_;
    if (n.parent != invalid_block)
      ++evictable_;
    return true;
  }

  // ---- links ----------------------------------------------------------------------------------

  /// The chained content key of a block holding @p toks under node @p parent.
  [[nodiscard]] std::uint64_t child_key(std::uint32_t parent,
                                        std::span<const token_id> toks) const noexcept {
    return hasher_.chain(node_key(parent), toks);
  }

  /// Links owned block @p b as the newest cached child of @p parent, storing @p toks and its
  /// chained key @p key (child_key(parent, toks)). @p first_generated: offset of its first
  /// generated token (block_size: none). @p detached: the parent's namespace is invalidated (the
  /// block counts as detached).
  void link(block_id b, std::uint32_t parent, std::span<const token_id> toks,
            std::uint32_t first_generated, bool detached, std::uint64_t key) noexcept {
    tree_node& n = nodes_[b];
    KVKIT_ASSERT(n.parent == invalid_block && n.refs > 0,
                 "prefix_cache: linking a block that is not owned");
    KVKIT_ASSERT(key == child_key(parent, toks), "prefix_cache: wrong content key for a block");
    n.key = key;
    n.parent = parent;
    n.first_child = invalid_block;
    n.first_generated = first_generated;
    block_id& head = child_head(parent);
    n.prev_sibling = invalid_block;
    n.next_sibling = head;
    if (head != invalid_block)
      nodes_[head].prev_sibling = b;
    head = b;
    std::memcpy(tokens_.data() + (std::size_t{b} << block_shift_), toks.data(), toks.size_bytes());
    ++cached_;
    detached_ += detached ? 1u : 0u;
  }

  /// Unlinks cached, unreferenced, childless block @p b: it becomes free. @p detached: it was
  /// counted as detached. Returns its former parent.
  std::uint32_t unlink(block_id b, bool detached) noexcept {
    tree_node& n = nodes_[b];
    KVKIT_ASSERT(n.parent != invalid_block && n.refs == 0 && n.first_child == invalid_block,
                 "prefix_cache: unlinking a block that is not an unreferenced cached leaf");
    const std::uint32_t p = n.parent;
    if (n.prev_sibling != invalid_block) {
      nodes_[n.prev_sibling].next_sibling = n.next_sibling;
    } else {
      child_head(p) = n.next_sibling;
    }
    if (n.next_sibling != invalid_block)
      nodes_[n.next_sibling].prev_sibling = n.prev_sibling;
    n = tree_node{};
    --cached_;
    --evictable_;
    detached_ -= detached ? 1u : 0u;
    return p;
  }

  /// Collects the subtree of @p root in preorder (root first) into @p out.
  void collect_subtree(block_id root, std::vector<block_id>& out) const {
    out.clear();
    out.push_back(root);
    for (std::size_t i = 0; i < out.size(); ++i) {
      for (block_id c = nodes_[out[i]].first_child; c != invalid_block; c = nodes_[c].next_sibling)
        out.push_back(c);
    }
  }

  // ---- namespaces -----------------------------------------------------------------------------

  /// Makes namespace @p ns (an index from the namespace table) an empty root with key @p key.
  void open_namespace(std::uint32_t ns, std::uint64_t key) {
    if (ns >= ns_heads_.size()) {
      ns_heads_.resize(ns + 1, invalid_block);
      ns_keys_.resize(ns + 1, 0);
    }
    KVKIT_ASSERT(ns_heads_[ns] == invalid_block, "prefix_cache: reopening a namespace with blocks");
    ns_keys_[ns] = key;
  }
  /// Counts @p n more cached blocks as detached (their namespace was invalidated).
  void detach(std::uint32_t n) noexcept { detached_ += n; }

  // ---- gauges ---------------------------------------------------------------------------------

  [[nodiscard]] std::uint32_t cached_count() const noexcept { return cached_; }
  [[nodiscard]] std::uint32_t referenced_count() const noexcept { return referenced_; }
  [[nodiscard]] std::uint32_t evictable_count() const noexcept { return evictable_; }
  [[nodiscard]] std::uint32_t detached_count() const noexcept { return detached_; }
  /// Bytes of bookkeeping per block (the nodes; tokens are token_bytes(), namespace roots are
  /// counted with the namespaces).
  [[nodiscard]] std::size_t metadata_bytes() const noexcept { return nodes_.bytes(); }
  /// Bytes of stored tokens.
  [[nodiscard]] std::size_t token_bytes() const noexcept { return tokens_.bytes(); }

  /// Checks the tree's own invariants: every cached block's parent is a cached block or a root
  /// for which @p live_namespace is true, and lists it among its children; sibling links are
  /// mutual; a referenced block's parent block is referenced; the key chains; every cached block
  /// is reached from a root exactly once; the gauges count what they name. @p detached_namespace
  /// tells the invalidated namespaces, whose blocks must all be referenced.
  template <class LiveNamespace, class DetachedNamespace>
  [[nodiscard]] status verify(LiveNamespace&& live_namespace,
                              DetachedNamespace&& detached_namespace) const {
    const auto fail = [](std::string what) {
      return status{error{errc::invalid_argument, "kvkit: invariant violated: " + std::move(what)}};
    };
    std::uint32_t cached = 0, referenced = 0, evictable = 0;
    for (block_id b = 0; b < capacity_; ++b) {
      const tree_node& n = nodes_[b];
      referenced += n.refs > 0 ? 1u : 0u;
      if (n.parent == invalid_block) {
        if (n.first_child != invalid_block || n.next_sibling != invalid_block ||
            n.prev_sibling != invalid_block) {
          return fail("block " + std::to_string(b) + " is not cached but has tree links");
        }
        continue;
      }
      ++cached;
      evictable += n.refs == 0 ? 1u : 0u;
      const std::uint32_t p = n.parent;
      if (p < capacity_) {
        if (nodes_[p].parent == invalid_block) {
          return fail("cached block " + std::to_string(b) + " is an orphan (parent not cached)");
        }
        if (n.refs > 0 && nodes_[p].refs == 0) {
          return fail("referenced block " + std::to_string(b) + " has an unreferenced parent");
        }
      } else if (p - capacity_ >= ns_heads_.size() || !live_namespace(p - capacity_)) {
        return fail("cached block " + std::to_string(b) + " is an orphan (dead namespace)");
      }
      if (n.key != hasher_.chain(node_key(p), tokens(b)))
        return fail("cached block " + std::to_string(b) + " has a wrong content key");
      if (n.first_generated > block_size_)
        return fail("cached block " + std::to_string(b) + " has a generated offset past its end");
      if (n.prev_sibling == invalid_block ? first_child(p) != b
                                          : nodes_[n.prev_sibling].next_sibling != b)
        return fail("cached block " + std::to_string(b) + " missing from its parent's children");
      if (n.next_sibling != invalid_block && nodes_[n.next_sibling].prev_sibling != b)
        return fail("cached block " + std::to_string(b) + " has a broken sibling link");
    }
    // Reachability: walking every root's children reaches each cached block once.
    std::uint32_t reached = 0, detached = 0;
    std::vector<block_id> stack;
    for (std::uint32_t ns = 0; ns < ns_heads_.size(); ++ns) {
      if (ns_heads_[ns] == invalid_block)
        continue;
      if (!live_namespace(ns))
        return fail("a dead namespace still holds blocks");
      const bool is_detached = detached_namespace(ns);
      for (block_id c = ns_heads_[ns]; c != invalid_block; c = nodes_[c].next_sibling)
        stack.push_back(c);
      while (!stack.empty()) {
        const block_id b = stack.back();
        stack.pop_back();
        if (++reached > cached)
          return fail("the children lists hold a cycle or a block twice");
        if (is_detached) {
          if (nodes_[b].refs == 0) {
            return fail("block " + std::to_string(b) +
                        " of an invalidated namespace is still cached");
          }
          ++detached;
        }
        for (block_id c = nodes_[b].first_child; c != invalid_block; c = nodes_[c].next_sibling)
          stack.push_back(c);
      }
    }
    if (reached != cached)
      return fail("some cached blocks are unreachable from any namespace");
    if (cached != cached_ || referenced != referenced_ || evictable != evictable_ ||
        detached != detached_) {
      return fail("gauges are off (cached " + std::to_string(cached_) + " vs " +
                  std::to_string(cached) + ", referenced " + std::to_string(referenced_) + " vs " +
                  std::to_string(referenced) + ", evictable " + std::to_string(evictable_) +
                  " vs " + std::to_string(evictable) + ", detached " + std::to_string(detached_) +
                  " vs " + std::to_string(detached) + ")");
    }
    return {};
  }

 private:
  [[nodiscard]] block_id& child_head(std::uint32_t node) noexcept {
    return node < capacity_ ? nodes_[node].first_child : ns_heads_[node - capacity_];
  }

  std::uint32_t capacity_;
  std::uint32_t block_size_;
  std::uint32_t block_shift_;
  xxh3_hasher hasher_;
  flat_array<tree_node> nodes_;
  flat_array<token_id> tokens_;
  std::vector<block_id> ns_heads_;      // by namespace index: newest first block
  std::vector<std::uint64_t> ns_keys_;  // by namespace index: the namespace key
  std::uint32_t cached_ = 0;
  std::uint32_t referenced_ = 0;
  std::uint32_t evictable_ = 0;
  std::uint32_t detached_ = 0;
};

static_assert(block_tree_reader<block_tree>);

}  // namespace kvkit::detail
