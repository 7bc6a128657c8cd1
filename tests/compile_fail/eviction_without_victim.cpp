// KVKIT_EXPECT_ERROR: Eviction must provide .kvkit::block_id victim
// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// An eviction policy without `victim()` is rejected with a message naming it.
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

struct bad_eviction {
  explicit bad_eviction(std::uint32_t) {}
  void insert(kvkit::block_id) {}
  void erase(kvkit::block_id) {}
#ifdef KVKIT_COMPILE_FAIL_CONTROL
  kvkit::block_id victim() {
    return kvkit::invalid_block;
  }
#endif
  std::uint32_t size() const {
    return 0;
  }
};

using cache = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher, bad_eviction,
                                  kvkit::no_storage>;

int main() {
  [[maybe_unused]] cache* p = nullptr;
  [[maybe_unused]] auto size = sizeof(cache);  // instantiates the class: its static_asserts run
  return 0;
}
