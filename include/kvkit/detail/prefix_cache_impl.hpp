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
}  // namespace detail

// ---- construction
// --------------------------------------------------------------------------------

KVKIT_PC_TEMPLATE
result<KVKIT_PC> KVKIT_PC::create(const cache_config& config, Storage storage) {
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
  return KVKIT_PC(config, seed, std::move(storage));
}

KVKIT_PC_TEMPLATE
KVKIT_PC::prefix_cache(const cache_config& config, std::uint64_t seed, Storage storage)
    : num_blocks_(config.num_blocks),
      block_size_(config.block_size),
      block_shift_(static_cast<std::uint32_t>(std::countr_zero(config.block_size))),
      ns_hasher_(seed),
      alloc_(config.num_blocks),
      matcher_(config.num_blocks, seed),
      evict_(config.num_blocks),
      storage_(std::move(storage)),
      ref_(config.num_blocks, 0),
      parent_(config.num_blocks, invalid_block),
      first_child_(config.num_blocks, invalid_block),
      next_sibling_(config.num_blocks, invalid_block),
      prev_sibling_(config.num_blocks, invalid_block),
      state_(config.num_blocks, block_state::free),
      tokens_(std::size_t{config.num_blocks} * config.block_size, 0) {}

// ---- namespaces
// ----------------------------------------------------------------------------------

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::find_ns(std::uint64_t salt, std::span<const std::uint64_t> extra,
                                std::uint64_t key) const {
  auto [it, end] = ns_index_.equal_range(key);
  for (; it != end; ++it) {
    const ns_entry& e = ns_[it->second];
    if (e.salt == salt && std::ranges::equal(e.extra_keys, extra))
      return it->second;
  }
  return invalid_block;
}

KVKIT_PC_TEMPLATE
std::uint32_t KVKIT_PC::acquire_ns(std::uint64_t salt, std::span<const std::uint64_t> extra,
                                   std::uint64_t key) {
  std::uint32_t idx = find_ns(salt, extra, key);
  if (idx == invalid_block) {
    if (!free_ns_.empty()) {
      idx = free_ns_.back();
      free_ns_.pop_back();
    } else {
      idx = static_cast<std::uint32_t>(ns_.size());
      ns_.emplace_back();
    }
    ns_entry& e = ns_[idx];
    e.salt = salt;
    e.extra_keys.assign(extra.begin(), extra.end());
    e.key = key;
    e.first_child = invalid_block;
    e.refs = 0;
    e.live = true;
    ns_index_.emplace(key, idx);
  }
  ++ns_[idx].refs;
  return idx;
}

KVKIT_PC_TEMPLATE
void KVKIT_PC::maybe_release_ns(std::uint32_t ns) {
  ns_entry& e = ns_[ns];
  if (e.refs != 0 || e.first_child != invalid_block)
    return;
  auto [it, end] = ns_index_.equal_range(e.key);
  for (; it != end; ++it) {
    if (it->second == ns) {
      ns_index_.erase(it);
      break;
    }
  }
  e.live = false;
  e.extra_keys.clear();
  free_ns_.push_back(ns);
}

KVKIT_PC_TEMPLATE
block_id& KVKIT_PC::child_head(std::uint32_t node) noexcept {
  return node < num_blocks_ ? first_child_[node] : ns_[node - num_blocks_].first_child;
}

// ---- matching
// ------------------------------------------------------------------------------------

KVKIT_PC_TEMPLATE
std::span<const token_id> KVKIT_PC::block_tokens(std::span<const token_id> all,
                                                 std::uint32_t k) const noexcept {
  return all.subspan(std::size_t{k} << block_shift_, block_size_);
}

KVKIT_PC_TEMPLATE
bool KVKIT_PC::verify(block_id b, std::uint32_t parent,
                      std::span<const token_id> tokens) const noexcept {
  return parent_[b] == parent && std::memcmp(tokens_.data() + (std::size_t{b} << block_shift_),
                                             tokens.data(), tokens.size_bytes()) == 0;
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
std::uint32_t KVKIT_PC::match(std::span<const token_id> prompt,
                              const request_options& options) const {
  if (prompt.size() <= block_size_)
    return 0;
  const std::uint64_t key = ns_hasher_.root(options.tenant_salt, options.extra_keys);
  const std::uint32_t ns = find_ns(options.tenant_salt, options.extra_keys, key);
  if (ns == invalid_block)
    return 0;
  const auto max_blocks = static_cast<std::uint32_t>((prompt.size() - 1) >> block_shift_);
  return walk(ns, prompt, max_blocks, nullptr, nullptr, nullptr) << block_shift_;
}

// ---- references and allocation
// -------------------------------------------------------------------

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
  if (ref_[b]++ == 0) {
    ++referenced_count_;
    if (state_[b] == block_state::cached)
      evict_.erase(b);
  }
  touch(b, request_class);
}

KVKIT_PC_TEMPLATE
void KVKIT_PC::drop_ref(block_id b) {
  KVKIT_ASSERT(ref_[b] > 0, "prefix_cache: reference count underflow");
  if (--ref_[b] != 0)
    return;
  --referenced_count_;
  if (state_[b] == block_state::cached) {
    evict_.insert(b);
  } else {
    state_[b] = block_state::free;
    alloc_.deallocate(b);
  }
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
void KVKIT_PC::evict_one() {
  const block_id victim = evict_.victim();
  KVKIT_CHECK(victim != invalid_block,
              "prefix_cache: eviction policy returned no victim although "
              "its size() promised one");
  const std::uint32_t top_parent = parent_[victim];
  const auto release = [this](block_id b) {
    KVKIT_CHECK(ref_[b] == 0, "prefix_cache: a referenced block sits under an evictable one");
    matcher_.erase(b);
    unlink_cached(b);
    state_[b] = block_state::free;
    alloc_.deallocate(b);
    ++counters_.evictions;
  };
  if (first_child_[victim] != invalid_block) {
    // Not a leaf: collect the subtree in preorder and free it in reverse, children first.
    subtree_.clear();
    subtree_.push_back(victim);
    for (std::size_t i = 0; i < subtree_.size(); ++i) {
      for (block_id c = first_child_[subtree_[i]]; c != invalid_block; c = next_sibling_[c]) {
        subtree_.push_back(c);
      }
    }
    for (std::size_t i = subtree_.size() - 1; i > 0; --i) {
      evict_.erase(subtree_[i]);
      ++counters_.cascade_evictions;
      release(subtree_[i]);
    }
  }
  release(victim);
  if (top_parent >= num_blocks_)
    maybe_release_ns(top_parent - num_blocks_);
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
  return static_cast<std::uint32_t>(alloc_.free_count()) +
         static_cast<std::uint32_t>(evict_.size());
}

// ---- sequences
// -----------------------------------------------------------------------------------

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
result<admission> KVKIT_PC::admit(std::span<const token_id> prompt,
                                  const request_options& options) {
  if (prompt.empty()) {
    return error{errc::empty_input, "kvkit: admit: the prompt is empty; pass at least one token"};
  }
  const std::size_t blocks_needed = (prompt.size() + block_size_ - 1) >> block_shift_;
  if (blocks_needed > num_blocks_) {
    return error{errc::out_of_blocks,
                 "kvkit: admit: a prompt of " + std::to_string(prompt.size()) + " tokens needs " +
                     std::to_string(blocks_needed) + " blocks of " + std::to_string(block_size_) +
                     " tokens; the cache has " + std::to_string(num_blocks_) + " in all"};
  }
  // Read-only phase: find the cached prefix and check that the rest fits.
  const std::uint64_t key = ns_hasher_.root(options.tenant_salt, options.extra_keys);
  std::uint32_t ns = find_ns(options.tenant_salt, options.extra_keys, key);
  const auto eligible = static_cast<std::uint32_t>((prompt.size() - 1) >> block_shift_);
  scratch_.clear();
  cursor chain{};
  std::uint32_t chain_node = 0;
  if (ns != invalid_block)
    walk(ns, prompt, eligible, &scratch_, &chain, &chain_node);
  const auto hit = static_cast<std::uint32_t>(scratch_.size());
  const auto fresh = static_cast<std::uint32_t>(blocks_needed) - hit;
  std::uint32_t reclaimed = 0;  // hits that are evictable now and stop being so
  for (block_id b : scratch_)
    reclaimed += ref_[b] == 0 ? 1u : 0u;
  const std::uint32_t available = available_blocks() - reclaimed;
  if (fresh > available) {
    return error{errc::out_of_blocks,
                 "kvkit: admit: needs " + std::to_string(fresh) + " new blocks but only " +
                     std::to_string(available) + " are free or evictable (" + std::to_string(hit) +
                     " prompt blocks hit, pool of " + std::to_string(num_blocks_) + ")"};
  }

  // Mutating phase: nothing below can fail.
  ++tick_;
  ns = acquire_ns(options.tenant_salt, options.extra_keys, key);
  std::uint32_t idx;
  if (!free_seqs_.empty()) {
    idx = free_seqs_.back();
    free_seqs_.pop_back();
  } else {
    idx = static_cast<std::uint32_t>(seqs_.size());
    seqs_.emplace_back();
  }
  seq_state& s = seqs_[idx];
  s.active = true;
  s.ns = ns;
  s.request_class = options.request_class;
  s.tokens.assign(prompt.begin(), prompt.end());
  s.table.clear();
  for (block_id b : scratch_) {
    take_ref(b, options.request_class);
    s.table.push_back(b);
  }
  if (hit > 0) {
    s.chain = chain;
    s.last_node = chain_node;
  } else {
    s.last_node = num_blocks_ + ns;
    s.chain = matcher_.root(s.last_node, key);
  }
  for (std::uint32_t i = 0; i < fresh; ++i)
    s.table.push_back(allocate_block());
  s.prompt_tokens = static_cast<std::uint32_t>(prompt.size());
  s.cached_tokens = hit << block_shift_;
  s.computed = s.cached_tokens;
  s.committed_blocks = hit;
  ++active_count_;

  ++counters_.queries;
  counters_.query_tokens += prompt.size();
  counters_.hit_tokens += s.cached_tokens;
  counters_.query_blocks += eligible;
  counters_.hit_blocks += hit;
  if (eligible == 0)
    ++counters_.short_queries;
  if (hit == 0) {
    ++counters_.misses;
  } else if (hit == eligible) {
    ++counters_.full_hits;
  } else {
    ++counters_.partial_hits;
  }
  return admission{sequence_id{idx, s.generation}, request_stats{s.prompt_tokens, s.cached_tokens},
                   hit, fresh};
}

KVKIT_PC_TEMPLATE
result<commit_info> KVKIT_PC::commit(sequence_id seq, std::uint32_t num_computed_tokens) {
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
  for (std::uint32_t k = s.committed_blocks; k < full; ++k) {
    const auto toks = block_tokens(s.tokens, k);
    cursor next = matcher_.child(s.chain, toks);
    const std::uint32_t parent = s.last_node;
    const block_id existing =
        matcher_.find(next, [&](block_id cand) { return verify(cand, parent, toks); });
    block_id b = s.table[k];
    if (existing != invalid_block) {
      take_ref(existing, s.request_class);
      drop_ref(b);  // owned by this sequence alone: freed
      s.table[k] = existing;
      b = existing;
      ++info.deduplicated_blocks;
    } else {
      link_cached(b, parent, toks);
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
  auto found = lookup(seq, "append");
  if (!found.ok())
    return found.error();
  seq_state& s = **found;
  if (tokens.empty()) {
    return error{errc::empty_input, "kvkit: append: no tokens given; pass at least one token"};
  }
  const std::size_t new_len = s.tokens.size() + tokens.size();
  const std::size_t blocks = (new_len + block_size_ - 1) >> block_shift_;
  const std::size_t fresh = blocks - s.table.size();
  if (fresh > available_blocks()) {
    return error{errc::out_of_blocks,
                 "kvkit: append: " + std::to_string(tokens.size()) + " tokens need " +
                     std::to_string(fresh) + " new blocks but only " +
                     std::to_string(available_blocks()) + " are free or evictable (pool of " +
                     std::to_string(num_blocks_) + ")"};
  }
  for (std::size_t i = 0; i < fresh; ++i)
    s.table.push_back(allocate_block());
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
  counters_.appended_tokens += tokens.size();
  return {};
}

KVKIT_PC_TEMPLATE
status KVKIT_PC::finish(sequence_id seq) {
  auto found = lookup(seq, "finish");
  if (!found.ok())
    return found.error();
  seq_state& s = **found;
  // Tail first: children become evictable before their parents.
  for (auto it = s.table.rbegin(); it != s.table.rend(); ++it)
    drop_ref(*it);
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

KVKIT_PC_TEMPLATE
result<sequence_view> KVKIT_PC::sequence(sequence_id seq) const {
  auto found = lookup(seq, "sequence");
  if (!found.ok())
    return found.error();
  const seq_state& s = **found;
  return sequence_view{s.tokens, s.table, s.computed,
                       request_stats{s.prompt_tokens, s.cached_tokens}};
}

// ---- observation
// ---------------------------------------------------------------------------------

KVKIT_PC_TEMPLATE
cache_stats KVKIT_PC::stats() const {
  cache_stats st = counters_;
  st.blocks_total = num_blocks_;
  st.blocks_free = static_cast<std::uint32_t>(alloc_.free_count());
  st.blocks_cached = cached_count_;
  st.blocks_referenced = referenced_count_;
  st.blocks_evictable = static_cast<std::uint32_t>(evict_.size());
  st.active_sequences = active_count_;
  st.metadata_bytes =
      ref_.size() * sizeof(std::uint32_t) + parent_.size() * sizeof(std::uint32_t) +
      (first_child_.size() + next_sibling_.size() + prev_sibling_.size()) * sizeof(block_id) +
      state_.size() * sizeof(block_state) + policy_traits<Allocator>::metadata_bytes(alloc_) +
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
        if (!std::equal(tokens_.begin() + (std::ptrdiff_t{b} << block_shift_),
                        tokens_.begin() + ((std::ptrdiff_t{b} + 1) << block_shift_),
                        s.tokens.begin() + (std::ptrdiff_t{k} << block_shift_))) {
          return fail("cached block " + std::to_string(b) + " tokens differ from its sequence's");
        }
        parent = b;
      } else if (state_[b] != block_state::owned) {
        return fail("uncommitted block " + std::to_string(b) + " is not owned");
      }
    }
  }
  if (active != active_count_)
    return fail("active sequence count is off");
  std::uint32_t n_free = 0, n_cached = 0, n_evictable = 0, n_ref = 0;
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
        if (ref_[b] != 1)
          return fail("owned block " + std::to_string(b) + " is shared");
        break;
      case block_state::cached: {
        ++n_cached;
        if (ref_[b] == 0)
          ++n_evictable;
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
  if (n_evictable != evict_.size()) {
    return fail(std::to_string(n_evictable) + " evictable blocks but the policy holds " +
                std::to_string(evict_.size()));
  }
  if (n_cached != cached_count_ || n_ref != referenced_count_)
    return fail("gauges are off");
  // Reachability: every cached block is found by the matcher from its namespace root.
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
      const std::span<const token_id> toks(tokens_.data() + (std::size_t{b} << block_shift_),
                                           block_size_);
      cursor cur = matcher_.child(parent_cursor, toks);
      const std::uint32_t parent = parent_[b];
      const block_id found =
          matcher_.find(cur, [&](block_id cand) { return verify(cand, parent, toks); });
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
