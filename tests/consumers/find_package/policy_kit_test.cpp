// A downstream project's own policies, checked with kvkit's installed conformance test kit
// (docs/testing.md), then composed into a prefix cache.
#include <kvkit/prefix_cache.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/testing/allocator_conformance.hpp>
#include <kvkit/testing/eviction_conformance.hpp>
#include <kvkit/testing/matcher_conformance.hpp>
#include <kvkit/testing/storage_conformance.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mine {

/// Hands out the highest free id first (a stack of free ids, filled in ascending order).
class stack_allocator {
 public:
  explicit stack_allocator(std::uint32_t capacity) {
    for (std::uint32_t b = 0; b < capacity; ++b)
      free_.push_back(b);
  }
  kvkit::block_id allocate() {
    if (free_.empty())
      return kvkit::invalid_block;
    const kvkit::block_id b = free_.back();
    free_.pop_back();
    return b;
  }
  void deallocate(kvkit::block_id b) { free_.push_back(b); }
  std::uint32_t free_count() const { return static_cast<std::uint32_t>(free_.size()); }

 private:
  std::vector<kvkit::block_id> free_;
};

/// Evicts the most recently released block first; only the required members.
class newest_first_eviction {
 public:
  explicit newest_first_eviction(std::uint32_t capacity) { order_.reserve(capacity); }
  void insert(kvkit::block_id b) { order_.push_back(b); }
  void erase(kvkit::block_id b) { order_.erase(std::find(order_.begin(), order_.end(), b)); }
  kvkit::block_id victim() {
    if (order_.empty())
      return kvkit::invalid_block;
    const kvkit::block_id b = order_.back();
    order_.pop_back();
    return b;
  }
  std::uint32_t size() const { return static_cast<std::uint32_t>(order_.size()); }

 private:
  std::vector<kvkit::block_id> order_;
};

/// Chained keys in a std::unordered_multimap: a key is a hash of the parent's key and the tokens.
class map_matcher {
 public:
  static constexpr std::string_view name = "map";
  struct cursor {
    std::uint64_t key = 0;
  };
  map_matcher(std::uint32_t, std::uint64_t seed) : seed_(seed) {}
  cursor root(std::uint32_t, std::uint64_t ns_key) const { return cursor{ns_key ^ seed_}; }
  cursor child(const cursor& parent, std::span<const kvkit::token_id> tokens) const {
    std::uint64_t h = parent.key * 0x9E3779B97F4A7C15ull + tokens.size();
    for (kvkit::token_id t : tokens)
      h = (h ^ std::hash<kvkit::token_id>{}(t)) * 0xBF58476D1CE4E5B9ull;
    return cursor{h};
  }
  template <class Verify>
  kvkit::block_id find(const cursor& c, Verify&& verify) const {
    auto [it, end] = blocks_.equal_range(c.key);
    for (; it != end; ++it) {
      if (verify(it->second))
        return it->second;
    }
    return kvkit::invalid_block;
  }
  void insert(const cursor& c, kvkit::block_id b) {
    blocks_.emplace(c.key, b);
    key_of_[b] = c.key;
  }
  void erase(kvkit::block_id b) {
    auto [it, end] = blocks_.equal_range(key_of_.at(b));
    for (; it != end; ++it) {
      if (it->second == b) {
        blocks_.erase(it);
        break;
      }
    }
    key_of_.erase(b);
  }

 private:
  std::uint64_t seed_;
  std::unordered_multimap<std::uint64_t, kvkit::block_id> blocks_;
  std::unordered_map<kvkit::block_id, std::uint64_t> key_of_;
};

static_assert(kvkit::block_allocator<stack_allocator>);
static_assert(kvkit::eviction_policy<newest_first_eviction>);
static_assert(kvkit::prefix_matcher<map_matcher>);

TEST(PolicyKit, MyPoliciesComposeIntoACache) {
  using cache_t =
      kvkit::prefix_cache<stack_allocator, map_matcher, newest_first_eviction, kvkit::no_storage>;
  auto storage = kvkit::no_storage::create(4, 16);
  ASSERT_TRUE(storage.ok()) << storage.message();
  auto cache = cache_t::create({.seed = 1}, std::move(*storage));
  ASSERT_TRUE(cache.ok()) << cache.message();
  std::vector<kvkit::token_id> prompt{1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (int round = 0; round < 3; ++round) {
    auto a = cache->admit(prompt);
    ASSERT_TRUE(a.ok()) << a.message();
    EXPECT_EQ(a->request.cached_tokens, round == 0 ? 0u : 8u);
    ASSERT_TRUE(cache->commit(a->id).ok());
    ASSERT_TRUE(cache->finish(a->id).ok());
    EXPECT_TRUE(cache->check_invariants().ok()) << cache->check_invariants().message();
  }
}

}  // namespace mine

namespace kvkit::testing {
INSTANTIATE_TYPED_TEST_SUITE_P(mine, allocator_conformance,
                               ::testing::Types<mine::stack_allocator>);
INSTANTIATE_TYPED_TEST_SUITE_P(mine, eviction_conformance,
                               ::testing::Types<mine::newest_first_eviction>);
INSTANTIATE_TYPED_TEST_SUITE_P(mine, matcher_conformance, ::testing::Types<mine::map_matcher>);
INSTANTIATE_TYPED_TEST_SUITE_P(mine, storage_conformance, ::testing::Types<kvkit::no_storage>);
}  // namespace kvkit::testing
