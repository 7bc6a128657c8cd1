// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Why a prefix_cache match stopped (kvkit::miss_reason): the miss side of admit() and
// explain_miss(). Included by <kvkit/prefix_cache.hpp>; not a public header.
//
// The reason is decided once per request, for the block where the match stopped (block k, the
// first eligible block not found under the request's keys), in this order:
//   1. k is past the eligible blocks: the rest is the prompt's last block (partial_last_block),
//      or, when every prompt token but the last came from the cache, nothing missed (full_hit).
//   2. A block holding block k's tokens under the same parent is cached but expired (a time to
//      live ran out and expire() has not freed it yet): expired, age 0.
//   3. The removal record remembers block k's chained key (the key it would have under the
//      request's keys): evicted, invalidated or expired, with the policy's name and the ticks
//      since the removal.
//   4. The content index (kept once a second namespace opens) holds block k's
//      namespace-independent content key: a block with the same tokens and token prefix is
//      cached under other keys (before the index is kept: the one other namespace is looked up
//      directly). The request is told never_stored; the statistics count other_namespace.
//   5. never_stored.
// Steps 3 and 4 need cache_config::miss_record (0 turns them off). Nothing here runs on a hit
// of every eligible block beyond step 1.
#pragma once

#include <kvkit/detail/miss_record.hpp>
#include <kvkit/prefix_cache.hpp>

#include <algorithm>

namespace kvkit {

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
detail::miss_decision prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::stop_reason(
    std::uint32_t ns, std::uint64_t ns_key, std::span<const token_id> prompt,
    std::uint32_t eligible, std::uint32_t k, std::uint32_t node, const cursor& chain) const {
  detail::miss_decision d;
  d.info.block = k;
  if (k >= eligible) {
    d.info.reason = miss_reason::partial_last_block;
    return d;
  }
  const auto toks = block_tokens(prompt, k);
  if constexpr (eviction_has_expiry<Eviction>) {
    if (ns != invalid_block) {
      const cursor next = matcher_.child(chain, toks);
      const block_id b = matcher_.find(
          next, [&](block_id c) { return tree_.parent(c) == node && tree_.holds(c, toks); });
      if (b != invalid_block && expired(b)) {
        d.info.reason = miss_reason::expired;
        d.info.policy = policy_traits<Eviction>::name();
        return d;
      }
    }
  } else {
    (void)chain;
  }
  if (!misses_.enabled()) {
    d.info.reason = miss_reason::never_stored;
    return d;
  }
  const bool at_root = ns == invalid_block || is_namespace_node(node, tree_.capacity());
  const std::uint64_t key = tree_.hasher().chain(at_root ? ns_key : tree_.key(node), toks);
  if (const detail::removed_entry* e = misses_.record().find(key); e != nullptr) {
    d.info.reason = e->reason();
    if (d.info.reason != miss_reason::invalidated)
      d.info.policy = policy_traits<Eviction>::name();
    d.info.age_ticks = tick_ - e->when();
    return d;
  }
  d.info.reason = miss_reason::never_stored;
  if (!misses_.contents().active()) {
    // At most one namespace so far (the index is kept from the second on). If it is not the
    // request's (whose namespace opens with this admission), look the block up in it directly.
    if (ns == invalid_block && namespaces_.size() == 1 && namespaces_.live(0)) {
      match_result other;
      walk(0, prompt, k + 1, nullptr, other);
      d.other_namespace = other.hit_blocks == k + 1;
    }
    return d;
  }
  const std::uint64_t content = detail::miss_tracker::content_key(
      tree_.hasher(), at_root ? detail::content_index::root : misses_.contents().key(node), toks);
  d.other_namespace = misses_.contents().contains(content);
  return d;
}

template <class Allocator, class Matcher, class Eviction, class Storage, class Listener>
miss_info prefix_cache<Allocator, Matcher, Eviction, Storage, Listener>::explain_miss(
    std::span<const token_id> prompt, const request_options& options) const {
  const batch_scope batch(evict_);
  if (prompt.empty())
    return miss_info{miss_reason::partial_last_block, 0, {}, 0};
  const std::uint32_t shift = tree_.block_shift();
  const std::uint64_t key =
      namespaces_.key_of(options.tenant_salt, options.session_id, options.extra_keys);
  const std::uint32_t ns = find_namespace(options, key);
  const auto eligible = static_cast<std::uint32_t>((prompt.size() - 1) >> shift);
  match_result m;
  if (ns != invalid_block) {
    walk(ns, prompt, eligible, nullptr, m);
    const std::size_t start = std::size_t{m.hit_blocks} << shift;
    const std::size_t limit = std::min<std::size_t>(tree_.block_size(), prompt.size() - 1 - start);
    find_partial(prompt.subspan(start, limit), m);
  }
  const std::size_t blocks_needed = (prompt.size() + tree_.block_size() - 1) >> shift;
  if (blocks_needed > tree_.capacity())
    return miss_info{miss_reason::pool_too_small, m.hit_blocks, {}, 0};
  const detail::miss_decision d =
      stop_reason(ns, key, prompt, eligible, m.hit_blocks, m.node, m.chain);
  return detail::settle(d, prompt.size(), (m.hit_blocks << shift) + m.partial_tokens).info;
}

}  // namespace kvkit
