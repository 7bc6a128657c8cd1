// KVKIT_EXPECT_ERROR: Eviction declares .options. but has no constructor .Eviction.std::uint32_t
// capacity, const Eviction::options Copyright 2026 The kvkit Authors. SPDX-License-Identifier:
// Apache-2.0 An eviction policy that declares `options` but cannot be constructed from them is
// rejected with a message naming the constructor to add: otherwise the options given to create()
// would be silently dropped. Compiling with -DKVKIT_COMPILE_FAIL_CONTROL adds the constructor; the
// file then compiles, which shows that nothing else in it is broken.

#include <kvkit/allocator/free_list.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>

#include <cstdint>

struct eviction_with_options {
  struct options {
    std::uint32_t keep = 0;
  };
  explicit eviction_with_options(std::uint32_t) {}
#ifdef KVKIT_COMPILE_FAIL_CONTROL
  eviction_with_options(std::uint32_t, const options&) {}
#endif
  void insert(kvkit::block_id) {}
  void erase(kvkit::block_id) {}
  kvkit::block_id victim() {
    return kvkit::invalid_block;
  }
  std::uint32_t size() const {
    return 0;
  }
};

using cache = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                  eviction_with_options, kvkit::no_storage>;

int main() {
  [[maybe_unused]] cache* p = nullptr;
  [[maybe_unused]] auto size = sizeof(cache);  // instantiates the class: its static_asserts run
  return 0;
}
