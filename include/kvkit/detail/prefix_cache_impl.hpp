// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Implementation of kvkit::prefix_cache. Included by <kvkit/prefix_cache.hpp>; not a public header.
#pragma once

#include <kvkit/concepts.hpp>
#include <kvkit/prefix_cache.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <utility>

namespace kvkit {

#define KVKIT_PC_TEMPLATE template <class Allocator, class Matcher, class Eviction, class Storage>
#define KVKIT_PC prefix_cache<Allocator, Matcher, Eviction, Storage>

namespace detail {
inline std::string cat_u(const char* a, std::uint64_t v) {
  return a + std::to_string(v);
}

// Brackets one cache operation for an eviction policy with `begin_batch()` / `end_batch()`
// (the time-based ones read their clock once per operation instead of once per block).
template <class E>
class eviction_batch {
 public:
  explicit eviction_batch(const E& e) : e_(e) {
    if constexpr (requires { e.begin_batch(); })
      e_.begin_batch();
  }
  ~eviction_batch() {
    if constexpr (requires { e_.end_batch(); })
      e_.end_batch();
  }
  eviction_batch(const eviction_batch&) = delete;
  eviction_batch& operator=(const eviction_batch&) = delete;

 private:
  const E& e_;
};
}  // namespace detail

// ---- construction ----------------------------------------------------------------------------

KVKIT_PC_TEMPLATE
result<KVKIT_PC> KVKIT_PC::create(const cache_config& config, Storage storage,
                                  const eviction_options& eviction) {
  if (config.num_blocks == 0) {
    return error{errc::invalid_config, "kvkit: cache_config.num_blocks must be >= 1, got 0"};
  }
  if (config.num_blocks > kv_layout::max_blocks) {
    return error{errc::invalid_config,
                 detail::cat_u("kvkit: cache_config.num_blocks must be <= 2^31 (2147483648), got ",
                               config.num_blocks)};
  }
  if (config.block_size == 0 || !std::has_single_bit(config.block_size)) {
    return error{errc::invalid_config,
                 detail::cat_u("kvkit: cache_config.block_size must be a power of two >= 1 "
                               "(1, 2, 4, 8, 16, ...), got ",
                               config.block_size)};
  }
  const kv_layout& layout = storage.layout();
  if (layout.block_size != config.block_size) {
    return error{errc::layout_mismatch,
                 "kvkit: storage layout block_size = " + std::to_string(layout.block_size) +
                     " differs from cache_config.block_size = " +
                     std::to_string(config.block_size) + "; they must be equal"};
  }
  if (layout.num_blocks != config.num_blocks) {
    return error{errc::layout_mismatch,
                 "kvkit: storage layout num_blocks = " + std::to_string(layout.num_blocks) +
                     " differs from cache_config.num_blocks = " +
                     std::to_string(config.num_blocks) + "; they must be equal"};
  }
  const std::uint64_t seed = config.seed ? *config.seed : random_seed();
  return KVKIT_PC(config, seed, std::move(storage), eviction);
}

namespace detail {
template <class E, class O>
E make_eviction(std::uint32_t capacity, const O& options) {
  if constexpr (std::constructible_from<E, std::uint32_t, const O&>) {
    return E(capacity, options);
  } else {
    (void)options;
    return E(capacity);
  }
}
}  // namespace detail

KVKIT_PC_TEMPLATE
KVKIT_PC::prefix_cache(const cache_config& config, std::uint64_t seed, Storage storage,
                       const eviction_options& eviction)
    : num_blocks_(config.num_blocks),
      block_size_(config.block_size),
      block_shift_(static_cast<std::uint32_t>(std::countr_zero(config.block_size))),
      ns_hasher_(seed),
      alloc_(config.num_blocks),
      matcher_(config.num_blocks, seed),
      evict_(detail::make_eviction<Eviction>(config.num_blocks, eviction)),
      storage_(std::move(storage)),
      ref_(config.num_blocks, 0),
      parent_(config.num_blocks, invalid_block),
      first_child_(config.num_blocks, invalid_block),
      next_sibling_(config.num_blocks, invalid_block),
      prev_sibling_(config.num_blocks, invalid_block),
      state_(config.num_blocks, block_state::free),
      first_generated_(config.num_blocks, config.block_size),
      tokens_(std::size_t{config.num_blocks} * config.block_size, 0) {}

// ---- namespaces ------------------------------------------------------------------------------

KVKIT_PC_TEMPLATE
std::uint64_t KVKIT_PC::ns_key(const request_options& o) const noexcept {
  return ns_hasher_.root(o.tenant_salt, o.session_id, o.extra_keys);
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::find_ns(const request_options& o, std::uint64_t key) const {
  auto [it, end] = ns_index_.equal_range(key);
  for (; it != end; ++it) {
    const ns_entry& e = ns_[it->second];
    if (e.salt == o.tenant_salt && e.session == o.session_id &&
        std::ranges::equal(e.extra_keys, o.extra_keys)) {
      return it->second;
    }
  }
  return invalid_block;
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::acquire_ns(const request_options& o, std::uint64_t key) {
  std::uint32_t idx = find_ns(o, key);
  if (idx == invalid_block) {
    if (!free_ns_.empty()) {
      idx = free_ns_.back();
      free_ns_.pop_back();
    } else {
      idx = static_cast<std::uint32_t>(ns_.size());
      ns_.emplace_back();
    }
    ns_entry& e = ns_[idx];
    e.salt = o.tenant_salt;
    e.session = o.session_id;
    e.extra_keys.assign(o.extra_keys.begin(), o.extra_keys.end());
    e.key = key;
    e.first_child = invalid_block;
    e.refs = 0;
    e.live = true;
    e.indexed = true;
    ns_index_.emplace(key, idx);
  }
  ++ns_[idx].refs;
  return idx;
}

KVKIT_PC_TEMPLATE
void KVKIT_PC::maybe_release_ns(std::uint32_t ns) {
  ns_entry& e = ns_[ns];
  // Already released (an invalidation can get here twice), still used, or still holding blocks.
  if (!e.live || e.refs != 0 || e.first_child != invalid_block)
    return;
  if (e.indexed) {
    auto [it, end] = ns_index_.equal_range(e.key);
    for (; it != end; ++it) {
      if (it->second == ns) {
        ns_index_.erase(it);
        break;
      }
    }
  }
  e.live = false;
  e.indexed = false;
  e.extra_keys.clear();
  free_ns_.push_back(ns);
}

KVKIT_PC_TEMPLATE
block_id& KVKIT_PC::child_head(std::uint32_t node) noexcept {
  return node < num_blocks_ ? first_child_[node] : ns_[node - num_blocks_].first_child;
}

// ---- matching --------------------------------------------------------------------------------

KVKIT_PC_TEMPLATE
std::span<const token_id> KVKIT_PC::block_tokens(std::span<const token_id> all,
                                                 std::uint32_t k) const noexcept {
  return all.subspan(std::size_t{k} << block_shift_, block_size_);
}

KVKIT_PC_TEMPLATE
bool KVKIT_PC::is_expired(block_id b) const noexcept {
  if constexpr (requires { evict_.expired(b); }) {
    return ref_[b] == 0 && evict_.expired(b);
  } else {
    (void)b;
    return false;
  }
}

KVKIT_PC_TEMPLATE
bool KVKIT_PC::in_policy(block_id b) const noexcept {
  return state_[b] == block_state::cached && ref_[b] == 0 &&
         (!traits::leaves_only() || first_child_[b] == invalid_block);
}

KVKIT_PC_TEMPLATE
bool KVKIT_PC::verify(block_id b, std::uint32_t parent,
                      std::span<const token_id> tokens) const noexcept {
  return parent_[b] == parent &&
         std::memcmp(tokens_.data() + (std::size_t{b} << block_shift_), tokens.data(),
                     tokens.size_bytes()) == 0 &&
         !is_expired(b);
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::walk(std::uint32_t ns, std::span<const token_id> prompt,
                             std::uint32_t max_blocks, std::vector<block_id>* hits, cursor* end,
                             std::uint32_t* end_node) const {
  const std::uint32_t root_node = num_blocks_ + ns;
  cursor cur = matcher_.root(root_node, ns_[ns].key);
  std::uint32_t node = root_node;
  std::uint32_t k = 0;
  for (; k < max_blocks; ++k) {
    const auto toks = block_tokens(prompt, k);
    cursor next = matcher_.child(cur, toks);
    const block_id b = matcher_.find(next, [&](block_id cand) { return verify(cand, node, toks); });
    if (b == invalid_block)
      break;
    if constexpr (requires { matcher_.bind(next, b); })
      matcher_.bind(next, b);
    if (hits != nullptr)
      hits->push_back(b);
    cur = next;
    node = b;
  }
  if (end != nullptr)
    *end = cur;
  if (end_node != nullptr)
    *end_node = node;
  return k;
}

KVKIT_PC_TEMPLATE
typename KVKIT_PC::partial_match KVKIT_PC::find_partial(const cursor& at, std::uint32_t parent,
                                                        std::span<const token_id> tokens) const {
  partial_match best;
  if constexpr (requires(std::uint32_t(*score)(block_id)) {
                  matcher_.find_partial(at, tokens, score);
                }) {
    if (tokens.empty())
      return best;
    const auto score = [&](block_id cand) -> std::uint32_t {
      if (parent_[cand] != parent || is_expired(cand))
        return 0;
      const token_id* stored = tokens_.data() + (std::size_t{cand} << block_shift_);
      std::uint32_t n = 0;
      while (n < tokens.size() && stored[n] == tokens[n])
        ++n;
      return n;
    };
    best.source = matcher_.find_partial(at, tokens, score);
    if (best.source != invalid_block)
      best.tokens = score(best.source);
    if (best.tokens == 0)
      best.source = invalid_block;
  } else {
    (void)at;
    (void)parent;
    (void)tokens;
  }
  return best;
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::match(std::span<const token_id> prompt,
                              const request_options& options) const {
  const detail::eviction_batch<Eviction> batch(evict_);
  if (prompt.size() <= 1)
    return 0;
  const std::uint32_t ns = find_ns(options, ns_key(options));
  if (ns == invalid_block)
    return 0;
  const auto eligible = static_cast<std::uint32_t>((prompt.size() - 1) >> block_shift_);
  cursor end{};
  std::uint32_t node = 0;
  const std::uint32_t hit = walk(ns, prompt, eligible, nullptr, &end, &node);
  const std::size_t start = std::size_t{hit} << block_shift_;
  const std::size_t limit = std::min<std::size_t>(block_size_, prompt.size() - 1 - start);
  const partial_match partial = find_partial(end, node, prompt.subspan(start, limit));
  return static_cast<std::uint32_t>(start) + partial.tokens;
}

// ---- references, allocation, eviction --------------------------------------------------------

KVKIT_PC_TEMPLATE
void KVKIT_PC::touch(block_id b, std::uint32_t request_class) {
  if constexpr (requires(access_info a) { evict_.touch(b, a); }) {
    evict_.touch(b, access_info{tick_, request_class});
  }
  (void)b;
  (void)request_class;
}

KVKIT_PC_TEMPLATE
void KVKIT_PC::take_ref(block_id b, std::uint32_t request_class) {
  if (ref_[b] == 0) {
    ++referenced_count_;
    if (state_[b] == block_state::cached) {
      if (in_policy(b))
        evict_.erase(b);
      --evictable_count_;
    }
  }
  ++ref_[b];
  if (state_[b] == block_state::cached)  // a block not cached yet is touched when registered
    touch(b, request_class);
}

KVKIT_PC_TEMPLATE
void KVKIT_PC::drop_ref(block_id b, bool detached) {
  KVKIT_ASSERT(ref_[b] > 0, "prefix_cache: reference count underflow");
  if (--ref_[b] != 0)
    return;
  --referenced_count_;
  if (state_[b] != block_state::cached) {
    state_[b] = block_state::free;
    alloc_.deallocate(b);
    return;
  }
  if (detached) {
    // Invalidated namespace: never hit again, so free it now. It is a leaf: its children were
    // either released before it (tail first) or freed at invalidation.
    KVKIT_CHECK(first_child_[b] == invalid_block,
                "prefix_cache: released block of an invalidated namespace has children");
    const std::uint32_t p = parent_[b];
    free_cached(b);
    ++counters_.invalidated_blocks;
    after_removal(p);
    return;
  }
  ++evictable_count_;
  if constexpr (requires { evict_.released(b); })
    evict_.released(b);  // every released block, in release order (leaves_only policies too)
  if (in_policy(b))
    evict_.insert(b);
}

KVKIT_PC_TEMPLATE
void KVKIT_PC::link_cached(block_id b, std::uint32_t parent, std::span<const token_id> tokens) {
  state_[b] = block_state::cached;
  parent_[b] = parent;
  first_child_[b] = invalid_block;
  block_id& head = child_head(parent);
  prev_sibling_[b] = invalid_block;
  next_sibling_[b] = head;
  if (head != invalid_block)
    prev_sibling_[head] = b;
  head = b;
  std::memcpy(tokens_.data() + (std::size_t{b} << block_shift_), tokens.data(),
              tokens.size_bytes());
  ++cached_count_;
}

KVKIT_PC_TEMPLATE
void KVKIT_PC::unlink_cached(block_id b) {
  const std::uint32_t p = parent_[b];
  const block_id prev = prev_sibling_[b];
  const block_id next = next_sibling_[b];
  if (prev != invalid_block) {
    next_sibling_[prev] = next;
  } else {
    child_head(p) = next;
  }
  if (next != invalid_block)
    prev_sibling_[next] = prev;
  parent_[b] = next_sibling_[b] = prev_sibling_[b] = invalid_block;
  --cached_count_;
}

KVKIT_PC_TEMPLATE
void KVKIT_PC::free_cached(block_id b) {
  matcher_.erase(b);
  unlink_cached(b);
  if constexpr (requires { evict_.forget(b); })
    evict_.forget(b);
  state_[b] = block_state::free;
  first_generated_[b] = block_size_;
  alloc_.deallocate(b);
}

KVKIT_PC_TEMPLATE
void KVKIT_PC::after_removal(std::uint32_t parent) {
  if (parent >= num_blocks_) {
    maybe_release_ns(parent - num_blocks_);
  } else if (traits::leaves_only() && in_policy(parent)) {
    evict_.insert(parent);  // became an unreferenced leaf
  }
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::evict_subtree(block_id root, bool root_in_policy) {
  const std::uint32_t top_parent = parent_[root];
  std::uint32_t freed = 0;
  const auto release = [&](block_id b) {
    KVKIT_CHECK(ref_[b] == 0, "prefix_cache: a referenced block sits under an evictable one");
    free_cached(b);
    --evictable_count_;
    ++freed;
  };
  if (first_child_[root] != invalid_block) {
    // Collect the subtree in preorder and free it in reverse, children first.
    subtree_.clear();
    subtree_.push_back(root);
    for (std::size_t i = 0; i < subtree_.size(); ++i) {
      for (block_id c = first_child_[subtree_[i]]; c != invalid_block; c = next_sibling_[c]) {
        subtree_.push_back(c);
      }
    }
    // Withdraw the candidates first: once a block's children are freed it would look like a
    // leaf (a candidate of a leaves_only policy) although it never was one.
    for (std::size_t i = 1; i < subtree_.size(); ++i) {
      if (in_policy(subtree_[i]))
        evict_.erase(subtree_[i]);
    }
    for (std::size_t i = subtree_.size() - 1; i > 0; --i)
      release(subtree_[i]);
  }
  if (root_in_policy)
    evict_.erase(root);
  release(root);
  after_removal(top_parent);
  return freed;
}

KVKIT_PC_TEMPLATE
void KVKIT_PC::evict_one() {
  const block_id victim = evict_.victim();
  KVKIT_CHECK(victim != invalid_block,
              "prefix_cache: eviction policy returned no victim while blocks are evictable");
  KVKIT_CHECK(state_[victim] == block_state::cached && ref_[victim] == 0,
              "prefix_cache: eviction policy returned a block that is not evictable");
  const std::uint32_t freed = evict_subtree(victim, false);
  counters_.evictions += freed;
  counters_.cascade_evictions += freed - 1;
}

KVKIT_PC_TEMPLATE
block_id KVKIT_PC::allocate_block() {
  block_id b = alloc_.allocate();
  while (b == invalid_block) {
    evict_one();
    b = alloc_.allocate();
  }
  KVKIT_ASSERT(state_[b] == block_state::free && ref_[b] == 0,
               "prefix_cache: allocator handed out a block that is in use");
  state_[b] = block_state::owned;
  ref_[b] = 1;
  ++referenced_count_;
  return b;
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::available_blocks() const noexcept {
  return static_cast<std::uint32_t>(alloc_.free_count()) + evictable_count_;
}

// ---- sequences -------------------------------------------------------------------------------

KVKIT_PC_TEMPLATE
result<typename KVKIT_PC::seq_state*> KVKIT_PC::lookup(sequence_id seq, const char* op) {
  auto r = std::as_const(*this).lookup(seq, op);
  if (!r.ok())
    return r.error();
  return const_cast<seq_state*>(*r);
}

KVKIT_PC_TEMPLATE
result<const typename KVKIT_PC::seq_state*> KVKIT_PC::lookup(sequence_id seq,
                                                             const char* op) const {
  const auto describe = [&] {
    return std::string("{index=") + std::to_string(seq.index) +
           ", generation=" + std::to_string(seq.generation) + "}";
  };
  if (seq.index < seqs_.size()) {
    const seq_state& s = seqs_[seq.index];
    if (s.active && s.generation == seq.generation)
      return &s;
    if (seq.generation != 0 && seq.generation < s.generation) {
      return error{errc::finished_sequence, std::string("kvkit: ") + op + ": sequence " +
                                                describe() + " was already finished"};
    }
  }
  return error{errc::unknown_sequence, std::string("kvkit: ") + op + ": sequence " + describe() +
                                           " was never issued by this cache"};
}

KVKIT_PC_TEMPLATE
typename KVKIT_PC::seq_state& KVKIT_PC::new_sequence(std::uint32_t* index) {
  if (!free_seqs_.empty()) {
    *index = free_seqs_.back();
    free_seqs_.pop_back();
  } else {
    *index = static_cast<std::uint32_t>(seqs_.size());
    seqs_.emplace_back();
  }
  seq_state& s = seqs_[*index];
  s.active = true;
  s.pin = false;
  s.table.clear();
  s.tokens.clear();
  ++active_count_;
  return s;
}

KVKIT_PC_TEMPLATE
result<admission> KVKIT_PC::admit(std::span<const token_id> prompt,
                                  const request_options& options) {
  const detail::eviction_batch<Eviction> batch(evict_);
  if (prompt.empty()) {
    return error{errc::empty_input, "kvkit: admit: the prompt is empty; pass at least one token"};
  }
  if (options.request_class >= max_request_classes) {
    return error{errc::invalid_argument,
                 "kvkit: admit: request_class = " + std::to_string(options.request_class) +
                     " is out of range; accepted: 0 to " + std::to_string(max_request_classes - 1)};
  }
  const std::size_t blocks_needed = (prompt.size() + block_size_ - 1) >> block_shift_;
  if (blocks_needed > num_blocks_) {
    return error{errc::out_of_blocks,
                 "kvkit: admit: a prompt of " + std::to_string(prompt.size()) + " tokens needs " +
                     std::to_string(blocks_needed) + " blocks of " + std::to_string(block_size_) +
                     " tokens; the cache has " + std::to_string(num_blocks_) + " in all"};
  }
  // Read-only phase: find the cached prefix and check that the rest fits.
  const std::uint64_t key = ns_key(options);
  std::uint32_t ns = find_ns(options, key);
  const auto eligible = static_cast<std::uint32_t>((prompt.size() - 1) >> block_shift_);
  scratch_.clear();
  cursor chain{};
  std::uint32_t chain_node = 0;
  partial_match partial;
  if (ns != invalid_block) {
    walk(ns, prompt, eligible, &scratch_, &chain, &chain_node);
    const std::size_t start = scratch_.size() << block_shift_;
    const std::size_t limit = std::min<std::size_t>(block_size_, prompt.size() - 1 - start);
    partial = find_partial(chain, chain_node, prompt.subspan(start, limit));
  }
  const auto hit = static_cast<std::uint32_t>(scratch_.size());
  const auto fresh = static_cast<std::uint32_t>(blocks_needed) - hit;
  std::uint32_t reclaimed = 0;  // hits that are evictable now and stop being so
  for (block_id b : scratch_)
    reclaimed += ref_[b] == 0 ? 1u : 0u;
  std::uint32_t available = available_blocks() - reclaimed;
  if (partial.source != invalid_block && ref_[partial.source] == 0) {
    // The copy source is held while blocks are allocated; without room for that, skip the copy.
    if (fresh > available - 1) {
      partial = {};
    } else {
      --available;
    }
  }
  if (fresh > available) {
    return error{errc::out_of_blocks,
                 "kvkit: admit: needs " + std::to_string(fresh) + " new blocks but only " +
                     std::to_string(available) + " are free or evictable (" + std::to_string(hit) +
                     " prompt blocks hit, pool of " + std::to_string(num_blocks_) + ")"};
  }

  // Mutating phase: nothing below can fail.
  ++tick_;
  ns = acquire_ns(options, key);
  std::uint32_t idx = 0;
  seq_state& s = new_sequence(&idx);
  s.ns = ns;
  s.request_class = options.request_class;
  s.tokens.assign(prompt.begin(), prompt.end());
  bool conversational = false;
  for (block_id b : scratch_) {
    take_ref(b, options.request_class);
    conversational |= first_generated_[b] < block_size_;
    s.table.push_back(b);
  }
  if (hit > 0) {
    s.chain = chain;
    s.last_node = chain_node;
  } else {
    s.last_node = num_blocks_ + ns;
    s.chain = matcher_.root(s.last_node, key);
  }
  if (partial.source != invalid_block)
    take_ref(partial.source, options.request_class);
  for (std::uint32_t i = 0; i < fresh; ++i)
    s.table.push_back(allocate_block());
  std::uint32_t cached_tokens = hit << block_shift_;
  if (partial.source != invalid_block) {
    storage_.copy_block(partial.source, s.table[hit]);
    conversational |= first_generated_[partial.source] < partial.tokens;
    drop_ref(partial.source);
    cached_tokens += partial.tokens;
    ++counters_.partial_block_hits;
    ++counters_.copied_blocks;
  }
  s.prompt_tokens = static_cast<std::uint32_t>(prompt.size());
  s.cached_tokens = cached_tokens;
  s.computed = cached_tokens;
  s.committed_blocks = hit;

  ++counters_.queries;
  counters_.query_tokens += prompt.size();
  counters_.hit_tokens += cached_tokens;
  counters_.query_blocks += eligible;
  counters_.hit_blocks += hit;
  if (eligible == 0)
    ++counters_.short_queries;
  if (cached_tokens == 0) {
    ++counters_.misses;
  } else if (hit == eligible && partial.source == invalid_block) {
    ++counters_.full_hits;
  } else {
    ++counters_.partial_hits;
  }
  if (conversational)
    ++counters_.conversational_hits;
  if (class_stats_.size() <= options.request_class)
    class_stats_.resize(options.request_class + 1);
  class_stats& cs = class_stats_[options.request_class];
  ++cs.queries;
  cs.query_tokens += prompt.size();
  cs.hit_tokens += cached_tokens;
  if (cached_tokens == 0)
    ++cs.misses;
  return admission{sequence_id{idx, s.generation}, request_stats{s.prompt_tokens, cached_tokens},
                   hit, fresh};
}

KVKIT_PC_TEMPLATE
result<commit_info> KVKIT_PC::commit(sequence_id seq, std::uint32_t num_computed_tokens) {
  const detail::eviction_batch<Eviction> batch(evict_);
  auto found = lookup(seq, "commit");
  if (!found.ok())
    return found.error();
  seq_state& s = **found;
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
  const std::uint32_t full = num_computed_tokens >> block_shift_;
  const bool detached = !ns_[s.ns].indexed;
  for (std::uint32_t k = s.committed_blocks; k < full; ++k) {
    const auto toks = block_tokens(s.tokens, k);
    cursor next = matcher_.child(s.chain, toks);
    const std::uint32_t parent = s.last_node;
    const auto same = [&](block_id cand) {
      return parent_[cand] == parent &&
             std::memcmp(tokens_.data() + (std::size_t{cand} << block_shift_), toks.data(),
                         toks.size_bytes()) == 0;
    };
    block_id existing = matcher_.find(next, same);
    if (existing != invalid_block && is_expired(existing)) {
      // An expired copy of this very block: retire it (with its expired subtree) and register ours.
      counters_.expired_blocks += evict_subtree(existing, in_policy(existing));
      existing = invalid_block;
    }
    block_id b = s.table[k];
    if (existing == b) {
      // Registered meanwhile by a fork sibling that shares this block.
    } else if (existing != invalid_block) {
      take_ref(existing, s.request_class);
      drop_ref(b, detached);
      s.table[k] = existing;
      b = existing;
      ++info.deduplicated_blocks;
    } else {
      link_cached(b, parent, toks);
      const std::size_t start = std::size_t{k} << block_shift_;  // first token of the block
      first_generated_[b] = static_cast<std::uint32_t>(
          std::clamp<std::size_t>(s.prompt_tokens, start, start + block_size_) - start);
      matcher_.insert(next, b);
      touch(b, s.request_class);
      ++info.registered_blocks;
    }
    if constexpr (requires { matcher_.bind(next, b); })
      matcher_.bind(next, b);
    s.chain = next;
    s.last_node = b;
    ++s.committed_blocks;
  }
  counters_.committed_blocks += info.registered_blocks;
  counters_.deduplicated_blocks += info.deduplicated_blocks;
  return info;
}

KVKIT_PC_TEMPLATE
result<commit_info> KVKIT_PC::commit(sequence_id seq) {
  auto found = lookup(seq, "commit");
  if (!found.ok())
    return found.error();
  return commit(seq, static_cast<std::uint32_t>((*found)->tokens.size()));
}

KVKIT_PC_TEMPLATE
status KVKIT_PC::append(sequence_id seq, std::span<const token_id> tokens) {
  const detail::eviction_batch<Eviction> batch(evict_);
  auto found = lookup(seq, "append");
  if (!found.ok())
    return found.error();
  seq_state& s = **found;
  if (tokens.empty()) {
    return error{errc::empty_input, "kvkit: append: no tokens given; pass at least one token"};
  }
  const std::size_t new_len = s.tokens.size() + tokens.size();
  const std::size_t blocks = (new_len + block_size_ - 1) >> block_shift_;
  // A shared, partially filled last block (after fork) is copied before it is written.
  const bool copy_tail = (s.tokens.size() & (block_size_ - 1)) != 0 && ref_[s.table.back()] > 1;
  const std::size_t fresh = blocks - s.table.size() + (copy_tail ? 1 : 0);
  if (fresh > available_blocks()) {
    return error{errc::out_of_blocks,
                 "kvkit: append: " + std::to_string(tokens.size()) + " tokens need " +
                     std::to_string(fresh) + " new blocks but only " +
                     std::to_string(available_blocks()) + " are free or evictable (pool of " +
                     std::to_string(num_blocks_) + ")"};
  }
  if (copy_tail) {
    const block_id old = s.table.back();
    const block_id copy = allocate_block();
    storage_.copy_block(old, copy);
    drop_ref(old);
    s.table.back() = copy;
    ++counters_.copied_blocks;
  }
  while (s.table.size() < blocks)
    s.table.push_back(allocate_block());
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
  counters_.appended_tokens += tokens.size();
  return {};
}

KVKIT_PC_TEMPLATE
result<sequence_id> KVKIT_PC::fork(sequence_id seq) {
  const detail::eviction_batch<Eviction> batch(evict_);
  auto found = lookup(seq, "fork");
  if (!found.ok())
    return found.error();
  if ((*found)->computed != (*found)->tokens.size()) {
    return error{errc::invalid_argument,
                 "kvkit: fork: " + std::to_string((*found)->tokens.size() - (*found)->computed) +
                     " tokens of the sequence are not computed; commit() all of them first"};
  }
  ++tick_;
  std::uint32_t idx = 0;
  seq_state& s = new_sequence(&idx);
  const seq_state& from = seqs_[seq.index];  // after new_sequence: seqs_ may have grown
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
  ++ns_[s.ns].refs;
  for (block_id b : s.table)
    take_ref(b, s.request_class);
  ++counters_.forks;
  return sequence_id{idx, s.generation};
}

KVKIT_PC_TEMPLATE
result<pin_info> KVKIT_PC::pin(std::span<const token_id> prompt, const request_options& options) {
  const detail::eviction_batch<Eviction> batch(evict_);
  if (prompt.empty()) {
    return error{errc::empty_input, "kvkit: pin: the prompt is empty; pass at least one token"};
  }
  if (options.request_class >= max_request_classes) {
    return error{errc::invalid_argument,
                 "kvkit: pin: request_class = " + std::to_string(options.request_class) +
                     " is out of range; accepted: 0 to " + std::to_string(max_request_classes - 1)};
  }
  const std::uint64_t key = ns_key(options);
  const std::uint32_t ns = find_ns(options, key);
  scratch_.clear();
  cursor chain{};
  std::uint32_t node = 0;
  if (ns != invalid_block) {
    walk(ns, prompt, static_cast<std::uint32_t>(prompt.size() >> block_shift_), &scratch_, &chain,
         &node);
  }
  if (scratch_.empty()) {
    return error{errc::invalid_argument,
                 "kvkit: pin: no whole block of this prompt is cached under these keys; warm it "
                 "first (admit, prefill, commit)"};
  }
  ++tick_;
  std::uint32_t idx = 0;
  seq_state& s = new_sequence(&idx);
  s.pin = true;
  s.ns = ns;
  ++ns_[ns].refs;
  s.request_class = options.request_class;
  const auto n = static_cast<std::uint32_t>(scratch_.size());
  s.tokens.assign(prompt.begin(), prompt.begin() + (std::ptrdiff_t{n} << block_shift_));
  for (block_id b : scratch_) {
    take_ref(b, options.request_class);
    s.table.push_back(b);
  }
  s.computed = s.cached_tokens = n << block_shift_;
  s.prompt_tokens = 0;
  s.committed_blocks = n;
  s.chain = chain;
  s.last_node = node;
  ++counters_.pins;
  return pin_info{sequence_id{idx, s.generation}, s.computed};
}

KVKIT_PC_TEMPLATE
status KVKIT_PC::finish(sequence_id seq) {
  const detail::eviction_batch<Eviction> batch(evict_);
  auto found = lookup(seq, "finish");
  if (!found.ok())
    return found.error();
  seq_state& s = **found;
  const bool detached = !ns_[s.ns].indexed;
  // Tail first: children become evictable before their parents.
  for (auto it = s.table.rbegin(); it != s.table.rend(); ++it)
    drop_ref(*it, detached);
  s.table.clear();
  s.tokens.clear();
  s.active = false;
  ++s.generation;
  --ns_[s.ns].refs;
  maybe_release_ns(s.ns);
  free_seqs_.push_back(seq.index);
  --active_count_;
  ++counters_.finished_sequences;
  return {};
}

// ---- invalidation and expiry -----------------------------------------------------------------

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::invalidate_ns(std::uint32_t ns) {
  ns_entry& e = ns_[ns];
  if (e.indexed) {
    auto [it, end] = ns_index_.equal_range(e.key);
    for (; it != end; ++it) {
      if (it->second == ns) {
        ns_index_.erase(it);
        break;
      }
    }
    e.indexed = false;
  }
  // Free every unreferenced subtree; referenced blocks stay until released.
  std::vector<block_id> roots;
  std::vector<block_id> stack;
  for (block_id c = e.first_child; c != invalid_block; c = next_sibling_[c])
    stack.push_back(c);
  while (!stack.empty()) {
    const block_id b = stack.back();
    stack.pop_back();
    if (ref_[b] == 0) {
      roots.push_back(b);
    } else {
      for (block_id c = first_child_[b]; c != invalid_block; c = next_sibling_[c]) {
        stack.push_back(c);
      }
    }
  }
  std::uint32_t freed = 0;
  for (block_id r : roots)
    freed += evict_subtree(r, in_policy(r));
  counters_.invalidated_blocks += freed;
  maybe_release_ns(ns);
  return freed;
}

KVKIT_PC_TEMPLATE
template <class Pred>
std::uint32_t KVKIT_PC::invalidate_if(Pred&& pred) {
  std::uint32_t freed = 0;
  for (std::uint32_t n = 0; n < ns_.size(); ++n) {
    const ns_entry& e = ns_[n];
    if (e.live && e.indexed &&
        pred(e.salt, e.session, std::span<const std::uint64_t>(e.extra_keys))) {
      freed += invalidate_ns(n);
    }
  }
  return freed;
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::invalidate_tenant(std::uint64_t tenant_salt) {
  return invalidate_if([&](std::uint64_t salt, std::uint64_t, std::span<const std::uint64_t>) {
    return salt == tenant_salt;
  });
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::invalidate_session(std::uint64_t session_id) {
  return invalidate_if([&](std::uint64_t, std::uint64_t session, std::span<const std::uint64_t>) {
    return session == session_id;
  });
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::invalidate_key(std::uint64_t key) {
  return invalidate_if([&](std::uint64_t, std::uint64_t, std::span<const std::uint64_t> keys) {
    return std::ranges::find(keys, key) != keys.end();
  });
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::expire() {
  const detail::eviction_batch<Eviction> batch(evict_);
  std::uint32_t freed = 0;
  if constexpr (requires { evict_.pop_expired(); }) {
    for (block_id b = evict_.pop_expired(); b != invalid_block; b = evict_.pop_expired()) {
      freed += evict_subtree(b, false);
    }
  }
  counters_.expired_blocks += freed;
  return freed;
}

// ---- observation -----------------------------------------------------------------------------

KVKIT_PC_TEMPLATE
result<sequence_view> KVKIT_PC::sequence(sequence_id seq) const {
  auto found = lookup(seq, "sequence");
  if (!found.ok())
    return found.error();
  const seq_state& s = **found;
  return sequence_view{s.tokens, s.table, s.computed,
                       request_stats{s.prompt_tokens, s.cached_tokens}};
}

KVKIT_PC_TEMPLATE
class_stats KVKIT_PC::stats(std::uint32_t request_class) const {
  return request_class < class_stats_.size() ? class_stats_[request_class] : class_stats{};
}

KVKIT_PC_TEMPLATE
cache_stats KVKIT_PC::stats() const {
  cache_stats st = counters_;
  st.blocks_total = num_blocks_;
  st.blocks_free = static_cast<std::uint32_t>(alloc_.free_count());
  st.blocks_cached = cached_count_;
  st.blocks_referenced = referenced_count_;
  st.blocks_evictable = evictable_count_;
  st.active_sequences = active_count_;
  st.metadata_bytes =
      ref_.size() * sizeof(std::uint32_t) + parent_.size() * sizeof(std::uint32_t) +
      (first_child_.size() + next_sibling_.size() + prev_sibling_.size()) * sizeof(block_id) +
      state_.size() * sizeof(block_state) + first_generated_.size() * sizeof(std::uint32_t) +
      policy_traits<Allocator>::metadata_bytes(alloc_) +
      policy_traits<Matcher>::metadata_bytes(matcher_) +
      policy_traits<Eviction>::metadata_bytes(evict_);
  st.token_bytes = tokens_.size() * sizeof(token_id);
  st.kv_bytes = storage_.bytes();
  return st;
}

KVKIT_PC_TEMPLATE
status KVKIT_PC::check_invariants() const {
  auto fail = [](std::string what) {
    return status{error{errc::invalid_argument, "kvkit: invariant violated: " + std::move(what)}};
  };
  const auto same_tokens = [&](block_id b, const std::vector<token_id>& toks, std::uint32_t k) {
    return std::equal(tokens_.begin() + (std::ptrdiff_t{b} << block_shift_),
                      tokens_.begin() + ((std::ptrdiff_t{b} + 1) << block_shift_),
                      toks.begin() + (std::ptrdiff_t{k} << block_shift_));
  };
  std::vector<std::uint32_t> holders(num_blocks_, 0);
  std::uint32_t active = 0;
  for (std::uint32_t i = 0; i < seqs_.size(); ++i) {
    const seq_state& s = seqs_[i];
    if (!s.active)
      continue;
    ++active;
    if (!ns_[s.ns].live)
      return fail("sequence " + std::to_string(i) + " in a dead namespace");
    const std::size_t need = (s.tokens.size() + block_size_ - 1) >> block_shift_;
    if (s.table.size() != need) {
      return fail("sequence " + std::to_string(i) + " has " + std::to_string(s.table.size()) +
                  " blocks for " + std::to_string(s.tokens.size()) + " tokens");
    }
    if (s.computed > s.tokens.size() || s.committed_blocks > (s.computed >> block_shift_)) {
      return fail("sequence " + std::to_string(i) + " has inconsistent computed counts");
    }
    std::uint32_t parent = num_blocks_ + s.ns;
    for (std::uint32_t k = 0; k < s.table.size(); ++k) {
      const block_id b = s.table[k];
      if (b >= num_blocks_)
        return fail("sequence holds an out-of-range block");
      ++holders[b];
      if (k < s.committed_blocks) {
        if (state_[b] != block_state::cached) {
          return fail("committed block " + std::to_string(b) + " is not cached");
        }
        if (parent_[b] != parent) {
          return fail("sequence " + std::to_string(i) + " committed blocks do not form a chain");
        }
        if (!same_tokens(b, s.tokens, k)) {
          return fail("cached block " + std::to_string(b) + " tokens differ from its sequence's");
        }
        parent = b;
      } else if (state_[b] == block_state::cached) {
        if (!same_tokens(b, s.tokens, k)) {  // registered by a fork sibling
          return fail("cached block " + std::to_string(b) + " tokens differ from its sequence's");
        }
      } else if (state_[b] != block_state::owned) {
        return fail("uncommitted block " + std::to_string(b) + " is free");
      }
    }
  }
  if (active != active_count_)
    return fail("active sequence count is off");
  std::uint32_t n_free = 0, n_cached = 0, n_evictable = 0, n_candidates = 0, n_ref = 0;
  for (block_id b = 0; b < num_blocks_; ++b) {
    if (ref_[b] != holders[b]) {
      return fail("block " + std::to_string(b) + " has reference count " + std::to_string(ref_[b]) +
                  " but " + std::to_string(holders[b]) + " holders");
    }
    n_ref += ref_[b] > 0 ? 1u : 0u;
    switch (state_[b]) {
      case block_state::free:
        ++n_free;
        if (ref_[b] != 0)
          return fail("free block " + std::to_string(b) + " is referenced");
        break;
      case block_state::owned:
        if (ref_[b] == 0)
          return fail("owned block " + std::to_string(b) + " is held by nobody");
        break;
      case block_state::cached: {
        ++n_cached;
        if (ref_[b] == 0)
          ++n_evictable;
        if (in_policy(b))
          ++n_candidates;
        const std::uint32_t p = parent_[b];
        if (p < num_blocks_) {
          if (state_[p] != block_state::cached) {
            return fail("cached block " + std::to_string(b) + " is an orphan (parent not cached)");
          }
          if (ref_[b] > 0 && ref_[p] == 0) {
            return fail("referenced block " + std::to_string(b) + " has an unreferenced parent");
          }
        } else if (p - num_blocks_ >= ns_.size() || !ns_[p - num_blocks_].live) {
          return fail("cached block " + std::to_string(b) + " is an orphan (dead namespace)");
        }
        bool listed = false;
        const block_id head = p < num_blocks_ ? first_child_[p] : ns_[p - num_blocks_].first_child;
        for (block_id c = head; c != invalid_block; c = next_sibling_[c])
          listed |= c == b;
        if (!listed)
          return fail("cached block " + std::to_string(b) + " missing from its parent");
        break;
      }
    }
  }
  if (n_free != alloc_.free_count()) {
    return fail(std::to_string(n_free) + " free blocks but the allocator has " +
                std::to_string(alloc_.free_count()));
  }
  if (n_evictable != evictable_count_)
    return fail("evictable count is off");
  if (n_candidates != evict_.size()) {
    return fail(std::to_string(n_candidates) + " eviction candidates but the policy holds " +
                std::to_string(evict_.size()));
  }
  if (n_cached != cached_count_ || n_ref != referenced_count_)
    return fail("gauges are off");
  // Reachability: every cached block is found by the matcher from its namespace root, and an
  // invalidated namespace keeps only referenced blocks.
  std::uint32_t reached = 0;
  std::vector<std::pair<block_id, cursor>> stack;
  for (std::uint32_t n = 0; n < ns_.size(); ++n) {
    if (!ns_[n].live)
      continue;
    const cursor root = matcher_.root(num_blocks_ + n, ns_[n].key);
    for (block_id c = ns_[n].first_child; c != invalid_block; c = next_sibling_[c]) {
      stack.emplace_back(c, root);
    }
    while (!stack.empty()) {
      const block_id b = stack.back().first;
      const cursor parent_cursor = stack.back().second;
      stack.pop_back();
      if (!ns_[n].indexed && ref_[b] == 0) {
        return fail("block " + std::to_string(b) + " of an invalidated namespace is still cached");
      }
      const std::span<const token_id> toks(tokens_.data() + (std::size_t{b} << block_shift_),
                                           block_size_);
      cursor cur = matcher_.child(parent_cursor, toks);
      const std::uint32_t parent = parent_[b];
      const block_id found = matcher_.find(cur, [&](block_id cand) {
        return parent_[cand] == parent &&
               std::memcmp(tokens_.data() + (std::size_t{cand} << block_shift_), toks.data(),
                           toks.size_bytes()) == 0;
      });
      if (found != b) {
        return fail("cached block " + std::to_string(b) + " is not reachable through the matcher");
      }
      if constexpr (requires { matcher_.bind(cur, b); })
        matcher_.bind(cur, b);
      ++reached;
      for (block_id c = first_child_[b]; c != invalid_block; c = next_sibling_[c]) {
        stack.emplace_back(c, cur);
      }
    }
  }
  if (reached != n_cached)
    return fail("some cached blocks are unreachable from any namespace");
  return {};
}

#undef KVKIT_PC
#undef KVKIT_PC_TEMPLATE

}  // namespace kvkit
