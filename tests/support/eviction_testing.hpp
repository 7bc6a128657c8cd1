// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Helpers for eviction policy tests: a manual clock, a standalone cache simulation that
/// drives a policy the way a prefix cache does, and request helpers for caches.
#pragma once

#include <kvkit/allocator/free_list.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvkit::test {

/// @brief A clock that moves only when told; copies share the time.
class manual_clock {
 public:
  /// @brief The callable to put in a policy's options.
  [[nodiscard]] std::function<std::chrono::nanoseconds()> fn() const {
    return [t = now_] {
      return *t;
    };
  }
  void advance(std::chrono::nanoseconds d) { *now_ += d; }
  [[nodiscard]] std::chrono::nanoseconds now() const { return *now_; }

 private:
  std::shared_ptr<std::chrono::nanoseconds> now_ =
      std::make_shared<std::chrono::nanoseconds>(std::chrono::seconds(1000));
};

/// @brief A cache of single blocks with no prefix structure, driving a policy as a prefix cache
/// does: a miss takes a free slot (or evicts one and forgets it), touches it and releases it; a
/// hit takes the block out of the policy, touches it and releases it.
template <class E>
class object_cache {
 public:
  explicit object_cache(std::uint32_t slots) : policy_(slots), slots_(slots) {}
  template <class O>
  object_cache(std::uint32_t slots, const O& options) : policy_(slots, options), slots_(slots) {}

  /// @brief Accesses object @p key by a request of class @p cls.
  /// @return True on a hit.
  bool access(std::uint64_t key, std::uint32_t cls = 0) {
    ++tick_;
    if (auto it = where_.find(key); it != where_.end()) {
      policy_.erase(it->second);
      touch_if_supported_cls(it->second, cls);
      policy_.insert(it->second);
      return true;
    }
    block_id b;
    if (where_.size() < slots_) {
      b = static_cast<block_id>(where_.size());
      while (owner_.count(b))
        ++b;
    } else {
      b = policy_.victim();
      EXPECT_NE(b, invalid_block);
      evicted_.push_back(owner_.at(b));
      where_.erase(owner_.at(b));
      policy_traits<E>::forget(policy_, b);
    }
    owner_[b] = key;
    where_[key] = b;
    touch_if_supported_cls(b, cls);
    policy_.insert(b);
    return false;
  }
  [[nodiscard]] bool cached(std::uint64_t key) const { return where_.count(key) != 0; }
  [[nodiscard]] const std::vector<std::uint64_t>& evicted() const { return evicted_; }
  E& policy() { return policy_; }

 private:
  void touch_if_supported_cls(block_id b, std::uint32_t cls) {
    policy_traits<E>::touch(policy_, b, access_info{tick_, cls});
  }
  E policy_;
  std::uint32_t slots_;
  std::uint64_t tick_ = 0;
  std::unordered_map<std::uint64_t, block_id> where_;
  std::unordered_map<block_id, std::uint64_t> owner_;
  std::vector<std::uint64_t> evicted_;
};

/// @brief A bookkeeping-only cache over policy @p E with the hash matcher.
template <class E>
using cache_over = prefix_cache<free_list_allocator, hash_matcher, E, no_storage>;

/// @brief Makes a cache of @p num_blocks blocks of @p block_size tokens over @p E with eviction
/// settings @p options.
template <class E>
cache_over<E> make_cache_with(std::uint32_t num_blocks, std::uint32_t block_size,
                              const policy_options_t<E>& options = {}) {
  auto storage = no_storage::create(block_size, num_blocks);
  EXPECT_TRUE(storage.ok()) << storage.status().message();
  auto cache = cache_over<E>::create(cache_config{.seed = 42}, std::move(storage).value(), options);
  EXPECT_TRUE(cache.ok()) << cache.status().message();
  return std::move(cache).value();
}

/// @brief Runs one whole request: admit, commit every token, finish.
/// @return Its cached prompt tokens.
template <class Cache>
std::uint32_t run_request(Cache& c, std::span<const token_id> prompt,
                          std::uint32_t request_class = 0) {
  request_options o;
  o.request_class = request_class;
  auto a = c.admit(prompt, o);
  EXPECT_TRUE(a.ok()) << a.status().message();
  if (!a.ok())
    return 0;
  EXPECT_TRUE(c.commit(a->id).ok());
  EXPECT_TRUE(c.finish(a->id).ok());
  return a->request.cached_tokens;
}

}  // namespace kvkit::test
