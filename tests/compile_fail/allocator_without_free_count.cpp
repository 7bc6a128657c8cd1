// KVKIT_EXPECT_ERROR: Allocator must provide .std::uint32_t free_count
// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// An allocator without `free_count()` is rejected with a message naming it.
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

struct bad_allocator {
  explicit bad_allocator(std::uint32_t) {}
  kvkit::block_id allocate() { return kvkit::invalid_block; }
  void deallocate(kvkit::block_id) {}
#ifdef KVKIT_COMPILE_FAIL_CONTROL
  std::uint32_t free_count() const {
    return 0;
  }
#endif
};

using cache =
    kvkit::prefix_cache<bad_allocator, kvkit::hash_matcher, kvkit::lru_eviction, kvkit::no_storage>;

int main() {
  [[maybe_unused]] cache* p = nullptr;
  [[maybe_unused]] auto size = sizeof(cache);  // instantiates the class: its static_asserts run
  return 0;
}
