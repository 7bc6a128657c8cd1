// A downstream program: assembles a prefix cache from the installed headers and checks that a
// second request sharing the first one's prefix hits it.
#include <kvkit/kvkit.hpp>

#include <cstdio>
#include <vector>

using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                    kvkit::lru_eviction, kvkit::host_storage<kvkit::bf16>>;

int main() {
  kvkit::kv_layout layout{.num_layers = 2,
                          .num_kv_heads = 2,
                          .head_dim = 64,
                          .block_size = 16,
                          .num_blocks = 64,
                          .type = kvkit::dtype::bf16};
  auto storage = kvkit::host_storage<kvkit::bf16>::create(layout);
  if (!storage)
    return std::puts(storage.error().message().c_str()), 1;
  auto cache = cache_t::create({}, std::move(*storage));
  if (!cache)
    return std::puts(cache.error().message().c_str()), 1;

  std::vector<kvkit::token_id> prompt(100, 7);
  auto first = cache->admit(prompt);
  if (!first || !cache->commit(first->id) || !cache->finish(first->id))
    return 1;
  prompt.push_back(8);
  auto second = cache->admit(prompt);
  if (!second)
    return 1;
  std::printf("cached %u of %u prompt tokens\n", second->request.cached_tokens,
              second->request.prompt_tokens);
  return second->request.cached_tokens == 96 && cache->check_invariants().ok() ? 0 : 1;
}
