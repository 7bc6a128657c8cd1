// KVKIT_EXPECT_ERROR: Matcher must define a copyable nested type .cursor
// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A matcher without a nested `cursor` type is rejected with a message naming it.
// Compiling with -DKVKIT_COMPILE_FAIL_CONTROL adds the missing member back; the file then compiles,
// which shows that nothing else in it is broken.

#include <kvkit/allocator/free_list.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

struct bad_matcher {
  bad_matcher(std::uint32_t, std::uint64_t) {}
#ifdef KVKIT_COMPILE_FAIL_CONTROL
  struct cursor {
    std::uint64_t hash = 0;
  };
#endif
  cursor root(std::uint32_t, std::uint64_t key) const {
    return cursor{key};
  }
  cursor child(const cursor& c, std::span<const kvkit::token_id>) const {
    return c;
  }
  template <class Verify>
  kvkit::block_id find(const cursor&, Verify&&) const {
    return kvkit::invalid_block;
  }
  void insert(const cursor&, kvkit::block_id) {}
  void erase(kvkit::block_id) {}
};

using cache = kvkit::prefix_cache<kvkit::free_list_allocator, bad_matcher, kvkit::lru_eviction,
                                  kvkit::no_storage>;

int main() {
  [[maybe_unused]] cache* p = nullptr;
  [[maybe_unused]] auto size = sizeof(cache);  // instantiates the class: its static_asserts run
  return 0;
}
