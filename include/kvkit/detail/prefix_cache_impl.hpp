// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The operations of kvkit::prefix_cache (admit, commit, append, fork, pin, finish, invalidation,
// expiry, observation). The parts they work on live beside this file: block_tree.hpp,
// namespace_table.hpp, sequence_table.hpp, cache_metrics.hpp. Included by
// <kvkit/prefix_cache.hpp>; not a public header.
//
// Every change of a block's state goes through a few members, so that each has one place:
//   allocate_block()   free  -> owned       (evicts when the allocator has nothing free)
//   store()            owned -> cached      (the listener's on_stored)
//   remove()           cached -> free       (the listener's on_removed, per removal_reason)
//   take_ref()/drop_ref()  references, and with them the eviction policy's candidates
//   extend_match()     where the tiers below the pool extend a pool hit (a `kvkit::tiered`
//                      listener; nothing without one)
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/tier.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <utility>

namespace kvkit {

// ---- construction ----------------------------------------------------------------------------

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
result<prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>>
prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::create(
    const cache_config& config, Storage storage, const eviction_options& eviction) {
  const kv_layout& layout = storage.layout();
  if (layout.num_blocks == 0) {
    return error{errc::invalid_config,
                 "kvkit: prefix_cache: the storage's kv_layout.num_blocks must be >= 1, got 0"};
  }
  if (layout.num_blocks > kv_layout::max_blocks) {
    return error{errc::invalid_config,
                 "kvkit: prefix_cache: the storage's kv_layout.num_blocks must be <= 2^31 "
                 "(2147483648), got " +
                     std::to_string(layout.num_blocks)};
  }
  if (layout.block_size == 0 || !std::has_single_bit(layout.block_size)) {
    return error{errc::invalid_config,
                 "kvkit: prefix_cache: the storage's kv_layout.block_size must be a power of two "
                 ">= 1 (1, 2, 4, 8, 16, ...), got " +
                     std::to_string(layout.block_size)};
  }
  if (config.miss_record && *config.miss_record > kv_layout::max_blocks) {
    return error{errc::invalid_config,
                 "kvkit: prefix_cache: cache_config.miss_record must be <= 2^31 (2147483648) "
                 "entries (0 turns the record off), got " +
                     std::to_string(*config.miss_record)};
  }
  const std::uint64_t seed = config.seed ? *config.seed : random_seed();
  const std::uint32_t num_blocks = layout.num_blocks;
  const std::uint32_t block_size = layout.block_size;
  prefix_cache cache(seed, num_blocks, block_size, std::move(storage), eviction);
  cache.misses_ = detail::miss_tracker(config.miss_record.value_or(num_blocks), num_blocks);
  // Moved into the result explicitly: nvcc's front end does not apply the implicit move of a
  // returned local to a converting constructor.
  result<prefix_cache> out{std::move(cache)};
  return out;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::prefix_cache(
    std::uint64_t seed, std::uint32_t num_blocks, std::uint32_t block_size, Storage storage,
    const eviction_options& eviction)
    : alloc_(num_blocks),
      matcher_(num_blocks, seed),
      evict_(eviction_traits::make(num_blocks, eviction)),
      storage_(std::move(storage)),
      tree_(num_blocks, block_size, seed),
      namespaces_(seed) {}

// ---- lookup (read only) ----------------------------------------------------------------------

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::span<const token_id> prefix_cache<Allocator, Matcher, Eviction, Storage,
                                       Listener>::block_tokens(std::span<const token_id> all,
                                                               std::uint32_t k) const noexcept {
  return all.subspan(std::size_t{k} << tree_.block_shift(), tree_.block_size());
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
bool prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::expired(
    block_id b) const noexcept {
  if constexpr (eviction_has_expiry<Eviction>) {
    return tree_.refs(b) == 0 && eviction_traits::expired(evict_, b);
  } else {
    (void)b;
    return false;
  }
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
bool prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::in_policy(
    block_id b) const noexcept {
  return tree_.cached(b) && tree_.refs(b) == 0 &&
         (!eviction_traits::leaves_only() || !tree_.has_children(b));
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
bool prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::verify(
    block_id b, std::uint32_t parent, std::span<const token_id> tokens) const noexcept {
  return tree_.parent(b) == parent && tree_.holds(b, tokens) && !expired(b);
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::find_namespace(
    const request_options& o, std::uint64_t key) const {
  return namespaces_.find(o.tenant_salt, o.session_id, o.extra_keys, key);
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
void prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::walk(
    std::uint32_t ns, std::span<const token_id> prompt, std::uint32_t max_blocks,
    std::vector<block_id>* hits, match_result& m) const {
  const std::uint32_t root = root_node(ns);
  m.chain = matcher_.root(root, namespaces_[ns].key);
  m.node = root;
  m.hit_blocks = 0;
  if constexpr (matcher_ops::chains_ahead && matcher_has_prefetch<Matcher>) {
    if (prefetching()) {
      walk_ahead(prompt, max_blocks, hits, m);
      return;
    }
  }
  cursor cur = m.chain;
  std::uint32_t node = root;
  std::uint32_t k = 0;
  for (; k < max_blocks; ++k) {
    const auto toks = block_tokens(prompt, k);
    cursor next = matcher_.child(cur, toks);
    const block_id b = matcher_.find(next, [&](block_id cand) { return verify(cand, node, toks); });
    if (b == invalid_block)
      break;
    matcher_ops::bind(matcher_, next, b);
    if (hits != nullptr)
      hits->push_back(b);
    cur = next;
    node = b;
  }
  m.hit_blocks = k;
  m.chain = cur;
  m.node = node;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
void prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::walk_ahead(
    std::span<const token_id> prompt, std::uint32_t max_blocks, std::vector<block_id>* hits,
    match_result& m) const {
  // Child cursors do not depend on what a lookup finds (the matcher has no bind()): compute them
  // `ahead` blocks early and let the matcher start loading their slots; half way, peek at the
  // candidate a slot names and start loading its node, tokens and eviction state. The lookups of
  // a long prompt then overlap in memory instead of waiting for each other.
  constexpr std::uint32_t ahead = 64;
  constexpr std::uint32_t peek_at = ahead / 2;
  cursor ring[ahead];
  cursor lead = m.chain;
  const std::uint32_t primed = std::min(ahead, max_blocks);
  for (std::uint32_t j = 0; j < primed; ++j) {
    lead = matcher_.child(lead, block_tokens(prompt, j));
    matcher_ops::prefetch(matcher_, lead);
    ring[j] = lead;
  }
  std::uint32_t k = 0;
  for (; k < max_blocks; ++k) {
    const cursor next = ring[k % ahead];
    if (k + ahead < max_blocks) {
      lead = matcher_.child(lead, block_tokens(prompt, k + ahead));
      matcher_ops::prefetch(matcher_, lead);
      ring[k % ahead] = lead;
    }
    if constexpr (matcher_has_peek<Matcher>) {
      if (k + peek_at < max_blocks) {
        const block_id soon = matcher_ops::peek(matcher_, ring[(k + peek_at) % ahead]);
        if (soon != invalid_block) {
          tree_.prefetch(soon);
          eviction_traits::prefetch(evict_, soon);
        }
      }
    }
    const auto toks = block_tokens(prompt, k);
    const std::uint32_t node = m.node;
    const block_id b = matcher_.find(next, [&](block_id cand) { return verify(cand, node, toks); });
    if (b == invalid_block)
      break;
    if (hits != nullptr)
      hits->push_back(b);
    m.chain = next;
    m.node = b;
  }
  m.hit_blocks = k;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
void prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::find_partial(
    std::span<const token_id> tokens, match_result& m) const {
  m.partial = invalid_block;
  m.partial_tokens = 0;
  // A one-token block shares all of its tokens or none: a whole-block lookup already decided.
  if constexpr (matcher_ops::partial_reuse) {
    if (tokens.empty() || tree_.block_size() == 1)
      return;
    const std::uint32_t parent = m.node;
    const auto score = [&](block_id cand) -> std::uint32_t {
      if (tree_.parent(cand) != parent || expired(cand))
        return 0;
      return tree_.shared_prefix(cand, tokens);
    };
    const block_id best = matcher_ops::find_partial(matcher_, m.chain, tokens, score, tree_);
    if (best == invalid_block)
      return;
    const std::uint32_t shared = score(best);
    if (shared == 0)
      return;
    m.partial = best;
    m.partial_tokens = shared;
  } else {
    (void)tokens;
  }
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::match(
    std::span<const token_id> prompt, const request_options& options) const {
  const batch_scope batch(evict_);
  if (prompt.size() <= 1)
    return 0;
  const std::uint32_t ns = find_namespace(
      options, namespaces_.key_of(options.tenant_salt, options.session_id, options.extra_keys));
  if (ns == invalid_block)
    return 0;
  const auto eligible = static_cast<std::uint32_t>((prompt.size() - 1) >> tree_.block_shift());
  match_result m;
  walk(ns, prompt, eligible, nullptr, m);
  const std::size_t start = std::size_t{m.hit_blocks} << tree_.block_shift();
  const std::size_t limit = std::min<std::size_t>(tree_.block_size(), prompt.size() - 1 - start);
  find_partial(prompt.subspan(start, limit), m);
  return static_cast<std::uint32_t>(start) + m.partial_tokens;
}

// ---- the block life cycle --------------------------------------------------------------------

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
block_event prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::describe(
    block_id b, std::uint32_t ns_index, bool with_namespace) const {
  // ns_index: the block's namespace when the caller knows it (else found from the tree).
  block_event e;
  e.block = b;
  e.key = tree_.key(b);
  e.parent_key = tree_.node_key(tree_.parent(b));
  e.tokens = tree_.tokens(b);
  std::uint32_t node = tree_.parent(b);
  if (!is_namespace_node(node, tree_.capacity()))
    e.parent_block = node;
  if (!with_namespace)
    return e;
  if (ns_index == invalid_block) {
    while (!is_namespace_node(node, tree_.capacity()))
      node = tree_.parent(node);
    ns_index = namespace_index(node, tree_.capacity());
  }
  const detail::namespace_entry& ns = namespaces_[ns_index];
  e.tenant_salt = ns.salt;
  e.session_id = ns.session;
  e.extra_keys = ns.extra_keys;
  return e;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
void prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::take_ref(
    block_id b, std::uint32_t request_class) {
  if (!tree_.cached(b)) {  // a block not cached yet is touched when it is stored
    tree_.acquire(b);
    return;
  }
  if (tree_.refs(b) == 0 && in_policy(b))
    evict_.erase(b);
  tree_.acquire(b);
  eviction_traits::touch(evict_, b, access_info{tick_, request_class});
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
void prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::drop_ref(block_id b,
                                                                             bool detached) {
  if (!tree_.release(b))
    return;
  if (!tree_.cached(b)) {  // owned -> free
    alloc_.deallocate(b);
    return;
  }
  if (detached) {
    // Of an invalidated namespace: never hit again, so freed now. It is a leaf: its children were
    // either released before it (tail first) or freed at invalidation.
    KVKIT_CHECK(!tree_.has_children(b),
                "prefix_cache: released block of an invalidated namespace has children");
    const std::uint32_t p = remove(b, removal_reason::released, true);
    metrics_.invalidated(1);
    after_removal(p);
    return;
  }
  eviction_traits::released(evict_, b);  // every released block, in release order
  if (in_policy(b))
    evict_.insert(b);
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
void prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::store(sequence_record& s,
                                                                          std::uint32_t k,
                                                                          block_id b,
                                                                          const cursor& at) {
  // The one place where a block becomes cached.
  const std::uint32_t bs = tree_.block_size();
  const std::size_t start = std::size_t{k} << tree_.block_shift();  // first token of the block
  const auto first_generated = static_cast<std::uint32_t>(
      std::clamp<std::size_t>(s.prompt_tokens, start, start + bs) - start);
  const auto toks = block_tokens(s.tokens, k);
  std::uint64_t key = 0;
  if constexpr (matcher_cursor_is_block_key<Matcher>) {
    key = at.hash;  // the matcher hashed it already
  } else {
    key = tree_.child_key(s.last_node, toks);
  }
  tree_.link(b, s.last_node, toks, first_generated, !namespaces_.indexed(s.ns), key);
  matcher_.insert(at, b);
  misses_.stored(tree_.hasher(), b, s.last_node, is_namespace_node(s.last_node, tree_.capacity()),
                 toks, !namespaces_.indexed(s.ns), key, tick_);
  eviction_traits::touch(evict_, b, access_info{tick_, s.request_class});
  if constexpr (listener_has_on_stored<Listener>) {
    if (!listener_traits<Listener>::listening(listener_))
      return;
    block_event e = describe(b, s.ns);
    if constexpr (requires { std::uint64_t{at.hash}; })
      e.matcher_key = at.hash;
    listener_.on_stored(e);
  }
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::remove(
    block_id b, removal_reason why, bool detached, std::uint32_t ns) {
  // The one place where a cached block stops being cached: unreferenced, childless, out of the
  // eviction policy's candidates. Its K/V bytes are still in the storage while the listener runs.
  if constexpr (listener_has_on_removed<Listener>) {
    if (listener_traits<Listener>::listening(listener_))
      listener_.on_removed(describe(b, ns, !listener_skips_removed_namespace<Listener>), why);
  }
  misses_.removed(b, tree_.key(b), why, tick_);
  matcher_.erase(b);
  const std::uint32_t parent = tree_.unlink(b, detached);
  eviction_traits::forget(evict_, b);
  alloc_.deallocate(b);
  return parent;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
void prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::after_removal(
    std::uint32_t parent) {
  if (is_namespace_node(parent, tree_.capacity())) {
    release_namespace_if_unused(namespace_index(parent, tree_.capacity()));
  } else if (eviction_traits::leaves_only() && in_policy(parent)) {
    evict_.insert(parent);  // became an unreferenced leaf
  }
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::evict_subtree(
    block_id root, bool root_in_policy, removal_reason why) {
  const std::uint32_t top_parent = tree_.parent(root);
  std::uint32_t freed = 0;
  std::uint32_t ns = invalid_block;  // the subtree's namespace, found once for the listener
  if constexpr (listener_has_on_removed<Listener> && !listener_skips_removed_namespace<Listener>) {
    if (listener_traits<Listener>::listening(listener_)) {
      std::uint32_t node = top_parent;
      while (!is_namespace_node(node, tree_.capacity()))
        node = tree_.parent(node);
      ns = namespace_index(node, tree_.capacity());
    }
  }
  if (tree_.has_children(root)) {
    // Free the subtree children first (reverse preorder). Withdraw the candidates first: once a
    // block's children are freed it would look like a leaf (a candidate of a leaves_only policy)
    // although it never was one.
    tree_.collect_subtree(root, subtree_);
    for (std::size_t i = 1; i < subtree_.size(); ++i) {
      if (in_policy(subtree_[i]))
        evict_.erase(subtree_[i]);
    }
    for (std::size_t i = subtree_.size() - 1; i > 0; --i) {
      KVKIT_CHECK(tree_.refs(subtree_[i]) == 0,
                  "prefix_cache: a referenced block sits under an evictable one");
      remove(subtree_[i], why, false, ns);
      ++freed;
    }
  }
  if (root_in_policy)
    evict_.erase(root);
  KVKIT_CHECK(tree_.refs(root) == 0, "prefix_cache: evicting a referenced block");
  remove(root, why, false, ns);
  ++freed;
  after_removal(top_parent);
  return freed;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
void prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::evict_one() {
  const block_id victim = evict_.victim();
  KVKIT_CHECK(victim != invalid_block,
              "prefix_cache: eviction policy returned no victim while blocks are evictable");
  KVKIT_CHECK(victim < tree_.capacity() && tree_.cached(victim) && tree_.refs(victim) == 0,
              "prefix_cache: eviction policy returned a block that is not evictable");
  metrics_.evicted(evict_subtree(victim, false, removal_reason::evicted));
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
block_id prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::allocate_block() {
  block_id b = alloc_.allocate();
  while (b == invalid_block) {
    evict_one();
    b = alloc_.allocate();
  }
  tree_.take_fresh(b);
  return b;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::extend_match(
    sequence_record& s, std::span<const token_id> prompt, std::uint32_t eligible) {
  // The tiers below the pool (a `kvkit::tiered` listener) extend the pool's match: blocks for the
  // eligible rest of the prompt are allocated (the prompt needs them anyway; room was checked),
  // the tiers load the longest continuation they hold into them, and the loaded blocks are
  // stored as cached; the blocks not loaded are given back for admit() to hand out again.
  if constexpr (detail::listener_promotes<Listener, Storage>) {
    listener_.bind(storage_, seed());
    const std::uint32_t first = s.committed_blocks;
    if (first >= eligible || !listener_.active())
      return 0;
    const std::uint32_t want = eligible - first;
    const std::uint32_t shift = tree_.block_shift();
    const std::span<std::uint64_t> keys = listener_.scratch_keys(want);
    const std::uint64_t parent = tree_.node_key(s.last_node);
    for (std::uint32_t k = 0; k < want; ++k)
      keys[k] =
          tree_.hasher().chain(k == 0 ? parent : keys[k - 1], block_tokens(prompt, first + k));
    const std::size_t base = s.table.size();
    for (std::uint32_t k = 0; k < want; ++k)
      s.table.push_back(allocate_block());
    const detail::namespace_entry& e = namespaces_[s.ns];
    const tier_chain chain{tier_namespace{e.key, e.salt, e.session, e.extra_keys}, parent, keys,
                           prompt.subspan(std::size_t{first} << shift, std::size_t{want} << shift),
                           s.request_class};
    std::uint32_t n = listener_.promote(chain, std::span<const block_id>(s.table).subspan(base));
    for (std::uint32_t k = 0; k < n; ++k) {
      const auto toks = block_tokens(prompt, first + k);
      cursor next = matcher_.child(s.chain, toks);
      const std::uint32_t at = s.last_node;
      if (matcher_.find(next, [&](block_id c) {
            return tree_.parent(c) == at && tree_.holds(c, toks);
          }) != invalid_block) {
        n = k;  // an expired copy is still indexed there: commit() replaces it
        break;
      }
      const block_id b = s.table[base + k];
      store(s, first + k, b, next);
      matcher_ops::bind(matcher_, next, b);
      s.chain = next;
      s.last_node = b;
      ++s.committed_blocks;
    }
    listener_.registered(n);
    for (std::uint32_t k = want; k-- > n;) {
      drop_ref(s.table.back(), false);
      s.table.pop_back();
    }
    return n;
  } else {
    (void)s;
    (void)prompt;
    (void)eligible;
    return 0;
  }
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::available_blocks()
    const noexcept {
  return static_cast<std::uint32_t>(alloc_.free_count()) + tree_.evictable_count();
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint64_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::block_key(
    block_id b) const noexcept {
  return b < tree_.capacity() && tree_.cached(b) ? tree_.key(b) : 0;
}

// ---- namespaces ------------------------------------------------------------------------------

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::acquire_namespace(
    const request_options& o, std::uint64_t key) {
  bool created = false;
  const std::uint32_t ns =
      namespaces_.acquire(o.tenant_salt, o.session_id, o.extra_keys, key, &created);
  if (created) {
    tree_.open_namespace(ns, key);
    misses_.namespace_opened(tree_.hasher(), tree_, namespaces_.size(),
                             [&](std::uint32_t n) { return n != ns && namespaces_.live(n); });
  }
  return ns;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
void prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::release_namespace_if_unused(
    std::uint32_t ns) {
  namespaces_.release_if_unused(ns, tree_.has_children(root_node(ns)));
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::invalidate_namespace(
    std::uint32_t ns, removal_reason why) {
  namespaces_.detach(ns);
  // Free every unreferenced subtree; referenced blocks (and so their ancestors) stay with their
  // sequences, detached, until released.
  std::vector<block_id> roots;
  std::vector<block_id> stack;
  std::uint32_t kept = 0;
  for (block_id c = tree_.first_child(root_node(ns)); c != invalid_block; c = tree_.next_sibling(c))
    stack.push_back(c);
  while (!stack.empty()) {
    const block_id b = stack.back();
    stack.pop_back();
    if (tree_.refs(b) == 0) {
      roots.push_back(b);
    } else {
      ++kept;
      misses_.detached(tree_.key(b), tick_);
      for (block_id c = tree_.first_child(b); c != invalid_block; c = tree_.next_sibling(c))
        stack.push_back(c);
    }
  }
  std::uint32_t freed = 0;
  for (block_id r : roots)
    freed += evict_subtree(r, in_policy(r), why);
  tree_.detach(kept);
  metrics_.invalidated(freed);
  release_namespace_if_unused(ns);
  return freed;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
template <class Pred>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::invalidate_if(
    Pred&& pred) {
  const operation_scope op(listener_);
  std::uint32_t freed = 0;
  for (std::uint32_t n = 0; n < namespaces_.size(); ++n) {
    const detail::namespace_entry& e = namespaces_[n];
    if (e.live && e.indexed &&
        pred(e.salt, e.session, std::span<const std::uint64_t>(e.extra_keys))) {
      freed += invalidate_namespace(n, removal_reason::invalidated);
    }
  }
  return freed;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::invalidate_tenant(
    std::uint64_t tenant_salt) {
  if constexpr (detail::listener_has_on_invalidated<Listener>)
    listener_.on_invalidated(tier_scope::tenant(tenant_salt));
  return invalidate_if([&](std::uint64_t salt, std::uint64_t, std::span<const std::uint64_t>) {
    return salt == tenant_salt;
  });
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::invalidate_session(
    std::uint64_t session_id) {
  if constexpr (detail::listener_has_on_invalidated<Listener>)
    listener_.on_invalidated(tier_scope::session(session_id));
  return invalidate_if([&](std::uint64_t, std::uint64_t session, std::span<const std::uint64_t>) {
    return session == session_id;
  });
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::invalidate_key(
    std::uint64_t key) {
  if constexpr (detail::listener_has_on_invalidated<Listener>)
    listener_.on_invalidated(tier_scope::extra_key(key));
  return invalidate_if([&](std::uint64_t, std::uint64_t, std::span<const std::uint64_t> keys) {
    return std::ranges::find(keys, key) != keys.end();
  });
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::clear() {
  const operation_scope op(listener_);
  if constexpr (listener_has_on_cleared<Listener>)
    listener_.on_cleared();
  std::uint32_t freed = 0;
  for (std::uint32_t n = 0; n < namespaces_.size(); ++n) {
    if (namespaces_.live(n) && namespaces_.indexed(n))
      freed += invalidate_namespace(n, removal_reason::cleared);
  }
  return freed;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
std::uint32_t prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::expire() {
  const operation_scope op(listener_);
  const batch_scope batch(evict_);
  std::uint32_t freed = 0;
  for (block_id b = eviction_traits::pop_expired(evict_); b != invalid_block;
       b = eviction_traits::pop_expired(evict_)) {
    freed += evict_subtree(b, false, removal_reason::expired);
  }
  metrics_.expired(freed);
  return freed;
}

// ---- operations on sequences -----------------------------------------------------------------

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
result<admission> prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::admit(
    std::span<const token_id> prompt, const request_options& options) {
  const operation_scope op(listener_);
  const batch_scope batch(evict_);
  if (prompt.empty()) {
    return error{errc::empty_input, "kvkit: admit: the prompt is empty; pass at least one token"};
  }
  if (options.request_class >= max_request_classes) {
    return error{errc::invalid_argument,
                 "kvkit: admit: request_class = " + std::to_string(options.request_class) +
                     " is out of range; accepted: 0 to " + std::to_string(max_request_classes - 1)};
  }
  const std::uint32_t shift = tree_.block_shift();
  const std::uint32_t bs = tree_.block_size();
  const std::size_t blocks_needed = (prompt.size() + bs - 1) >> shift;
  if (blocks_needed > tree_.capacity()) {
    return error{errc::out_of_blocks,
                 "kvkit: admit: a prompt of " + std::to_string(prompt.size()) + " tokens needs " +
                     std::to_string(blocks_needed) + " blocks of " + std::to_string(bs) +
                     " tokens; the cache has " + std::to_string(tree_.capacity()) + " in all"};
  }
  // Read-only phase: find the cached prefix and check that the rest fits.
  const std::uint64_t key =
      namespaces_.key_of(options.tenant_salt, options.session_id, options.extra_keys);
  const std::uint32_t found_ns = find_namespace(options, key);
  const auto eligible = static_cast<std::uint32_t>((prompt.size() - 1) >> shift);
  hits_.clear();
  match_result m;
  if (found_ns != invalid_block) {
    walk(found_ns, prompt, eligible, &hits_, m);
    const std::size_t start = std::size_t{m.hit_blocks} << shift;
    const std::size_t limit = std::min<std::size_t>(bs, prompt.size() - 1 - start);
    find_partial(prompt.subspan(start, limit), m);
  }
  detail::miss_decision miss =
      stop_reason(found_ns, key, prompt, eligible, m.hit_blocks, m.node, m.chain);
  const std::uint32_t hit = m.hit_blocks;
  const auto fresh = static_cast<std::uint32_t>(blocks_needed) - hit;
  std::uint32_t reclaimed = 0;  // hits that are evictable now and stop being so
  for (block_id b : hits_)
    reclaimed += tree_.refs(b) == 0 ? 1u : 0u;
  std::uint32_t available = available_blocks() - reclaimed;
  if (m.partial != invalid_block && tree_.refs(m.partial) == 0) {
    // The copy source is held while blocks are allocated; without room for that, skip the copy.
    if (fresh > available - 1) {
      m.partial = invalid_block;
      m.partial_tokens = 0;
    } else {
      --available;
    }
  }
  if (fresh > available) {
    return error{errc::out_of_blocks,
                 "kvkit: admit: needs " + std::to_string(fresh) + " new blocks but only " +
                     std::to_string(available) + " are free or evictable (" + std::to_string(hit) +
                     " prompt blocks hit, pool of " + std::to_string(tree_.capacity()) + ")"};
  }

  // Mutating phase: nothing below can fail.
  ++tick_;
  const std::uint32_t ns = acquire_namespace(options, key);
  std::uint32_t index = 0;
  sequence_record& s = sequences_.open(&index);
  s.ns = ns;
  s.request_class = options.request_class;
  s.tokens.assign(prompt.begin(), prompt.end());
  bool conversational = false;
  s.table.reserve(blocks_needed);
  const bool pipelined = prefetching();
  for (std::size_t i = 0; i < hits_.size(); ++i) {
    if (pipelined && i + 16 < hits_.size()) {
      tree_.prefetch_node(hits_[i + 16]);
      eviction_traits::prefetch(evict_, hits_[i + 16]);
    }
    const block_id b = hits_[i];
    take_ref(b, options.request_class);
    conversational |= tree_.first_generated(b) < bs;
    s.table.push_back(b);
  }
  if (hit > 0) {
    s.chain = m.chain;
    s.last_node = m.node;
  } else {
    s.last_node = root_node(ns);
    s.chain = matcher_.root(s.last_node, key);
  }
  s.committed_blocks = hit;
  s.prompt_tokens = static_cast<std::uint32_t>(prompt.size());
  if (m.partial != invalid_block)  // held before anything is allocated: no eviction takes it
    take_ref(m.partial, options.request_class);
  if constexpr (detail::listener_promotes<Listener, Storage>) {
    while (alloc_.free_count() < fresh && tree_.evictable_count() != 0)
      evict_one();  // the same victims as later; the tiers store them all before the promotion
  }
  const std::uint32_t promoted = extend_match(s, prompt, eligible);
  if (promoted != 0 && m.partial != invalid_block) {  // relative to the pool's match: unused
    drop_ref(m.partial, false);
    m.partial = invalid_block;
    m.partial_tokens = 0;
  }
  for (std::uint32_t i = promoted; i < fresh; ++i)
    s.table.push_back(allocate_block());
  const std::uint32_t hit_blocks = hit + promoted;
  std::uint32_t cached_tokens = hit_blocks << shift;
  if (m.partial != invalid_block) {
    storage_.copy_block(m.partial, s.table[hit]);
    conversational |= tree_.first_generated(m.partial) < m.partial_tokens;
    drop_ref(m.partial, false);
    cached_tokens += m.partial_tokens;
  }
  s.cached_tokens = cached_tokens;
  s.computed = cached_tokens;
  if (promoted != 0)  // a tier extended the match: it stopped further on
    miss = stop_reason(ns, key, prompt, eligible, hit_blocks, s.last_node, s.chain);
  miss = detail::settle(miss, prompt.size(), cached_tokens);

  detail::admission_record record;
  record.prompt_tokens = prompt.size();
  record.cached_tokens = cached_tokens;
  record.eligible_blocks = eligible;
  record.hit_blocks = hit_blocks;
  record.partial_block = m.partial != invalid_block;
  record.conversational = conversational;
  record.request_class = options.request_class;
  record.reason = miss.info.reason;
  record.other_namespace = miss.other_namespace;
  metrics_.admitted(record);
  admission a{sequence_id{index, s.generation}, request_stats{s.prompt_tokens, cached_tokens},
              hit_blocks, fresh - promoted, miss.info};
  if constexpr (detail::listener_promotes<Listener, Storage>)
    a.tier_cached_tokens = listener_.promoted_tokens();
  return a;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
result<commit_info> prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::commit(
    sequence_id seq, std::uint32_t num_computed_tokens) {
  const operation_scope op(listener_);
  const batch_scope batch(evict_);
  auto found = sequences_.lookup(seq, "commit");
  if (!found.ok())
    return found.error();
  sequence_record& s = **found;
  if (num_computed_tokens > s.tokens.size()) {
    return error{errc::invalid_argument,
                 "kvkit: commit: num_computed_tokens = " + std::to_string(num_computed_tokens) +
                     " exceeds the sequence's " + std::to_string(s.tokens.size()) +
                     " tokens; accepted: " + std::to_string(s.computed) + " to " +
                     std::to_string(s.tokens.size())};
  }
  if (num_computed_tokens < s.computed) {
    return error{errc::invalid_argument,
                 "kvkit: commit: num_computed_tokens = " + std::to_string(num_computed_tokens) +
                     " is below the " + std::to_string(s.computed) +
                     " tokens already computed; accepted: " + std::to_string(s.computed) + " to " +
                     std::to_string(s.tokens.size())};
  }
  ++tick_;
  s.computed = num_computed_tokens;
  commit_info info;
  const std::uint32_t full = num_computed_tokens >> tree_.block_shift();
  const bool detached = !namespaces_.indexed(s.ns);
  // Child cursors ahead of the lookups, in a large pool (matchers whose cursors do not depend on
  // the lookups; see walk_ahead()).
  constexpr std::uint32_t ahead =
      matcher_ops::chains_ahead && matcher_has_prefetch<Matcher> ? 16 : 0;
  cursor ring[ahead == 0 ? 1 : ahead];
  cursor lead = s.chain;
  const bool pipelined = ahead != 0 && prefetching();
  if (pipelined) {
    for (std::uint32_t j = s.committed_blocks; j < std::min(full, s.committed_blocks + ahead);
         ++j) {
      lead = matcher_.child(lead, block_tokens(s.tokens, j));
      matcher_ops::prefetch(matcher_, lead);
      ring[j % ahead] = lead;
    }
  }
  bool parent_is_new = false;  // the previous block was stored by this loop
  for (std::uint32_t k = s.committed_blocks; k < full; ++k) {
    const auto toks = block_tokens(s.tokens, k);
    cursor next;
    if (pipelined) {
      next = ring[k % ahead];
      if (k + ahead < full) {
        lead = matcher_.child(lead, block_tokens(s.tokens, k + ahead));
        matcher_ops::prefetch(matcher_, lead);
        ring[k % ahead] = lead;
      }
    } else {
      next = matcher_.child(s.chain, toks);
    }
    const std::uint32_t parent = s.last_node;
    const auto same = [&](block_id cand) {
      return tree_.parent(cand) == parent && tree_.holds(cand, toks);
    };
    // A block stored a moment ago in this loop has no children yet (it was private to this
    // sequence until then), so the lookup for its child cannot find anything: skip it.
    block_id existing = parent_is_new ? invalid_block : matcher_.find(next, same);
    if (existing != invalid_block && expired(existing)) {
      // An expired copy of this very block: retire it (with its expired subtree) and store ours.
      metrics_.expired(evict_subtree(existing, in_policy(existing), removal_reason::expired));
      existing = invalid_block;
    }
    block_id b = s.table[k];
    if (existing == b) {
      // Stored meanwhile by a fork sibling that shares this block.
    } else if (existing != invalid_block) {
      take_ref(existing, s.request_class);
      drop_ref(b, detached);
      s.table[k] = existing;
      b = existing;
      ++info.deduplicated_blocks;
    } else {
      store(s, k, b, next);
      ++info.registered_blocks;
    }
    parent_is_new = existing == invalid_block;
    matcher_ops::bind(matcher_, next, b);
    s.chain = next;
    s.last_node = b;
    ++s.committed_blocks;
  }
  metrics_.committed(info.registered_blocks, info.deduplicated_blocks);
  return info;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
result<commit_info> prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::commit(
    sequence_id seq) {
  auto found = sequences_.lookup(seq, "commit");
  if (!found.ok())
    return found.error();
  return commit(seq, static_cast<std::uint32_t>((*found)->tokens.size()));
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
status prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::append(
    sequence_id seq, std::span<const token_id> tokens) {
  const operation_scope op(listener_);
  const batch_scope batch(evict_);
  auto found = sequences_.lookup(seq, "append");
  if (!found.ok())
    return found.error();
  sequence_record& s = **found;
  if (tokens.empty()) {
    return error{errc::empty_input, "kvkit: append: no tokens given; pass at least one token"};
  }
  const std::uint32_t bs = tree_.block_size();
  const std::size_t new_len = s.tokens.size() + tokens.size();
  const std::size_t blocks = (new_len + bs - 1) >> tree_.block_shift();
  // A shared, partially filled last block (after fork) is copied before it is written.
  const bool copy_tail = (s.tokens.size() & (bs - 1)) != 0 && tree_.refs(s.table.back()) > 1;
  const std::size_t fresh = blocks - s.table.size() + (copy_tail ? 1 : 0);
  if (fresh > available_blocks()) {
    return error{errc::out_of_blocks,
                 "kvkit: append: " + std::to_string(tokens.size()) + " tokens need " +
                     std::to_string(fresh) + " new blocks but only " +
                     std::to_string(available_blocks()) + " are free or evictable (pool of " +
                     std::to_string(tree_.capacity()) + ")"};
  }
  if (copy_tail) {
    const block_id old = s.table.back();
    const block_id copy = allocate_block();
    storage_.copy_block(old, copy);
    drop_ref(old, false);
    s.table.back() = copy;
  }
  while (s.table.size() < blocks)
    s.table.push_back(allocate_block());
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
  metrics_.appended(tokens.size(), copy_tail);
  return {};
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
result<sequence_id> prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::fork(
    sequence_id seq) {
  const operation_scope op(listener_);
  const batch_scope batch(evict_);
  auto found = sequences_.lookup(seq, "fork");
  if (!found.ok())
    return found.error();
  if ((*found)->computed != (*found)->tokens.size()) {
    return error{errc::invalid_argument,
                 "kvkit: fork: " + std::to_string((*found)->tokens.size() - (*found)->computed) +
                     " tokens of the sequence are not computed; commit() all of them first"};
  }
  ++tick_;
  std::uint32_t index = 0;
  sequence_record& s = sequences_.open(&index);
  const sequence_record& from = sequences_[seq.index];  // after open(): the table may have grown
  s.ns = from.ns;
  s.request_class = from.request_class;
  s.tokens = from.tokens;
  s.table = from.table;
  s.computed = from.computed;
  s.committed_blocks = from.committed_blocks;
  s.prompt_tokens = from.prompt_tokens;
  s.cached_tokens = from.cached_tokens;
  s.last_node = from.last_node;
  s.chain = from.chain;
  namespaces_.add_ref(s.ns);
  for (block_id b : s.table)
    take_ref(b, s.request_class);
  metrics_.forked();
  return sequence_id{index, s.generation};
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
result<pin_info> prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::pin(
    std::span<const token_id> prompt, const request_options& options) {
  const operation_scope op(listener_);
  const batch_scope batch(evict_);
  if (prompt.empty()) {
    return error{errc::empty_input, "kvkit: pin: the prompt is empty; pass at least one token"};
  }
  if (options.request_class >= max_request_classes) {
    return error{errc::invalid_argument,
                 "kvkit: pin: request_class = " + std::to_string(options.request_class) +
                     " is out of range; accepted: 0 to " + std::to_string(max_request_classes - 1)};
  }
  const std::uint32_t shift = tree_.block_shift();
  const std::uint64_t key =
      namespaces_.key_of(options.tenant_salt, options.session_id, options.extra_keys);
  const std::uint32_t ns = find_namespace(options, key);
  hits_.clear();
  match_result m;
  if (ns != invalid_block)
    walk(ns, prompt, static_cast<std::uint32_t>(prompt.size() >> shift), &hits_, m);
  if (hits_.empty()) {
    return error{errc::invalid_argument,
                 "kvkit: pin: no whole block of this prompt is cached under these keys; warm it "
                 "first (admit, prefill, commit)"};
  }
  ++tick_;
  std::uint32_t index = 0;
  sequence_record& s = sequences_.open(&index);
  s.pin = true;
  s.ns = ns;
  namespaces_.add_ref(ns);
  s.request_class = options.request_class;
  const auto n = static_cast<std::uint32_t>(hits_.size());
  s.tokens.assign(prompt.begin(), prompt.begin() + (std::ptrdiff_t{n} << shift));
  for (block_id b : hits_) {
    take_ref(b, options.request_class);
    s.table.push_back(b);
  }
  s.computed = s.cached_tokens = n << shift;
  s.prompt_tokens = 0;
  s.committed_blocks = n;
  s.chain = m.chain;
  s.last_node = m.node;
  metrics_.pinned();
  return pin_info{sequence_id{index, s.generation}, s.computed};
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
status prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::finish(sequence_id seq) {
  const operation_scope op(listener_);
  const batch_scope batch(evict_);
  auto found = sequences_.lookup(seq, "finish");
  if (!found.ok())
    return found.error();
  sequence_record& s = **found;
  const std::uint32_t ns = s.ns;
  const bool detached = !namespaces_.indexed(ns);
  // Tail first: children become evictable before their parents. Start loading the state of the
  // blocks a few releases ahead: a long table's blocks are spread over the pool.
  constexpr std::size_t ahead = 32;
  const bool pipelined = prefetching();
  const std::size_t n = s.table.size();
  for (std::size_t i = n; i-- > 0;) {
    if (pipelined && i >= ahead) {
      tree_.prefetch_node(s.table[i - ahead]);
      eviction_traits::prefetch(evict_, s.table[i - ahead]);
    }
    drop_ref(s.table[i], detached);
  }
  sequences_.close(seq.index);
  namespaces_.drop_ref(ns);
  release_namespace_if_unused(ns);
  metrics_.finished();
  return {};
}

// ---- observation -----------------------------------------------------------------------------

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
result<sequence_view> prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::sequence(
    sequence_id seq) const {
  auto found = sequences_.lookup(seq, "sequence");
  if (!found.ok())
    return found.error();
  const auto& s = **found;
  return sequence_view{s.tokens, s.table, s.computed,
                       request_stats{s.prompt_tokens, s.cached_tokens}};
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
class_stats prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::stats(
    std::uint32_t request_class) const {
  return metrics_.of_class(request_class);
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
cache_stats prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::stats() const {
  cache_stats st = metrics_.counters();
  st.blocks_total = tree_.capacity();
  st.blocks_free = static_cast<std::uint32_t>(alloc_.free_count());
  st.blocks_cached = tree_.cached_count() - tree_.detached_count();
  st.blocks_referenced = tree_.referenced_count();
  st.blocks_evictable = tree_.evictable_count();
  st.active_sequences = sequences_.active_count();
  st.metadata_bytes = tree_.metadata_bytes() + policy_traits<Allocator>::metadata_bytes(alloc_) +
                      policy_traits<Matcher>::metadata_bytes(matcher_) +
                      policy_traits<Eviction>::metadata_bytes(evict_);
  st.token_bytes = tree_.token_bytes();
  st.kv_bytes = storage_.bytes();
  st.miss_record_bytes = misses_.bytes();
  return st;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
status prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::check_invariants() const {
  const auto fail = [](std::string what) {
    return status{error{errc::invalid_argument, "kvkit: invariant violated: " + std::move(what)}};
  };
  // The tree's own invariants: links, keys, reachability, gauges.
  if (status t = tree_.verify([&](std::uint32_t ns) { return namespaces_.live(ns); },
                              [&](std::uint32_t ns) { return !namespaces_.indexed(ns); });
      !t.ok()) {
    return t;
  }
  const std::uint32_t capacity = tree_.capacity();
  const std::uint32_t shift = tree_.block_shift();
  const std::uint32_t bs = tree_.block_size();
  const auto same_tokens = [&](block_id b, const std::vector<token_id>& toks, std::uint32_t k) {
    return tree_.holds(b, std::span<const token_id>(toks).subspan(std::size_t{k} << shift, bs));
  };
  // Sequences: block tables agree with tokens, committed blocks chain, references are theirs.
  std::vector<std::uint32_t> holders(capacity, 0);
  std::uint32_t active = 0;
  for (std::uint32_t i = 0; i < sequences_.size(); ++i) {
    const auto& s = sequences_[i];
    if (!s.active)
      continue;
    ++active;
    if (!namespaces_.live(s.ns))
      return fail("sequence " + std::to_string(i) + " in a dead namespace");
    const std::size_t need = (s.tokens.size() + bs - 1) >> shift;
    if (s.table.size() != need) {
      return fail("sequence " + std::to_string(i) + " has " + std::to_string(s.table.size()) +
                  " blocks for " + std::to_string(s.tokens.size()) + " tokens");
    }
    if (s.computed > s.tokens.size() || s.committed_blocks > (s.computed >> shift)) {
      return fail("sequence " + std::to_string(i) + " has inconsistent computed counts");
    }
    std::uint32_t parent = root_node(s.ns);
    for (std::uint32_t k = 0; k < s.table.size(); ++k) {
      const block_id b = s.table[k];
      if (b >= capacity)
        return fail("sequence holds an out-of-range block");
      ++holders[b];
      if (k < s.committed_blocks) {
        if (!tree_.cached(b))
          return fail("committed block " + std::to_string(b) + " is not cached");
        if (tree_.parent(b) != parent) {
          return fail("sequence " + std::to_string(i) + " committed blocks do not form a chain");
        }
        if (!same_tokens(b, s.tokens, k)) {
          return fail("cached block " + std::to_string(b) + " tokens differ from its sequence's");
        }
        parent = b;
      } else if (tree_.cached(b)) {
        if (!same_tokens(b, s.tokens, k)) {  // stored by a fork sibling
          return fail("cached block " + std::to_string(b) + " tokens differ from its sequence's");
        }
      }
    }
    if (s.last_node != parent)
      return fail("sequence " + std::to_string(i) + " has a stale chain position");
  }
  if (active != sequences_.active_count())
    return fail("active sequence count is off");
  // References are exactly the block tables; free blocks are the allocator's; candidates are
  // the eviction policy's.
  std::uint32_t n_free = 0, n_candidates = 0;
  for (block_id b = 0; b < capacity; ++b) {
    if (tree_.refs(b) != holders[b]) {
      return fail("block " + std::to_string(b) + " has reference count " +
                  std::to_string(tree_.refs(b)) + " but " + std::to_string(holders[b]) +
                  " holders");
    }
    n_free += tree_.free(b) ? 1u : 0u;
    n_candidates += in_policy(b) ? 1u : 0u;
  }
  if (n_free != alloc_.free_count()) {
    return fail(std::to_string(n_free) + " free blocks but the allocator has " +
                std::to_string(alloc_.free_count()));
  }
  if (n_candidates != evict_.size()) {
    return fail(std::to_string(n_candidates) + " eviction candidates but the policy holds " +
                std::to_string(evict_.size()));
  }
  // The matcher finds every cached block from its namespace root, and no other block for it.
  std::vector<std::pair<block_id, cursor>> stack;
  for (std::uint32_t n = 0; n < namespaces_.size(); ++n) {
    if (!namespaces_.live(n))
      continue;
    const cursor root = matcher_.root(root_node(n), namespaces_[n].key);
    for (block_id c = tree_.first_child(root_node(n)); c != invalid_block;
         c = tree_.next_sibling(c)) {
      stack.emplace_back(c, root);
    }
    while (!stack.empty()) {
      const block_id b = stack.back().first;
      const cursor parent_cursor = stack.back().second;
      stack.pop_back();
      const auto toks = tree_.tokens(b);
      cursor cur = matcher_.child(parent_cursor, toks);
      const std::uint32_t parent = tree_.parent(b);
      const block_id found = matcher_.find(cur, [&](block_id cand) {
        return tree_.parent(cand) == parent && tree_.holds(cand, toks);
      });
      if (found != b) {
        return fail("cached block " + std::to_string(b) + " is not reachable through the matcher");
      }
      matcher_ops::bind(matcher_, cur, b);
      for (block_id c = tree_.first_child(b); c != invalid_block; c = tree_.next_sibling(c))
        stack.emplace_back(c, cur);
    }
  }
  return {};
}

}  // namespace kvkit
