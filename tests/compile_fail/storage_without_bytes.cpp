// KVKIT_EXPECT_ERROR: Storage must provide .std::size_t bytes
// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A storage without `bytes()` is rejected with a message naming it.
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

struct bad_storage {
  const kvkit::kv_layout& layout() const { return layout_; }
  void copy_block(kvkit::block_id, kvkit::block_id) {}
#ifdef KVKIT_COMPILE_FAIL_CONTROL
  std::size_t bytes() const {
    return 0;
  }
#endif
  kvkit::kv_layout layout_;
};

using cache = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                  kvkit::lru_eviction, bad_storage>;

int main() {
  [[maybe_unused]] cache* p = nullptr;
  [[maybe_unused]] auto size = sizeof(cache);  // instantiates the class: its static_asserts run
  return 0;
}
