// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit quickstart: three requests share a 100-token system prompt; the second and third reuse
// the K/V the first one computed for it.
#include <kvkit/kvkit.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::hash_matcher,
                                    kvkit::lru_eviction, kvkit::host_storage<kvkit::bf16>>;
using tokens_t = std::vector<kvkit::token_id>;

// Stand-in tokenizer: `count` consecutive token ids from `first` (equal text, equal ids).
tokens_t tokenize(kvkit::token_id first, kvkit::token_id count) {
  tokens_t t;
  for (kvkit::token_id i = 0; i < count; ++i)
    t.push_back(first + i);
  return t;
}

// Stand-in model: writes K and V of tokens [begin, end) of a sequence into its blocks.
void write_kv(cache_t& cache, const kvkit::sequence_view& seq, std::size_t begin, std::size_t end) {
  auto& kv = cache.storage();
  const kvkit::kv_layout& l = kv.layout();
  for (std::size_t t = begin; t < end; ++t) {
    const kvkit::block_id block = seq.blocks[t / l.block_size];
    const auto slot = static_cast<std::uint32_t>(t % l.block_size);
    const float value = static_cast<float>(seq.tokens[t] % 1000) / 1000.0f;
    for (std::uint32_t layer = 0; layer < l.num_layers; ++layer)
      for (std::uint32_t k_or_v = 0; k_or_v < 2; ++k_or_v)
        for (std::uint32_t head = 0; head < l.num_kv_heads; ++head)
          for (std::uint32_t d = 0; d < l.head_dim; ++d)
            kv.at(layer, k_or_v, block, slot, head, d) = kvkit::to_bf16(value);
  }
}

int fail(const char* what, const std::string& message) {
  std::fprintf(stderr, "quickstart: %s failed: %s\n", what, message.c_str());
  return 1;
}

int main() {
  // A toy model: 2 layers, 2 KV heads of 64 bf16 elements; 64 blocks of 16 tokens (defaults).
  kvkit::kv_layout layout{.num_layers = 2, .num_kv_heads = 2, .head_dim = 64, .num_blocks = 64};

  auto storage = kvkit::host_storage<kvkit::bf16>::create(layout);
  if (!storage)
    return fail("host_storage::create", storage.error().message());
  auto cache = cache_t::create({}, std::move(*storage));
  if (!cache)
    return fail("prefix_cache::create", cache.error().message());

  const tokens_t system = tokenize(1000, 100);  // shared by every request
  const tokens_t users[] = {tokenize(5000, 20), tokenize(6000, 35), tokenize(7000, 12)};
  for (int r = 0; r < 3; ++r) {
    tokens_t prompt = system;
    prompt.insert(prompt.end(), users[r].begin(), users[r].end());
    auto adm = cache->admit(prompt);  // match the cached prefix, allocate blocks for the rest
    if (!adm)
      return fail("admit", adm.error().message());
    auto seq = cache->sequence(adm->id);
    if (!seq)
      return fail("sequence", seq.error().message());
    write_kv(*cache, *seq, adm->request.cached_tokens, prompt.size());  // prefill: uncached only
    if (auto c = cache->commit(adm->id); !c)
      return fail("commit", c.error().message());

    const tokens_t decoded = tokenize(9000 + 100 * r, 4);  // "generate" four tokens
    if (auto s = cache->append(adm->id, decoded); !s)
      return fail("append", s.message());
    seq = cache->sequence(adm->id);  // the block table may have grown: view it again
    if (!seq)
      return fail("sequence", seq.error().message());
    write_kv(*cache, *seq, prompt.size(), seq->tokens.size());
    if (auto c = cache->commit(adm->id); !c)
      return fail("commit", c.error().message());
    if (auto s = cache->finish(adm->id); !s)
      return fail("finish", s.message());

    const kvkit::request_stats& rs = adm->request;
    std::printf("request %d: prompt_tokens=%3u cached_tokens=%3u hit rate %5.1f%%\n", r + 1,
                rs.prompt_tokens, rs.cached_tokens, 100.0 * rs.hit_rate());
  }

  // Hits come in whole blocks: 96 of the 100 shared tokens (6 blocks of 16) are reused.
  const kvkit::cache_stats st = cache->stats();
  std::printf("cache: token hit rate %.1f%%, prefill reduction %.1f%%, tokens saved %llu\n",
              100.0 * st.token_hit_rate(), 100.0 * st.prefill_reduction_ratio(),
              static_cast<unsigned long long>(st.tokens_saved()));
  std::printf("blocks: %u free, %u cached, %u in use of %u; metadata %zu bytes (%.0f per block)\n",
              st.blocks_free, st.blocks_cached, st.blocks_in_use(), st.blocks_total,
              st.metadata_bytes, st.metadata_bytes_per_block());
  return 0;
}
