// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Conformance suite for `kvkit::prefix_matcher` policies (part of the test kit, see
/// docs/testing.md; needs GoogleTest).
///
/// The suite drives a matcher the way `prefix_cache` does: cursors come from `root()` and
/// `child()`, a parent's cursor is re-derived by walking its chain (calling the optional `bind`
/// after each found block), and `find()` gets a verifier that compares the candidate's recorded
/// parent and tokens, so the verifier, not the hash, decides what a hit is. Blocks are erased
/// leaves first, as the cache evicts them.
/// Instantiate, inside `namespace kvkit::testing`, with
/// `INSTANTIATE_TYPED_TEST_SUITE_P(my_name, matcher_conformance, ::testing::Types<my_matcher>);`
///
/// Matchers with the optional `find_partial` (@ref kvkit::matcher_has_find_partial) also run
/// `matcher_partial_conformance`, which checks it against a model: the child of the given parent
/// that shares the most leading tokens with the query wins, and a candidate scored 0 is never
/// returned. The harness hands find_partial() a block tree of its own (the children of each node,
/// newest first), as the cache hands it its block tree.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/types.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <map>
#include <random>
#include <span>
#include <vector>

namespace kvkit::testing {

/// @brief The children of each node, newest first: a @ref kvkit::block_tree_reader over the
/// blocks a harness registered.
class harness_tree {
 public:
  explicit harness_tree(std::uint32_t capacity)
      : capacity_(capacity), first_(capacity, invalid_block), next_(capacity, invalid_block) {}
  [[nodiscard]] block_id first_child(std::uint32_t node) const {
    if (node < capacity_)
      return first_[node];
    const auto it = roots_.find(node);
    return it == roots_.end() ? invalid_block : it->second;
  }
  [[nodiscard]] block_id next_sibling(block_id b) const { return next_[b]; }
  void link(block_id b, std::uint32_t parent) {
    block_id& head = head_of(parent);
    next_[b] = head;
    head = b;
  }
  void unlink(block_id b, std::uint32_t parent) {
    block_id* at = &head_of(parent);
    while (*at != b) {
      ASSERT_NE(*at, invalid_block) << "block " << b << " is not a child of " << parent;
      at = &next_[*at];
    }
    *at = next_[b];
    next_[b] = invalid_block;
  }

 private:
  block_id& head_of(std::uint32_t node) {
    return node < capacity_ ? first_[node] : roots_.try_emplace(node, invalid_block).first->second;
  }
  std::uint32_t capacity_;
  std::vector<block_id> first_;
  std::vector<block_id> next_;
  std::map<std::uint32_t, block_id> roots_;
};
static_assert(block_tree_reader<harness_tree>);

/// @brief A matcher plus a record of what was registered in it: each block's parent node and
/// tokens (the model), and helpers that use the matcher as a cache does.
template <class M>
class matcher_harness {
 public:
  using cursor = typename M::cursor;
  static constexpr std::uint32_t no_parent = invalid_block;

  matcher_harness(std::uint32_t capacity, std::uint64_t seed)
      : capacity_(capacity),
        m_(capacity, seed),
        tree_(capacity),
        registered_(capacity, false),
        parent_(capacity, no_parent),
        tokens_(capacity) {}

  M& matcher() { return m_; }
  /// The block tree of the registered blocks (what a cache hands to find_partial()).
  [[nodiscard]] const harness_tree& tree() const { return tree_; }
  [[nodiscard]] std::uint32_t capacity() const { return capacity_; }
  /// Node id of namespace @p ns (as the cache numbers them: after the blocks).
  [[nodiscard]] std::uint32_t ns_node(std::uint32_t ns) const {
    return namespace_node(ns, capacity_);
  }
  [[nodiscard]] static std::uint64_t ns_key(std::uint32_t ns) {
    return 0x9E3779B97F4A7C15ull * (ns + 1) ^ 0x1234567ull;
  }
  [[nodiscard]] bool registered(block_id b) const { return registered_[b]; }
  [[nodiscard]] std::uint32_t parent(block_id b) const { return parent_[b]; }
  [[nodiscard]] const std::vector<token_id>& tokens(block_id b) const { return tokens_[b]; }

  /// The cursor of @p node (a namespace node or a registered block), derived by walking its chain
  /// from the namespace root. Records a failure when a block on the way is not found.
  cursor cursor_of(std::uint32_t node) {
    if (is_namespace_node(node, capacity_))
      return m_.root(node, ns_key(namespace_index(node, capacity_)));
    const cursor parent_cursor = cursor_of(parent_[node]);
    cursor c = m_.child(parent_cursor, tokens_[node]);
    const block_id found = m_.find(c, verifier(parent_[node], tokens_[node]));
    EXPECT_EQ(found, node) << "block " << node << " not found while walking its chain";
    bind(c, node);
    return c;
  }

  /// A verifier that accepts registered blocks whose parent and tokens are these.
  auto verifier(std::uint32_t parent, const std::vector<token_id>& tokens) const {
    return [this, parent, &tokens](block_id cand) {
      return cand < capacity_ && registered_[cand] && parent_[cand] == parent &&
             tokens_[cand] == tokens;
    };
  }

  /// Looks up the block holding @p tokens under @p parent.
  block_id find(std::uint32_t parent, const std::vector<token_id>& tokens) {
    const cursor c = m_.child(cursor_of(parent), tokens);
    return m_.find(c, verifier(parent, tokens));
  }

  /// Registers @p b as the block holding @p tokens under @p parent.
  void insert(block_id b, std::uint32_t parent, std::vector<token_id> tokens) {
    ASSERT_FALSE(registered_[b]);
    cursor c = m_.child(cursor_of(parent), tokens);
    m_.insert(c, b);
    registered_[b] = true;
    parent_[b] = parent;
    tokens_[b] = std::move(tokens);
    tree_.link(b, parent);
    bind(c, b);
  }

  /// A score as the cache computes it for find_partial(): leading tokens a registered child of
  /// @p parent shares with @p tokens (0 for anything else).
  auto scorer(std::uint32_t parent, const std::vector<token_id>& tokens) const {
    return [this, parent, &tokens](block_id cand) -> std::uint32_t {
      if (cand >= capacity_ || !registered_[cand] || parent_[cand] != parent)
        return 0;
      return shared_prefix(tokens_[cand], tokens);
    };
  }

  /// Leading tokens @p a and @p b have in common.
  [[nodiscard]] static std::uint32_t shared_prefix(const std::vector<token_id>& a,
                                                   const std::vector<token_id>& b) {
    std::uint32_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n])
      ++n;
    return n;
  }

  /// The model's answer to a partial lookup: the best shared run of a registered child of
  /// @p parent (0 when none shares a token).
  [[nodiscard]] std::uint32_t best_partial(std::uint32_t parent,
                                           const std::vector<token_id>& tokens) const {
    std::uint32_t best = 0;
    for (block_id b = 0; b < capacity_; ++b) {
      if (registered_[b] && parent_[b] == parent) {
        best = std::max(best, shared_prefix(tokens_[b], tokens));
      }
    }
    return best;
  }

  /// Forgets @p b (a registered block with no registered child).
  void erase(block_id b) {
    ASSERT_TRUE(registered_[b]);
    m_.erase(b);
    registered_[b] = false;
    tree_.unlink(b, parent_[b]);
  }

  [[nodiscard]] bool has_child(block_id b) const {
    for (block_id c = 0; c < capacity_; ++c) {
      if (registered_[c] && parent_[c] == b)
        return true;
    }
    return false;
  }

  /// Every registered block is found through its chain, and nothing else is.
  void expect_consistent(const char* where) {
    for (block_id b = 0; b < capacity_; ++b) {
      if (!registered_[b])
        continue;
      EXPECT_EQ(find(parent_[b], tokens_[b]), b) << where << ": registered block " << b;
    }
  }

 private:
  void bind(cursor& c, block_id b) { matcher_traits<M>::bind(m_, c, b); }

  std::uint32_t capacity_;
  M m_;
  harness_tree tree_;
  std::vector<bool> registered_;
  std::vector<std::uint32_t> parent_;
  std::vector<std::vector<token_id>> tokens_;
};

template <class M>
class matcher_conformance : public ::testing::Test {
 protected:
  static constexpr std::uint32_t capacity = 64;
  static constexpr std::uint64_t seed = 0x5EEDull;
};

TYPED_TEST_SUITE_P(matcher_conformance);

TYPED_TEST_P(matcher_conformance, SatisfiesConcept) {
  static_assert(kvkit::prefix_matcher<TypeParam>);
}

TYPED_TEST_P(matcher_conformance, FindOnEmptyReturnsInvalid) {
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  auto& m = h.matcher();
  for (std::uint32_t ns = 0; ns < 3; ++ns) {
    const auto root = m.root(h.ns_node(ns), h.ns_key(ns));
    for (token_id t = 0; t < 8; ++t) {
      const std::vector<token_id> toks{t, t + 1, t + 2, t + 3};
      int calls = 0;
      const auto accept_all = [&](block_id) {
        ++calls;
        return true;
      };
      EXPECT_EQ(m.find(m.child(root, toks), accept_all), invalid_block);
      EXPECT_EQ(calls, 0) << "an empty matcher has no candidate to verify";
    }
  }
}

TYPED_TEST_P(matcher_conformance, InsertThenFindWithAcceptingVerifier) {
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  h.insert(5, h.ns_node(0), {1, 2, 3, 4});
  EXPECT_EQ(h.find(h.ns_node(0), {1, 2, 3, 4}), 5u);
  // Other tokens, another namespace: not a hit (the verifier refuses whatever is offered).
  EXPECT_EQ(h.find(h.ns_node(0), {1, 2, 3, 5}), invalid_block);
  EXPECT_EQ(h.find(h.ns_node(1), {1, 2, 3, 4}), invalid_block);
  // A child of the block.
  h.insert(9, 5, {7, 7, 7, 7});
  EXPECT_EQ(h.find(5, {7, 7, 7, 7}), 9u);
  EXPECT_EQ(h.find(h.ns_node(0), {7, 7, 7, 7}), invalid_block);
}

TYPED_TEST_P(matcher_conformance, RejectingVerifierMeansNoHit) {
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  h.insert(5, h.ns_node(0), {1, 2, 3, 4});
  auto& m = h.matcher();
  const auto c = m.child(h.cursor_of(h.ns_node(0)), std::vector<token_id>{1, 2, 3, 4});
  std::vector<block_id> offered;
  const auto reject = [&](block_id b) {
    offered.push_back(b);
    return false;
  };
  EXPECT_EQ(m.find(c, reject), invalid_block);
  // The block with the right key must have been offered: find() may return only what verify
  // accepted, so a matcher that skips the verifier cannot conform.
  EXPECT_NE(std::find(offered.begin(), offered.end(), 5u), offered.end());
  // Accepting again finds it: rejection changed nothing.
  EXPECT_EQ(h.find(h.ns_node(0), {1, 2, 3, 4}), 5u);
}

TYPED_TEST_P(matcher_conformance, EraseThenFindReturnsInvalid) {
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  h.insert(5, h.ns_node(0), {1, 2, 3, 4});
  h.insert(6, h.ns_node(0), {2, 2, 3, 4});
  h.erase(5);
  EXPECT_EQ(h.find(h.ns_node(0), {1, 2, 3, 4}), invalid_block);
  EXPECT_EQ(h.find(h.ns_node(0), {2, 2, 3, 4}), 6u);
  // The id can be registered again, under another key.
  h.insert(5, h.ns_node(1), {9, 9, 9, 9});
  EXPECT_EQ(h.find(h.ns_node(1), {9, 9, 9, 9}), 5u);
  EXPECT_EQ(h.find(h.ns_node(0), {1, 2, 3, 4}), invalid_block);
  h.erase(5);
  h.erase(6);
  EXPECT_EQ(h.find(h.ns_node(1), {9, 9, 9, 9}), invalid_block);
  EXPECT_EQ(h.find(h.ns_node(0), {2, 2, 3, 4}), invalid_block);
}

TYPED_TEST_P(matcher_conformance, FullPoolOfLookalikeBlocksAllFindable) {
  // Every block holds tokens that differ only in one place, under few parents: with a weak hasher
  // they all collide, and the verifier alone tells them apart.
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  const std::uint32_t cap = h.capacity();
  for (block_id b = 0; b < cap; ++b) {
    const std::uint32_t parent = b < cap / 2 ? h.ns_node(b % 2) : b - cap / 2;
    h.insert(b, parent, {static_cast<token_id>(b), 0, 0, 0});
  }
  h.expect_consistent("full pool");
  // Same tokens under a different parent: no hit.
  EXPECT_EQ(h.find(h.ns_node(1), {0, 0, 0, 0}), invalid_block);
  EXPECT_EQ(h.find(h.ns_node(2), {0, 0, 0, 0}), invalid_block);
  // Erase leaves first in an interleaved order; everything left stays findable.
  std::vector<block_id> order;
  for (block_id b = cap / 2; b < cap; b += 2)
    order.push_back(b);
  for (block_id b = cap / 2 + 1; b < cap; b += 2)
    order.push_back(b);
  for (block_id b = 0; b < cap / 2; b += 3)
    order.push_back(b);
  for (block_id b = 0; b < cap / 2; ++b) {
    if (b % 3 != 0)
      order.push_back(b);
  }
  for (block_id b : order) {
    h.erase(b);
    EXPECT_EQ(h.find(h.parent(b), h.tokens(b)), invalid_block) << "erased block " << b;
    h.expect_consistent("after erase");
  }
}

TYPED_TEST_P(matcher_conformance, RandomInsertEraseMatchesAMultimapModel) {
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  const std::uint32_t cap = h.capacity();
  std::mt19937 rng(4242);
  // Model: block tokens -> blocks holding them (under various parents).
  std::multimap<std::vector<token_id>, block_id> model;
  std::vector<block_id> free_ids;
  for (block_id b = cap; b-- > 0;)
    free_ids.push_back(b);
  const auto random_tokens = [&] {
    // Tiny alphabet: the same token blocks recur under many parents.
    return std::vector<token_id>{static_cast<token_id>(rng() % 3), static_cast<token_id>(rng() % 2),
                                 1, 2};
  };
  const auto exists = [&](std::uint32_t parent, const std::vector<token_id>& t) {
    auto [it, end] = model.equal_range(t);
    for (; it != end; ++it) {
      if (h.parent(it->second) == parent)
        return true;
    }
    return false;
  };
  int inserts = 0, erases = 0;
  for (int step = 0; step < 1500; ++step) {
    const bool do_insert = model.empty() || (!free_ids.empty() && rng() % 100 < 55);
    if (do_insert) {
      // Parent: a namespace or a registered block.
      std::vector<std::uint32_t> parents{h.ns_node(0), h.ns_node(1), h.ns_node(2)};
      for (const auto& [t, b] : model)
        parents.push_back(b);
      const std::uint32_t parent = parents[rng() % parents.size()];
      auto toks = random_tokens();
      if (exists(parent, toks)) {
        // The cache never registers a second block for a key it can find: it finds this one.
        EXPECT_NE(h.find(parent, toks), invalid_block) << "step " << step;
        continue;
      }
      EXPECT_EQ(h.find(parent, toks), invalid_block) << "step " << step;
      const block_id b = free_ids.back();
      free_ids.pop_back();
      h.insert(b, parent, toks);
      model.emplace(toks, b);
      ++inserts;
    } else {
      // Erase a random leaf (the cache evicts children before parents).
      std::vector<std::multimap<std::vector<token_id>, block_id>::iterator> leaves;
      for (auto it = model.begin(); it != model.end(); ++it) {
        if (!h.has_child(it->second))
          leaves.push_back(it);
      }
      ASSERT_FALSE(leaves.empty());
      auto it = leaves[rng() % leaves.size()];
      const block_id b = it->second;
      h.erase(b);
      model.erase(it);
      free_ids.push_back(b);
      ++erases;
      EXPECT_EQ(h.find(h.parent(b), h.tokens(b)), invalid_block) << "step " << step;
    }
    h.expect_consistent("random step");
    if (::testing::Test::HasFailure()) {
      FAIL() << "first failure at step " << step;
    }
  }
  EXPECT_GT(inserts, 300);
  EXPECT_GT(erases, 300);
}

REGISTER_TYPED_TEST_SUITE_P(matcher_conformance, SatisfiesConcept, FindOnEmptyReturnsInvalid,
                            InsertThenFindWithAcceptingVerifier, RejectingVerifierMeansNoHit,
                            EraseThenFindReturnsInvalid, FullPoolOfLookalikeBlocksAllFindable,
                            RandomInsertEraseMatchesAMultimapModel);
// A project may include this header and instantiate only some of its suites.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(matcher_conformance);

// ---- find_partial (optional member) ---------------------------------------------------------

/// Whether @p M has `find_partial` (@ref kvkit::matcher_has_find_partial).
template <class M>
inline constexpr bool has_find_partial = matcher_has_find_partial<M>;

template <class M>
class matcher_partial_conformance : public ::testing::Test {
 protected:
  static constexpr std::uint32_t capacity = 64;
  static constexpr std::uint64_t seed = 0x5EEDull;

  /// find_partial() under @p parent for @p tokens with the cache-like score of the harness.
  static block_id partial(matcher_harness<M>& h, std::uint32_t parent,
                          const std::vector<token_id>& tokens) {
    const auto c = h.cursor_of(parent);
    return h.matcher().find_partial(c, std::span<const token_id>(tokens), h.scorer(parent, tokens),
                                    h.tree());
  }
};

TYPED_TEST_SUITE_P(matcher_partial_conformance);

TYPED_TEST_P(matcher_partial_conformance, NoChildrenMeansNoCandidate) {
  static_assert(has_find_partial<TypeParam>);
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  const std::vector<token_id> q{1, 2, 3, 4};
  int calls = 0;
  const auto score = [&](block_id) -> std::uint32_t {
    ++calls;
    return 4;
  };
  EXPECT_EQ(h.matcher().find_partial(h.cursor_of(h.ns_node(0)), std::span<const token_id>(q), score,
                                     h.tree()),
            invalid_block);
  EXPECT_EQ(calls, 0) << "no registered block to score";
  // A child elsewhere (another namespace, another parent) is not a candidate here.
  h.insert(3, h.ns_node(1), {1, 2, 3, 9});
  h.insert(4, 3, {1, 2, 3, 9});
  EXPECT_EQ(this->partial(h, h.ns_node(0), q), invalid_block);
  EXPECT_EQ(this->partial(h, 4, q), invalid_block);
  EXPECT_EQ(this->partial(h, h.ns_node(1), q), 3u);
  EXPECT_EQ(this->partial(h, 3, q), 4u);
}

TYPED_TEST_P(matcher_partial_conformance, LongestSharedRunWins) {
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  const std::uint32_t root = h.ns_node(0);
  h.insert(10, root, {1, 9, 9, 9});  // shares 1 with {1, 2, 3, 4}
  h.insert(11, root, {1, 2, 3, 8});  // shares 3
  h.insert(12, root, {1, 2, 9, 9});  // shares 2
  h.insert(13, root, {5, 2, 3, 4});  // shares 0
  h.insert(14, root, {7, 7, 7, 7});
  // The same 4 tokens under another parent: never a candidate under root.
  h.insert(20, 14, {1, 2, 3, 4});
  EXPECT_EQ(this->partial(h, root, {1, 2, 3, 4}), 11u);
  EXPECT_EQ(this->partial(h, root, {1, 2, 9, 5}), 12u);
  EXPECT_EQ(this->partial(h, root, {1, 9, 9, 0}), 10u);
  EXPECT_EQ(this->partial(h, root, {5, 2, 0, 0}), 13u);
  EXPECT_EQ(this->partial(h, root, {6, 2, 3, 4}), invalid_block) << "no shared leading token";
  EXPECT_EQ(this->partial(h, 14, {1, 2, 3, 0}), 20u);
  EXPECT_EQ(this->partial(h, 20, {1, 2, 3, 0}), invalid_block);
  // A query shorter than a block (the cache leaves the prompt's last token uncached): the run is
  // capped by the query, and a tie may go to either block.
  const block_id two = this->partial(h, root, {1, 2});
  EXPECT_TRUE(two == 11u || two == 12u) << "got " << two;
  const std::vector<token_id> one{1};
  const block_id first_only = this->partial(h, root, one);
  ASSERT_NE(first_only, invalid_block);
  EXPECT_EQ(h.scorer(root, one)(first_only), 1u);
  // Newer and older registrations compete on the score alone.
  h.insert(15, root, {1, 2, 3, 0});  // shares 3 with {1, 2, 3, 4}, like 11
  const block_id three = this->partial(h, root, {1, 2, 3, 4});
  EXPECT_TRUE(three == 11u || three == 15u) << "got " << three;
  h.insert(16, root, {1, 2, 3, 4});  // a whole-block match scores 4
  EXPECT_EQ(this->partial(h, root, {1, 2, 3, 4}), 16u);
}

TYPED_TEST_P(matcher_partial_conformance, ScoreZeroRejectsAndTheScoreDecides) {
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  const std::uint32_t root = h.ns_node(0);
  h.insert(10, root, {1, 2, 3, 8});  // shares 3 with q
  h.insert(11, root, {1, 2, 9, 9});  // shares 2
  h.insert(12, root, {1, 9, 9, 9});  // shares 1
  const std::vector<token_id> q{1, 2, 3, 4};
  auto& m = h.matcher();
  const auto at = h.cursor_of(root);
  const auto base = h.scorer(root, q);
  // The cache scores an expired or foreign block 0: the matcher must fall back to the next best.
  std::vector<block_id> rejected;
  const auto with_rejected = [&](block_id b) -> std::uint32_t {
    return std::find(rejected.begin(), rejected.end(), b) != rejected.end() ? 0 : base(b);
  };
  EXPECT_EQ(m.find_partial(at, std::span<const token_id>(q), with_rejected, h.tree()), 10u);
  rejected = {10};
  EXPECT_EQ(m.find_partial(at, std::span<const token_id>(q), with_rejected, h.tree()), 11u);
  rejected = {10, 11};
  EXPECT_EQ(m.find_partial(at, std::span<const token_id>(q), with_rejected, h.tree()), 12u);
  rejected = {10, 11, 12};
  EXPECT_EQ(m.find_partial(at, std::span<const token_id>(q), with_rejected, h.tree()),
            invalid_block);
  // Every candidate that could win must have been offered to the score.
  std::vector<block_id> offered;
  const auto recording = [&](block_id b) -> std::uint32_t {
    offered.push_back(b);
    return 0;
  };
  EXPECT_EQ(m.find_partial(at, std::span<const token_id>(q), recording, h.tree()), invalid_block);
  for (block_id b : {10u, 11u, 12u}) {
    EXPECT_NE(std::find(offered.begin(), offered.end(), b), offered.end()) << "block " << b;
  }
  // Rejection changed nothing.
  EXPECT_EQ(this->partial(h, root, q), 10u);
  h.expect_consistent("after partial lookups");
}

TYPED_TEST_P(matcher_partial_conformance, ErasedBlocksAreNeverReturned) {
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  const std::uint32_t root = h.ns_node(0);
  h.insert(10, root, {1, 2, 3, 8});
  h.insert(11, root, {1, 2, 9, 9});
  h.insert(12, 10, {4, 4, 4, 4});
  h.erase(12);
  h.erase(10);
  EXPECT_EQ(this->partial(h, root, {1, 2, 3, 4}), 11u);
  h.erase(11);
  EXPECT_EQ(this->partial(h, root, {1, 2, 3, 4}), invalid_block);
  // Reused ids under other keys.
  h.insert(10, root, {1, 2, 3, 0});
  h.insert(11, h.ns_node(1), {1, 2, 3, 4});
  EXPECT_EQ(this->partial(h, root, {1, 2, 3, 4}), 10u);
}

TYPED_TEST_P(matcher_partial_conformance, RandomTreeMatchesTheModel) {
  matcher_harness<TypeParam> h(this->capacity, this->seed);
  const std::uint32_t cap = h.capacity();
  std::mt19937 rng(777);
  std::vector<block_id> free_ids;
  for (block_id b = cap; b-- > 0;)
    free_ids.push_back(b);
  std::vector<block_id> live;
  const auto random_tokens = [&] {
    return std::vector<token_id>{static_cast<token_id>(rng() % 3), static_cast<token_id>(rng() % 3),
                                 static_cast<token_id>(rng() % 3),
                                 static_cast<token_id>(rng() % 3)};
  };
  int hits = 0, nones = 0;
  for (int step = 0; step < 1200; ++step) {
    std::vector<std::uint32_t> parents{h.ns_node(0), h.ns_node(1)};
    parents.insert(parents.end(), live.begin(), live.end());
    const std::uint32_t parent = parents[rng() % parents.size()];
    const int op = static_cast<int>(rng() % 100);
    if (op < 45 && !free_ids.empty()) {
      auto toks = random_tokens();
      if (h.find(parent, toks) != invalid_block)
        continue;  // the cache never registers twice
      const block_id b = free_ids.back();
      free_ids.pop_back();
      h.insert(b, parent, toks);
      live.push_back(b);
    } else if (op < 70 && !live.empty()) {
      std::vector<block_id> leaves;
      for (block_id b : live) {
        if (!h.has_child(b))
          leaves.push_back(b);
      }
      const block_id b = leaves[rng() % leaves.size()];
      h.erase(b);
      live.erase(std::find(live.begin(), live.end(), b));
      free_ids.push_back(b);
    } else {
      auto q = random_tokens();
      q.resize(1 + rng() % 4);
      const std::uint32_t want = h.best_partial(parent, q);
      const block_id got = this->partial(h, parent, q);
      if (want == 0) {
        EXPECT_EQ(got, invalid_block) << "step " << step;
        ++nones;
      } else {
        ASSERT_NE(got, invalid_block) << "step " << step << ": best run " << want;
        EXPECT_EQ(h.scorer(parent, q)(got), want) << "step " << step;
        ++hits;
      }
    }
    if (::testing::Test::HasFailure())
      FAIL() << "first failure at step " << step;
  }
  EXPECT_GT(hits, 60);
  EXPECT_GT(nones, 20);
}

REGISTER_TYPED_TEST_SUITE_P(matcher_partial_conformance, NoChildrenMeansNoCandidate,
                            LongestSharedRunWins, ScoreZeroRejectsAndTheScoreDecides,
                            ErasedBlocksAreNeverReturned, RandomTreeMatchesTheModel);
// A project may include this header and instantiate only some of its suites.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(matcher_partial_conformance);

}  // namespace kvkit::testing
