// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Implementation of kvkit::host_tier. Not a public header: include <kvkit/tiers/host_tier.hpp>.
#pragma once

#include <kvkit/tiers/host_tier.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>
#include <string>
#include <utility>

namespace kvkit {

namespace detail {

inline constexpr std::uint8_t tier_slot_used = 1;
inline constexpr std::uint8_t tier_slot_in_policy = 2;

// Optional members of an eviction policy, as the pool calls them.
template <class E>
void tier_policy_touch(E& e, block_id b, const access_info& info) {
  if constexpr (requires { e.touch(b, info); })
    e.touch(b, info);
}
template <class E>
void tier_policy_forget(E& e, block_id b) {
  if constexpr (requires { e.forget(b); })
    e.forget(b);
}
template <class E>
[[nodiscard]] bool tier_policy_expired(const E& e, block_id b) {
  if constexpr (requires {
                  { e.expired(b) } -> std::convertible_to<bool>;
                }) {
    return e.expired(b);
  } else {
    return false;
  }
}
template <class E>
[[nodiscard]] block_id tier_policy_pop_expired(E& e) {
  if constexpr (requires {
                  { e.pop_expired() } -> std::same_as<block_id>;
                }) {
    return e.pop_expired();
  } else {
    return invalid_block;
  }
}

// Brackets one tier operation: the policy reads its clock once, the tier reads its own once.
template <class E>
class tier_batch {
 public:
  tier_batch(const E& e, const std::function<std::chrono::nanoseconds()>& clock, std::int64_t& now)
      : e_(e) {
    if constexpr (requires { e.begin_batch(); })
      e.begin_batch();
    now = clock().count();
  }
  ~tier_batch() {
    if constexpr (requires { e_.end_batch(); })
      e_.end_batch();
  }
  tier_batch(const tier_batch&) = delete;
  tier_batch& operator=(const tier_batch&) = delete;

 private:
  const E& e_;
};

template <class E>
[[nodiscard]] E make_tier_policy(std::uint32_t capacity, const policy_options_t<E>& opts) {
  if constexpr (std::constructible_from<E, std::uint32_t, const policy_options_t<E>&>) {
    return E(capacity, opts);
  } else {
    return E(capacity);
  }
}

}  // namespace detail

template <class Eviction>
void host_tier<Eviction>::arena_deleter::operator()(std::byte* p) const noexcept {
  if (p == nullptr)
    return;
  if (deallocate) {
    deallocate(p, bytes);
  } else {
    ::operator delete (p, std::align_val_t{4096});
  }
}

template <class Eviction>
result<host_tier<Eviction>> host_tier<Eviction>::create(const kv_layout& layout, options opts) {
  if (opts.capacity_blocks == 0 || opts.capacity_blocks > kv_layout::max_blocks) {
    return error{errc::invalid_config,
                 "kvkit: host_tier_options.capacity_blocks must be in [1, 2^31], got " +
                     std::to_string(opts.capacity_blocks)};
  }
  kv_layout l = layout;
  l.num_blocks = opts.capacity_blocks;
  if (auto s = l.validate(); !s.ok())
    return error{s.code(), s.message()};
  const std::size_t bytes = l.total_bytes();  // validate() proved it addressable
  if (static_cast<bool>(opts.arena.allocate) != static_cast<bool>(opts.arena.deallocate)) {
    return error{errc::invalid_config,
                 "kvkit: host_tier_options.arena needs both allocate and deallocate, or neither"};
  }
  std::byte* p = nullptr;
  if (opts.arena.allocate) {
    p = static_cast<std::byte*>(opts.arena.allocate(bytes));
  } else {
    p = static_cast<std::byte*>(::operator new (bytes, std::align_val_t{4096}, std::nothrow));
  }
  if (p == nullptr) {
    return error{errc::invalid_config, "kvkit: host_tier could not allocate its arena of " +
                                           std::to_string(bytes) + " bytes (" +
                                           std::to_string(opts.capacity_blocks) + " blocks of " +
                                           std::to_string(l.block_bytes_all_layers()) + ")"};
  }
  std::unique_ptr<std::byte[], arena_deleter> arena(p, arena_deleter{opts.arena.deallocate, bytes});
  return host_tier(l, std::move(opts), std::move(arena));
}

template <class Eviction>
host_tier<Eviction>::host_tier(const kv_layout& layout, options&& opts,
                               std::unique_ptr<std::byte[], arena_deleter> arena)
    : layout_(layout),
      capacity_(opts.capacity_blocks),
      block_bytes_(layout.block_bytes_all_layers()),
      segment_bytes_(kv_segment_bytes(layout)),
      ttl_(std::max<std::int64_t>(opts.idle_ttl.count(), 0)),
      write_(opts.write),
      clock_(opts.now ? std::move(opts.now)
                      : std::function<std::chrono::nanoseconds()>(detail::tier_steady_now)),
      arena_(std::move(arena)),
      evict_(detail::make_tier_policy<Eviction>(opts.capacity_blocks, opts.eviction)),
      index_(opts.capacity_blocks),
      waiting_(opts.capacity_blocks),
      ns_index_(opts.capacity_blocks + 1),
      key_(capacity_, 0),
      parent_key_(capacity_, 0),
      ns_of_(capacity_, npos),
      tokens_(std::size_t{capacity_} * layout.block_size, 0),
      up_(capacity_, npos),
      child_(capacity_, npos),
      sib_next_(capacity_, npos),
      sib_prev_(capacity_, npos),
      ns_next_(capacity_, npos),
      ns_prev_(capacity_, npos),
      idle_next_(capacity_, npos),
      idle_prev_(capacity_, npos),
      last_(capacity_, 0),
      flags_(capacity_, 0) {
  free_.reserve(capacity_);
  for (std::uint32_t s = capacity_; s-- > 0;)
    free_.push_back(s);  // slot 0 first
  ns_.reserve(std::size_t{capacity_} + 1);
  scratch_.reserve(capacity_);
}

// ---- lookups --------------------------------------------------------------------------------

template <class Eviction>
bool host_tier<Eviction>::same_namespace(std::uint32_t ns, const tier_namespace& n) const noexcept {
  const ns_record& r = ns_[ns];
  return r.key == n.key && r.salt == n.tenant_salt && r.session == n.session_id &&
         std::equal(r.extra_keys.begin(), r.extra_keys.end(), n.extra_keys.begin(),
                    n.extra_keys.end());
}

template <class Eviction>
bool host_tier<Eviction>::holds(std::uint32_t s, const tier_namespace& ns, std::uint64_t parent,
                                std::span<const token_id> tokens) const noexcept {
  const auto mine = slot_tokens(s);
  return parent_key_[s] == parent && same_namespace(ns_of_[s], ns) &&
         std::equal(mine.begin(), mine.end(), tokens.begin(), tokens.end());
}

template <class Eviction>
bool host_tier<Eviction>::is_expired(std::uint32_t s) const {
  // Idle time now - last, compared without overflow.
  const bool idle =
      now_ > last_[s] && static_cast<std::uint64_t>(now_) - static_cast<std::uint64_t>(last_[s]) >
                             static_cast<std::uint64_t>(ttl_);
  return idle || detail::tier_policy_expired(evict_, s);
}

template <class Eviction>
std::uint32_t host_tier<Eviction>::walk(const tier_chain& chain, std::size_t max_blocks,
                                        std::vector<std::uint32_t>* found) {
  const std::size_t bs = layout_.block_size;
  const std::size_t n = std::min({chain.keys.size(), max_blocks, chain.tokens.size() / bs});
  std::uint64_t parent = chain.parent;
  std::uint32_t hits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t s = index_.find(chain.keys[i]);
    if (s == npos)
      break;
    if (!holds(s, chain.ns, parent, chain.tokens.subspan(i * bs, bs))) {
      // The key is held with other content: a 64-bit collision (or a caller's wrong key).
      ++stats_.errors[static_cast<std::size_t>(tier_error::content_mismatch)];
      break;
    }
    if (is_expired(s))
      break;
    if (found != nullptr)
      found->push_back(s);
    parent = chain.keys[i];
    ++hits;
  }
  ++stats_.lookups;
  stats_.lookup_blocks += chain.keys.size();
  if (hits != 0) {
    ++stats_.hits;
    stats_.hit_blocks += hits;
    stats_.hit_tokens += std::uint64_t{hits} * bs;
  }
  return hits;
}

template <class Eviction>
std::uint32_t host_tier<Eviction>::lookup(const tier_chain& chain) {
  detail::tier_batch<Eviction> batch(evict_, clock_, now_);
  return walk(chain, chain.keys.size(), nullptr);
}

template <class Eviction>
std::uint32_t host_tier<Eviction>::load(const tier_chain& chain,
                                        std::span<const kv_block_view> dst) {
  const auto start = std::chrono::steady_clock::now();
  detail::tier_batch<Eviction> batch(evict_, clock_, now_);
  scratch_.clear();
  const std::uint32_t n = walk(chain, dst.size(), &scratch_);
  const std::size_t segments = kv_segments(layout_);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::byte* src = slot_bytes(scratch_[i]);
    for (std::size_t g = 0; g < segments; ++g)
      std::memcpy(dst[i].data + g * dst[i].stride, src + g * segment_bytes_, segment_bytes_);
  }
  refresh(std::span<const std::uint32_t>(scratch_.data(), n), chain.request_class);
  if (n != 0) {
    stats_.loaded_blocks += n;
    stats_.bytes_out += std::uint64_t{n} * block_bytes_;
    latency_.record(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                   std::chrono::steady_clock::now() - start)
                                                   .count()));
  }
  return n;
}

// ---- recency ---------------------------------------------------------------------------------

template <class Eviction>
bool host_tier<Eviction>::is_candidate(std::uint32_t s) const noexcept {
  return !policy_traits<Eviction>::leaves_only() || child_[s] == npos;
}

template <class Eviction>
void host_tier<Eviction>::policy_insert(std::uint32_t s) {
  evict_.insert(s);
  flags_[s] |= detail::tier_slot_in_policy;
}

template <class Eviction>
void host_tier<Eviction>::policy_erase(std::uint32_t s) noexcept {
  if ((flags_[s] & detail::tier_slot_in_policy) != 0) {
    evict_.erase(s);
    flags_[s] &= static_cast<std::uint8_t>(~detail::tier_slot_in_policy);
  }
}

template <class Eviction>
void host_tier<Eviction>::refresh(std::span<const std::uint32_t> slots,
                                  std::uint32_t request_class) {
  // As the pool does for a hit: the block leaves the candidates (referenced), is touched, and is
  // released tail first, so a parent is always more recent than its children.
  const access_info info{++tick_, request_class};
  for (const std::uint32_t s : slots) {
    policy_erase(s);
    detail::tier_policy_touch(evict_, s, info);
  }
  for (std::size_t i = slots.size(); i-- > 0;) {
    const std::uint32_t s = slots[i];
    if (is_candidate(s))
      policy_insert(s);
    idle_unlink(s);
    idle_push_back(s);
    last_[s] = now_;
  }
}

template <class Eviction>
void host_tier<Eviction>::idle_push_back(std::uint32_t s) noexcept {
  idle_prev_[s] = idle_tail_;
  idle_next_[s] = npos;
  if (idle_tail_ != npos) {
    idle_next_[idle_tail_] = s;
  } else {
    idle_head_ = s;
  }
  idle_tail_ = s;
}

template <class Eviction>
void host_tier<Eviction>::idle_unlink(std::uint32_t s) noexcept {
  const std::uint32_t p = idle_prev_[s];
  const std::uint32_t n = idle_next_[s];
  (p != npos ? idle_next_[p] : idle_head_) = n;
  (n != npos ? idle_prev_[n] : idle_tail_) = p;
  idle_prev_[s] = idle_next_[s] = npos;
}

// ---- stores ----------------------------------------------------------------------------------

template <class Eviction>
std::uint32_t host_tier<Eviction>::acquire_slot() {
  if (free_.empty()) {
    const block_id v = evict_.victim();
    if (v == invalid_block)
      return npos;
    flags_[v] &= static_cast<std::uint8_t>(~detail::tier_slot_in_policy);
    remove(v, removal::evicted);
  }
  const std::uint32_t s = free_.back();
  free_.pop_back();
  return s;
}

template <class Eviction>
std::uint32_t host_tier<Eviction>::find_or_create_ns(const tier_namespace& n) {
  const std::uint32_t found = ns_index_.find(n.key);
  if (found != npos)
    return same_namespace(found, n) ? found : npos;
  std::uint32_t id = 0;
  if (!free_ns_.empty()) {
    id = free_ns_.back();
    free_ns_.pop_back();
  } else {
    id = static_cast<std::uint32_t>(ns_.size());
    ns_.emplace_back();
  }
  ns_record& r = ns_[id];
  r.live = true;
  r.key = n.key;
  r.salt = n.tenant_salt;
  r.session = n.session_id;
  r.extra_keys.assign(n.extra_keys.begin(), n.extra_keys.end());
  r.head = npos;
  r.count = 0;
  ns_index_.assign(n.key, id);
  return id;
}

template <class Eviction>
void host_tier<Eviction>::waiting_push(std::uint64_t parent_key, std::uint32_t s) {
  const std::uint32_t head = waiting_.find(parent_key);
  sib_prev_[s] = npos;
  sib_next_[s] = head;
  if (head != npos)
    sib_prev_[head] = s;
  waiting_.assign(parent_key, s);
}

template <class Eviction>
void host_tier<Eviction>::waiting_unlink(std::uint32_t s) {
  const std::uint32_t p = sib_prev_[s];
  const std::uint32_t n = sib_next_[s];
  if (n != npos)
    sib_prev_[n] = p;
  if (p != npos) {
    sib_next_[p] = n;
  } else if (n != npos) {
    waiting_.assign(parent_key_[s], n);
  } else {
    waiting_.erase(parent_key_[s]);
  }
  sib_prev_[s] = sib_next_[s] = npos;
}

template <class Eviction>
void host_tier<Eviction>::link(std::uint32_t s, std::uint32_t request_class) {
  // Under its parent entry, or waiting for it.
  const std::uint32_t p = index_.find(parent_key_[s]);
  if (p != npos) {
    up_[s] = p;
    sib_prev_[s] = npos;
    sib_next_[s] = child_[p];
    if (child_[p] != npos)
      sib_prev_[child_[p]] = s;
    child_[p] = s;
    if (policy_traits<Eviction>::leaves_only())
      policy_erase(p);  // no longer a leaf
  } else {
    up_[s] = npos;
    waiting_push(parent_key_[s], s);
  }
  // Adopt the fragment roots waiting for this key.
  const std::uint32_t w = waiting_.find(key_[s]);
  if (w != npos) {
    waiting_.erase(key_[s]);
    child_[s] = w;
    for (std::uint32_t c = w; c != npos; c = sib_next_[c])
      up_[c] = s;
  }
  index_.assign(key_[s], s);
  // Namespace list.
  ns_record& r = ns_[ns_of_[s]];
  ns_prev_[s] = npos;
  ns_next_[s] = r.head;
  if (r.head != npos)
    ns_prev_[r.head] = s;
  r.head = s;
  ++r.count;
  // Policy and idle time: registered now.
  detail::tier_policy_touch(evict_, s, access_info{++tick_, request_class});
  if (is_candidate(s))
    policy_insert(s);
  idle_push_back(s);
  last_[s] = now_;
  flags_[s] |= detail::tier_slot_used;
  ++used_;
}

template <class Eviction>
std::uint32_t host_tier<Eviction>::store(std::span<const tier_block> blocks,
                                         tier_store_reason reason) {
  if (!accepts(reason))
    return 0;
  detail::tier_batch<Eviction> batch(evict_, clock_, now_);
  const std::size_t bs = layout_.block_size;
  const std::size_t segments = kv_segments(layout_);
  std::uint32_t held = 0;
  for (const tier_block& b : blocks) {
    if (b.tokens.size() != bs || b.kv.data == nullptr || b.key == b.parent) {
      ++stats_.rejected_blocks;  // not a block of a chain: refused, nothing changes
      continue;
    }
    const std::uint32_t existing = index_.find(b.key);
    if (existing != npos) {
      if (holds(existing, b.ns, b.parent, b.tokens)) {
        const std::uint32_t one[] = {existing};
        refresh(one, b.request_class);
        ++stats_.refreshed_blocks;
        ++held;
      } else {
        ++stats_.rejected_blocks;
        ++stats_.errors[static_cast<std::size_t>(tier_error::content_mismatch)];
      }
      continue;
    }
    // A namespace key held by other request keys is a collision: refuse before evicting.
    const std::uint32_t known = ns_index_.find(b.ns.key);
    if (known != npos && !same_namespace(known, b.ns)) {
      ++stats_.rejected_blocks;
      ++stats_.errors[static_cast<std::size_t>(tier_error::content_mismatch)];
      continue;
    }
    const std::uint32_t s = acquire_slot();
    if (s == npos) {
      ++stats_.rejected_blocks;
      continue;
    }
    const std::uint32_t ns = find_or_create_ns(b.ns);
    key_[s] = b.key;
    parent_key_[s] = b.parent;
    ns_of_[s] = ns;
    std::copy(b.tokens.begin(), b.tokens.end(), tokens_.begin() + std::size_t{s} * bs);
    std::byte* dst = slot_bytes(s);
    for (std::size_t g = 0; g < segments; ++g)
      std::memcpy(dst + g * segment_bytes_, b.kv.data + g * b.kv.stride, segment_bytes_);
    link(s, b.request_class);
    ++stats_.stored_blocks;
    stats_.bytes_in += block_bytes_;
    ++held;
  }
  return held;
}

// ---- removal ---------------------------------------------------------------------------------

template <class Eviction>
void host_tier<Eviction>::remove(std::uint32_t s, removal why) {
  policy_erase(s);
  detail::tier_policy_forget(evict_, s);
  index_.erase(key_[s]);
  // Children stay, waiting for this key (their parent may be in the pool).
  if (child_[s] != npos) {
    std::uint64_t n = 0;
    for (std::uint32_t c = child_[s]; c != npos; c = sib_next_[c]) {
      up_[c] = npos;
      ++n;
    }
    waiting_.assign(key_[s], child_[s]);
    child_[s] = npos;
    stats_.detached += n;
  }
  // Out of its parent's children, or out of the waiting list.
  const std::uint32_t p = up_[s];
  if (p != npos) {
    const std::uint32_t prev = sib_prev_[s];
    const std::uint32_t next = sib_next_[s];
    if (next != npos)
      sib_prev_[next] = prev;
    if (prev != npos) {
      sib_next_[prev] = next;
    } else {
      child_[p] = next;
    }
    sib_prev_[s] = sib_next_[s] = npos;
    up_[s] = npos;
    if (policy_traits<Eviction>::leaves_only() && child_[p] == npos &&
        (flags_[p] & detail::tier_slot_in_policy) == 0)
      policy_insert(p);  // became a leaf
  } else {
    waiting_unlink(s);
  }
  // Out of its namespace.
  ns_record& r = ns_[ns_of_[s]];
  if (ns_prev_[s] != npos) {
    ns_next_[ns_prev_[s]] = ns_next_[s];
  } else {
    r.head = ns_next_[s];
  }
  if (ns_next_[s] != npos)
    ns_prev_[ns_next_[s]] = ns_prev_[s];
  ns_prev_[s] = ns_next_[s] = npos;
  if (--r.count == 0) {
    ns_index_.erase(r.key);
    r.live = false;
    r.extra_keys.clear();
    free_ns_.push_back(ns_of_[s]);
  }
  ns_of_[s] = npos;
  idle_unlink(s);
  flags_[s] = 0;
  --used_;
  free_.push_back(s);
  switch (why) {
    case removal::evicted:
      ++stats_.evictions;
      break;
    case removal::expired:
      ++stats_.expirations;
      break;
    case removal::invalidated:
      ++stats_.invalidated;
      break;
  }
}

template <class Eviction>
tier_invalidation host_tier<Eviction>::invalidate(tier_scope scope) {
  detail::tier_batch<Eviction> batch(evict_, clock_, now_);
  tier_invalidation out;
  for (std::uint32_t id = 0; id < ns_.size(); ++id) {
    const ns_record& r = ns_[id];
    if (!r.live)
      continue;
    bool hit = false;
    switch (scope.what) {
      case tier_scope::kind::tenant:
        hit = r.salt == scope.value;
        break;
      case tier_scope::kind::session:
        hit = r.session == scope.value;
        break;
      case tier_scope::kind::extra_key:
        hit =
            std::find(r.extra_keys.begin(), r.extra_keys.end(), scope.value) != r.extra_keys.end();
        break;
    }
    if (!hit)
      continue;
    // Removing the last entry frees the record; read the head afresh each time.
    while (ns_[id].live && ns_[id].head != npos) {
      remove(ns_[id].head, removal::invalidated);
      ++out.dropped;
    }
  }
  return out;
}

template <class Eviction>
std::uint64_t host_tier<Eviction>::expire() {
  detail::tier_batch<Eviction> batch(evict_, clock_, now_);
  std::uint64_t n = 0;
  while (idle_head_ != npos && is_expired(idle_head_)) {
    remove(idle_head_, removal::expired);
    ++n;
  }
  for (block_id b = detail::tier_policy_pop_expired(evict_); b != invalid_block;
       b = detail::tier_policy_pop_expired(evict_)) {
    flags_[b] &= static_cast<std::uint8_t>(~detail::tier_slot_in_policy);
    remove(b, removal::expired);
    ++n;
  }
  return n;
}

// ---- introspection ---------------------------------------------------------------------------

template <class Eviction>
tier_stats host_tier<Eviction>::stats() const {
  tier_stats s = stats_;
  s.promotion_latency = latency_.summary();
  s.entries = used_;
  s.capacity = capacity_;
  s.bytes_used = std::uint64_t{used_} * block_bytes_;
  s.metadata_bytes =
      index_.bytes() + waiting_.bytes() + ns_index_.bytes() +
      std::size_t{capacity_} *
          (2 * sizeof(std::uint64_t) + 9 * sizeof(std::uint32_t) + sizeof(std::int64_t) + 1) +
      tokens_.size() * sizeof(token_id) + policy_traits<Eviction>::metadata_bytes(evict_);
  return s;
}

template <class Eviction>
status host_tier<Eviction>::check_invariants() const {
  auto bad = [](const std::string& what) {
    return status{error{errc::invalid_argument, "kvkit: host_tier invariant: " + what}};
  };
  std::uint32_t used = 0;
  std::uint32_t candidates = 0;
  std::vector<std::uint32_t> per_ns(ns_.size(), 0);
  for (std::uint32_t s = 0; s < capacity_; ++s) {
    const bool in_use = (flags_[s] & detail::tier_slot_used) != 0;
    const bool in_policy = (flags_[s] & detail::tier_slot_in_policy) != 0;
    if (!in_use) {
      if (in_policy)
        return bad("free slot " + std::to_string(s) + " is an eviction candidate");
      continue;
    }
    ++used;
    if (index_.find(key_[s]) != s)
      return bad("slot " + std::to_string(s) + " is not indexed under its key");
    const std::uint32_t p = index_.find(parent_key_[s]);
    if (p != npos && up_[s] != p)
      return bad("slot " + std::to_string(s) + " is not linked under its held parent");
    if (p == npos) {
      if (up_[s] != npos)
        return bad("slot " + std::to_string(s) + " is linked under a parent not held");
      bool waiting = false;
      for (std::uint32_t c = waiting_.find(parent_key_[s]); c != npos; c = sib_next_[c])
        waiting |= c == s;
      if (!waiting)
        return bad("fragment root " + std::to_string(s) + " is not waiting for its parent key");
    }
    for (std::uint32_t c = child_[s]; c != npos; c = sib_next_[c]) {
      if (up_[c] != s || parent_key_[c] != key_[s])
        return bad("child " + std::to_string(c) + " of slot " + std::to_string(s) +
                   " does not name it as parent");
    }
    if (in_policy != is_candidate(s))
      return bad("slot " + std::to_string(s) + (in_policy ? " is" : " is not") +
                 " an eviction candidate");
    candidates += in_policy ? 1u : 0u;
    if (ns_of_[s] >= ns_.size() || !ns_[ns_of_[s]].live)
      return bad("slot " + std::to_string(s) + " belongs to no live namespace");
    ++per_ns[ns_of_[s]];
  }
  if (used != used_)
    return bad("used count " + std::to_string(used_) + " but " + std::to_string(used) + " held");
  if (index_.size() != used)
    return bad("index holds " + std::to_string(index_.size()) + " keys for " +
               std::to_string(used) + " entries");
  if (evict_.size() != candidates)
    return bad("eviction policy holds " + std::to_string(evict_.size()) + " blocks, " +
               std::to_string(candidates) + " expected");
  if (free_.size() + used != capacity_)
    return bad("free list and held entries do not add up to the capacity");
  for (std::uint32_t id = 0; id < ns_.size(); ++id) {
    const ns_record& r = ns_[id];
    if (!r.live)
      continue;
    std::uint32_t listed = 0;
    for (std::uint32_t s = r.head; s != npos; s = ns_next_[s]) {
      if (ns_of_[s] != id)
        return bad("namespace list holds a slot of another namespace");
      ++listed;
    }
    if (listed != r.count || listed != per_ns[id] || listed == 0)
      return bad("namespace " + std::to_string(id) + " counts disagree");
    if (ns_index_.find(r.key) != id)
      return bad("namespace " + std::to_string(id) + " is not indexed");
  }
  std::uint32_t idle = 0;
  for (std::uint32_t s = idle_head_; s != npos; s = idle_next_[s])
    ++idle;
  if (idle != used)
    return bad("idle list holds " + std::to_string(idle) + " of " + std::to_string(used));
  return {};
}

}  // namespace kvkit
