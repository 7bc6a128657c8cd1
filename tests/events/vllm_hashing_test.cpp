// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// vLLM-compatible block hashes against vectors produced by vLLM's own functions
// (tests/events/data/vllm_hash_vectors.json, made by generate_vllm_hash_vectors.py from vLLM
// v0.33.0's hash_block_tokens, init_none_hash and request block hasher with sha256_cbor).
#include <kvkit/kvkit.hpp>
#include <kvkit/testing/matcher_conformance.hpp>
#include <kvkit/vllm_hashing.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "support/choice_source.hpp"
#include "support/differential_driver.hpp"

namespace kvkit::testing {
namespace {
// The matcher conformance suite over the vLLM-hash matcher.
INSTANTIATE_TYPED_TEST_SUITE_P(vllm, matcher_conformance, ::testing::Types<vllm_hash_matcher>);
// Whole blocks only: the partial-block suite does not apply.
static_assert(!matcher_has_find_partial<vllm_hash_matcher>);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(matcher_partial_conformance);
}  // namespace
}  // namespace kvkit::testing

namespace {

using kvkit::token_id;
using kvkit::vllm_block_hash;
using json = nlohmann::json;

const json& vectors() {
  static const json v = [] {
    std::ifstream in(KVKIT_VLLM_HASH_VECTORS);
    if (!in)
      throw std::runtime_error("cannot open " + std::string(KVKIT_VLLM_HASH_VECTORS));
    return json::parse(in);
  }();
  return v;
}

std::vector<std::uint8_t> unhex(const std::string& s) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < s.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
  return out;
}

vllm_block_hash digest(const std::string& hex) {
  const auto b = unhex(hex);
  vllm_block_hash d{};
  EXPECT_EQ(b.size(), d.size());
  std::copy(b.begin(), b.end(), d.begin());
  return d;
}

std::string hex(std::span<const std::uint8_t> b) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  for (const std::uint8_t c : b) {
    s.push_back(digits[c >> 4]);
    s.push_back(digits[c & 0xF]);
  }
  return s;
}

// A tagged extra key as the vectors write it (["lora", name, path], ["mm", id, offset], ...).
kvkit::vllm_extra_key extra_key(const json& k) {
  const std::string tag = k.at(0).get<std::string>();
  if (tag == "lora")
    return kvkit::vllm_lora_key{k.at(1).get<std::string>(), k.at(2).get<std::string>()};
  if (tag == "mm")
    return kvkit::vllm_mm_key{k.at(1).get<std::string>(), k.at(2).get<std::int64_t>()};
  if (tag == "cache_salt")
    return kvkit::vllm_cache_salt_key{k.at(1).get<std::string>()};
  if (tag == "prompt_embeds")
    return kvkit::vllm_prompt_embeds_key{digest(k.at(1).at("bytes").get<std::string>())};
  throw std::runtime_error("unknown extra key " + k.dump());
}

std::vector<kvkit::vllm_extra_key> extra_keys(const json& keys) {
  std::vector<kvkit::vllm_extra_key> out;
  if (!keys.is_null()) {
    for (const json& k : keys)
      out.push_back(extra_key(k));
  }
  return out;
}

TEST(VllmHashing, VectorsComeFromVllm) {
  const json& p = vectors().at("provenance");
  EXPECT_EQ(p.at("vllm_version").get<std::string>(), "0.33.0");
  EXPECT_EQ(p.at("hash_function").get<std::string>(), "vllm.utils.hashing.sha256_cbor");
  EXPECT_GE(vectors().at("blocks").size(), 10u);
  EXPECT_GE(vectors().at("requests").size(), 5u);
}

TEST(VllmHashing, NoneHashOfEverySeed) {
  for (const json& v : vectors().at("none_hash")) {
    const std::string seed = v.at("seed").get<std::string>();
    EXPECT_EQ(hex(kvkit::vllm_none_hash(seed)), v.at("hash").get<std::string>()) << seed;
  }
  EXPECT_EQ(hex(kvkit::vllm_none_hash()),
            vectors().at("none_hash").at(0).at("hash").get<std::string>());
}

TEST(VllmHashing, BlockHashesAndTheirCborPreimages) {
  const vllm_block_hash none = kvkit::vllm_none_hash();
  for (const json& v : vectors().at("blocks")) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    const vllm_block_hash parent =
        v.at("parent").is_null() ? none : digest(v.at("parent").get<std::string>());
    const auto tokens = v.at("tokens").get<std::vector<token_id>>();
    const auto keys = extra_keys(v.at("extra_keys"));

    // The CBOR preimage, byte for byte as cbor2.dumps(..., canonical=True) wrote it.
    std::vector<std::uint8_t> cbor;
    kvkit::detail::vllm_block_preimage(parent, tokens, keys, cbor);
    EXPECT_EQ(hex(cbor), v.at("cbor").get<std::string>());

    const vllm_block_hash h = kvkit::vllm_hash_block_tokens(parent, tokens, keys);
    EXPECT_EQ(hex(h), v.at("hash").get<std::string>());
    EXPECT_EQ(kvkit::vllm_external_hash(h), v.at("external").get<std::uint64_t>());
  }
}

TEST(VllmHashing, RequestBlockHasherWithLoraMultimodalAndSalt) {
  for (const json& r : vectors().at("requests")) {
    SCOPED_TRACE(r.at("name").get<std::string>());
    kvkit::vllm_request_keys keys;
    if (!r.at("lora").is_null())
      keys.lora = kvkit::vllm_lora_key{r.at("lora").at(0), r.at("lora").at(1)};
    for (const json& f : r.at("mm_features"))
      keys.mm_features.push_back({f.at(0), f.at(1), f.at(2)});
    if (!r.at("cache_salt").is_null())
      keys.cache_salt = r.at("cache_salt").get<std::string>();
    const auto tokens = r.at("tokens").get<std::vector<token_id>>();
    const std::uint32_t bs = r.at("block_size");

    const auto hashes = kvkit::vllm_request_block_hashes(tokens, bs, keys);
    ASSERT_TRUE(hashes) << hashes.error().message();
    ASSERT_EQ(hashes->size(), r.at("hashes").size());
    for (std::size_t i = 0; i < hashes->size(); ++i) {
      EXPECT_EQ(hex((*hashes)[i]), r.at("hashes").at(i).get<std::string>()) << "block " << i;
      EXPECT_EQ(kvkit::vllm_external_hash((*hashes)[i]),
                r.at("external").at(i).get<std::uint64_t>());
      // The extra keys vLLM generated for the block, in its order.
      const auto k = kvkit::vllm_block_extra_keys(keys, static_cast<std::uint32_t>(i * bs),
                                                  static_cast<std::uint32_t>((i + 1) * bs));
      const json& want = r.at("extra_keys").at(i);
      ASSERT_EQ(k.size(), want.is_null() ? 0u : want.size()) << "block " << i;
      for (std::size_t j = 0; j < k.size(); ++j) {
        const auto expected = extra_key(want.at(j));
        EXPECT_EQ(k[j].index(), expected.index());
        if (const auto* mm = std::get_if<kvkit::vllm_mm_key>(&k[j])) {
          EXPECT_EQ(mm->identifier, std::get<kvkit::vllm_mm_key>(expected).identifier);
          EXPECT_EQ(mm->offset, std::get<kvkit::vllm_mm_key>(expected).offset);
        }
      }
    }
  }
}

TEST(VllmHashing, ZeroBlockSizeIsAnError) {
  const std::vector<token_id> t = {1, 2, 3};
  const auto r = kvkit::vllm_request_block_hashes(t, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), kvkit::errc::invalid_argument);
  EXPECT_NE(r.error().message().find("block_size must be >= 1"), std::string::npos);
}

// The matcher's keys in the shared namespace are vLLM's integer block hashes; other namespaces
// are salted on their first block.
TEST(VllmHashMatcher, SharedNamespaceKeysAreVllmHashes) {
  const std::uint64_t seed = 0x1234;
  const kvkit::vllm_hash_matcher m(64, seed);
  const std::uint64_t shared = kvkit::xxh3_hasher(seed).root(0, {});
  const json& r = vectors().at("requests").at(0);  // plain request
  ASSERT_TRUE(r.at("lora").is_null() && r.at("mm_features").empty() &&
              r.at("cache_salt").is_null());
  const auto tokens = r.at("tokens").get<std::vector<token_id>>();
  const std::size_t bs = r.at("block_size");
  auto c = m.root(0, shared);
  for (std::size_t i = 0; i < r.at("external").size(); ++i) {
    c = m.child(c, std::span<const token_id>(tokens).subspan(i * bs, bs));
    EXPECT_EQ(c.hash, r.at("external").at(i).get<std::uint64_t>()) << "block " << i;
  }

  const std::uint64_t tenant = kvkit::xxh3_hasher(seed).root(42, {});
  const auto t0 = std::span<const token_id>(tokens).first(bs);
  const auto salted = m.child(m.root(0, tenant), t0);
  const kvkit::vllm_extra_key salt[] = {
      kvkit::vllm_cache_salt_key{kvkit::vllm_hasher::namespace_salt(tenant)}};
  EXPECT_EQ(salted.hash, kvkit::vllm_external_hash(
                             kvkit::vllm_hash_block_tokens(kvkit::vllm_none_hash(), t0, salt)));
  EXPECT_NE(salted.hash, r.at("external").at(0).get<std::uint64_t>());
  EXPECT_EQ(kvkit::vllm_hasher::namespace_salt(0xabc), "kvkit-ns-0000000000000abc");
}

TEST(VllmHashMatcher, CacheHitsAreVerifiedAndTenantsIsolated) {
  using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::vllm_hash_matcher,
                                      kvkit::lru_eviction, kvkit::no_storage>;
  auto cache = cache_t::create({.seed = 99}, kvkit::no_storage::create(4, 64).value()).value();
  std::vector<token_id> prompt(17);
  for (std::size_t i = 0; i < prompt.size(); ++i)
    prompt[i] = static_cast<token_id>(1000 + i);
  auto a = cache.admit(prompt).value();
  EXPECT_EQ(a.request.cached_tokens, 0u);
  ASSERT_TRUE(cache.commit(a.id));
  ASSERT_TRUE(cache.finish(a.id));
  EXPECT_EQ(cache.match(prompt), 16u);
  EXPECT_EQ(cache.match(prompt, {.tenant_salt = 5}), 0u);
  auto b = cache.admit(prompt, {.tenant_salt = 5}).value();
  ASSERT_TRUE(cache.commit(b.id));
  ASSERT_TRUE(cache.finish(b.id));
  EXPECT_EQ(cache.match(prompt, {.tenant_salt = 5}), 16u);
  std::vector<token_id> diverging = prompt;
  diverging[9] = 7;
  EXPECT_EQ(cache.match(diverging), 8u);
  ASSERT_TRUE(cache.check_invariants()) << cache.check_invariants().message();
}

void add_gtest_failure(const char* file, int line, const std::string& message) {
  ADD_FAILURE_AT(file, line) << message;
}

// The cache with the vLLM-hash matcher against the independent model of tests/core's
// differential test (random admits, commits, appends, forks, evictions, invalidations).
TEST(VllmHashMatcher, CacheAgreesWithTheReferenceModel) {
  using cache_t = kvkit::prefix_cache<kvkit::free_list_allocator, kvkit::vllm_hash_matcher,
                                      kvkit::lru_eviction, kvkit::host_storage<float>>;
  constexpr std::uint32_t pools[] = {4, 6, 8, 16, 32};
  std::uint64_t hits = 0;
  for (const std::uint32_t block_size : {1u, 4u, 16u}) {
    for (std::uint64_t seed = 7000; seed < 7010; ++seed) {
      const std::uint32_t num_blocks = pools[seed % std::size(pools)];
      SCOPED_TRACE(::testing::Message() << "seed=" << seed << " block_size=" << block_size
                                        << " num_blocks=" << num_blocks);
      kvkit::test::rng_choices choices(seed);
      kvkit::test::differential_run<cache_t, kvkit::test::rng_choices> run(
          choices, add_gtest_failure, seed, block_size, num_blocks);
      hits += run.run(300).hits;
      if (::testing::Test::HasFailure())
        return;
    }
  }
  EXPECT_GT(hits, 0u);
}

}  // namespace
