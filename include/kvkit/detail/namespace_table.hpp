// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internal: the namespace table of a prefix_cache (tenant salt, session and extra keys). Not a
// public header.
#pragma once

#include <kvkit/detail/assert.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/types.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace kvkit::detail {

/// One namespace: the keys every block under it shares.
struct namespace_entry {
  std::uint64_t salt = 0;
  std::uint64_t session = 0;
  std::vector<std::uint64_t> extra_keys;
  std::uint64_t key = 0;   // hash of seed, salt, session and extra keys
  std::uint32_t refs = 0;  // live sequences in it
  bool live = false;       // in use (holds sequences or blocks)
  bool indexed = false;    // found by new requests; false once invalidated
};

/// The namespaces of a cache. A request's keys (tenant salt, session, extra keys) name a
/// namespace; requests share blocks only inside one. A namespace lives while a sequence or a
/// cached block is in it; invalidation detaches it from the index (new requests with the same
/// keys get a fresh one) and it dies when its last sequence and block are gone. Indices of dead
/// namespaces are reused. The namespace with index `i` is the tree node `namespace_node(i, ...)`.
class namespace_table {
 public:
  explicit namespace_table(std::uint64_t seed) : hasher_(seed) {}

  /// The namespace key of these keys (roots every chain of hashes in the namespace).
  [[nodiscard]] std::uint64_t key_of(std::uint64_t salt, std::uint64_t session,
                                     std::span<const std::uint64_t> extra_keys) const noexcept {
    return hasher_.root(salt, session, extra_keys);
  }

  /// The indexed namespace with exactly these keys, or `invalid_block`.
  [[nodiscard]] std::uint32_t find(std::uint64_t salt, std::uint64_t session,
                                   std::span<const std::uint64_t> extra_keys,
                                   std::uint64_t key) const {
    auto [it, end] = index_.equal_range(key);
    for (; it != end; ++it) {
      const namespace_entry& e = entries_[it->second];
      if (e.salt == salt && e.session == session && std::ranges::equal(e.extra_keys, extra_keys))
        return it->second;
    }
    return invalid_block;
  }

  /// The indexed namespace with these keys, made when there is none; one more sequence in it.
  /// @p created is set when it was made (its tree root must be opened).
  std::uint32_t acquire(std::uint64_t salt, std::uint64_t session,
                        std::span<const std::uint64_t> extra_keys, std::uint64_t key,
                        bool* created) {
    std::uint32_t ns = find(salt, session, extra_keys, key);
    *created = ns == invalid_block;
    if (*created) {
      if (!free_.empty()) {
        ns = free_.back();
        free_.pop_back();
      } else {
        ns = static_cast<std::uint32_t>(entries_.size());
        entries_.emplace_back();
      }
      namespace_entry& e = entries_[ns];
      e.salt = salt;
      e.session = session;
      e.extra_keys.assign(extra_keys.begin(), extra_keys.end());
      e.key = key;
      e.refs = 0;
      e.live = true;
      e.indexed = true;
      index_.emplace(key, ns);
    }
    ++entries_[ns].refs;
    return ns;
  }

  /// One more sequence in live namespace @p ns (a fork or pin of a sequence in it).
  void add_ref(std::uint32_t ns) noexcept { ++entries_[ns].refs; }
  /// One sequence fewer in @p ns.
  void drop_ref(std::uint32_t ns) noexcept {
    KVKIT_ASSERT(entries_[ns].refs > 0, "prefix_cache: namespace reference count underflow");
    --entries_[ns].refs;
  }

  /// Frees @p ns when it is live, holds no sequence and (@p holds_blocks false) no block.
  void release_if_unused(std::uint32_t ns, bool holds_blocks) {
    namespace_entry& e = entries_[ns];
    if (!e.live || e.refs != 0 || holds_blocks)
      return;
    detach(ns);
    e.live = false;
    e.extra_keys.clear();
    free_.push_back(ns);
  }

  /// Takes @p ns out of the index: new requests no longer find it.
  void detach(std::uint32_t ns) {
    namespace_entry& e = entries_[ns];
    if (!e.indexed)
      return;
    auto [it, end] = index_.equal_range(e.key);
    for (; it != end; ++it) {
      if (it->second == ns) {
        index_.erase(it);
        break;
      }
    }
    e.indexed = false;
  }

  [[nodiscard]] const namespace_entry& operator[](std::uint32_t ns) const noexcept {
    return entries_[ns];
  }
  /// Namespace indices in use or ever used (dead ones included).
  [[nodiscard]] std::uint32_t size() const noexcept {
    return static_cast<std::uint32_t>(entries_.size());
  }
  [[nodiscard]] bool live(std::uint32_t ns) const noexcept {
    return ns < entries_.size() && entries_[ns].live;
  }
  [[nodiscard]] bool indexed(std::uint32_t ns) const noexcept { return entries_[ns].indexed; }
  [[nodiscard]] std::uint64_t seed() const noexcept { return hasher_.seed(); }

 private:
  xxh3_hasher hasher_;
  std::vector<namespace_entry> entries_;
  std::vector<std::uint32_t> free_;
  std::unordered_multimap<std::uint64_t, std::uint32_t> index_;
};

}  // namespace kvkit::detail
