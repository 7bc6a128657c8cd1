// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit custom policy: seeded random eviction, required members only, inside a prefix_cache.
#include <kvkit/kvkit.hpp>

#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <utility>
#include <vector>
class random_eviction {
 public:
  explicit random_eviction(std::uint32_t capacity) : slot_(capacity) { blocks_.reserve(capacity); }
  void insert(kvkit::block_id b) {
    slot_[b] = static_cast<std::uint32_t>(blocks_.size());
    blocks_.push_back(b);
  }
  void erase(kvkit::block_id b) {  // swap with the last, O(1)
    const kvkit::block_id last = blocks_.back();
    blocks_[slot_[b]] = last;
    slot_[last] = slot_[b];
    blocks_.pop_back();
  }
  kvkit::block_id victim() {
    if (blocks_.empty())
      return kvkit::invalid_block;
    const kvkit::block_id b = blocks_[rng_() % blocks_.size()];
    erase(b);
    std::printf("  evicting block %u\n", b);
    return b;
  }
  std::uint32_t size() const { return static_cast<std::uint32_t>(blocks_.size()); }

 private:
  std::vector<kvkit::block_id> blocks_;  // the candidates
  std::vector<std::uint32_t> slot_;      // where each candidate sits in blocks_
  std::mt19937 rng_{2026};               // seeded: the same run evicts the same blocks
};
static_assert(kvkit::eviction_policy<random_eviction>);
using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                    random_eviction, kvkit::no_storage>;
int main() {
  auto storage = kvkit::no_storage::create(/*block_size=*/4, /*num_blocks=*/8);
  auto cache = cache_t::create({}, std::move(*storage));
  if (!cache)
    return std::fprintf(stderr, "%s\n", cache.error().message().c_str()), 1;
  for (kvkit::token_id r = 0; r < 6; ++r) {  // six 9-token prompts: 2 cached blocks each
    std::vector<kvkit::token_id> prompt(9);
    std::iota(prompt.begin(), prompt.end(), 100 * r);
    std::printf("request %u\n", r);
    auto adm = cache->admit(prompt);  // evicts when the 8 blocks run out
    if (!adm || !cache->commit(adm->id) || !cache->finish(adm->id))
      return std::fprintf(stderr, "request %u failed\n", r), 1;
  }
  const kvkit::cache_stats st = cache->stats();
  std::printf("evictions %llu (cascades %llu)\n", (unsigned long long)st.evictions,
              (unsigned long long)st.cascade_evictions);
  return 0;
}
