// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The tiers' building blocks, without a server: the stored value format and its verification,
// the key index (against std::unordered_map), the latency histogram and error episodes.
#include <kvkit/tier.hpp>
#include <kvkit/tiers/detail/flat_map.hpp>
#include <kvkit/tiers/detail/tier_common.hpp>
#include <kvkit/tiers/detail/tier_value.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include "tiers/tier_test_support.hpp"

namespace {

using kvkit::detail::value_check;
using kvkit::test::iota_tokens;
using kvkit::test::small_layout;
using kvkit::test::test_chain;

struct value_case {
  kvkit::kv_layout layout = small_layout();
  std::uint64_t fp = kvkit::detail::layout_fingerprint(small_layout(), "m");
  test_chain chain{small_layout(), 1, 5, 9, {3, 4}, iota_tokens(8, 0)};
  std::vector<std::byte> value;

  value_case() : value(kvkit::detail::tier_value_bytes(small_layout())) {
    kvkit::detail::encode_tier_value(value.data(), layout, fp, chain.block(1));
  }
  [[nodiscard]] kvkit::detail::value_expectation expect() const {
    return {&layout,
            fp,
            chain.keys[1],
            chain.keys[0],
            &chain.ns,
            kvkit::detail::extra_keys_digest(chain.ns.extra_keys),
            chain.block_tokens(1)};
  }
  [[nodiscard]] value_check check(bool payload = true) const {
    return kvkit::detail::check_tier_value(value, value.size(), expect(), payload);
  }
};

TEST(TierValue, RoundTripsAndCarriesTheDocumentedHeader) {
  value_case v;
  EXPECT_EQ(v.value.size(), 80u + 4u * 4u + small_layout().block_bytes_all_layers());
  EXPECT_EQ(std::memcmp(v.value.data(), "KVKT", 4), 0);
  std::uint16_t version = 0;
  std::memcpy(&version, v.value.data() + 4, 2);
  EXPECT_EQ(version, 1u);
  std::uint64_t key = 0;
  std::memcpy(&key, v.value.data() + 16, 8);
  EXPECT_EQ(key, v.chain.keys[1]);
  EXPECT_EQ(v.check(), value_check::ok);
  std::vector<std::byte> out(small_layout().block_bytes_all_layers());
  kvkit::detail::copy_tier_payload(v.value, v.layout,
                                   kvkit::contiguous_block_view(out.data(), v.layout));
  EXPECT_EQ(out, v.chain.kv[1]);
}

TEST(TierValue, EveryCorruptionIsDetected) {
  {
    value_case v;
    v.value.resize(v.value.size() - 1);
    EXPECT_EQ(v.check(), value_check::malformed);
  }
  {
    value_case v;
    v.value[0] = std::byte{'X'};
    EXPECT_EQ(v.check(), value_check::malformed);
  }
  {
    value_case v;
    v.value[4] = std::byte{2};
    EXPECT_EQ(v.check(), value_check::version_mismatch);
  }
  {
    value_case v;
    v.fp ^= 1;  // the reader expects another model/layout
    EXPECT_EQ(v.check(), value_check::layout_mismatch);
  }
  for (const std::size_t field : {16u, 24u, 32u, 40u, 48u, 80u}) {  // key .. extra digest, tokens
    value_case v;
    v.value[field] ^= std::byte{1};
    EXPECT_EQ(v.check(), value_check::content_mismatch) << "byte " << field;
  }
  {
    value_case v;
    v.value.back() ^= std::byte{0x80};
    EXPECT_EQ(v.check(), value_check::checksum_mismatch);
    EXPECT_EQ(v.check(/*payload=*/false), value_check::ok);  // a header-only check cannot tell
  }
}

TEST(TierValue, FingerprintNamesTheModelAndEveryLayoutField) {
  const auto base = kvkit::detail::layout_fingerprint(small_layout(), "m");
  EXPECT_NE(base, kvkit::detail::layout_fingerprint(small_layout(), "n"));
  auto l = small_layout();
  l.num_blocks = 999;  // not part of a block's shape
  EXPECT_EQ(base, kvkit::detail::layout_fingerprint(l, "m"));
  for (int f = 0; f < 6; ++f) {
    auto m = small_layout();
    switch (f) {
      case 0:
        m.num_layers = 3;
        break;
      case 1:
        m.num_kv_heads = 4;
        break;
      case 2:
        m.head_dim = 16;
        break;
      case 3:
        m.block_size = 8;
        break;
      case 4:
        m.type = kvkit::dtype::bf16;
        break;
      case 5:
        m.order = kvkit::kv_order::hnd;
        break;
    }
    EXPECT_NE(base, kvkit::detail::layout_fingerprint(m, "m")) << "field " << f;
  }
}

TEST(FlatMap, MatchesStdUnorderedMap) {
  kvkit::detail::flat_u64_map map(300);
  std::unordered_map<std::uint64_t, std::uint32_t> model;
  std::mt19937_64 rng(3);
  for (int op = 0; op < 200000; ++op) {
    // Few distinct keys with clustered hashes, so probe runs and backward shifts happen.
    const std::uint64_t key = rng() % 600;
    if (rng() % 3 != 0 && (model.size() < 300 || model.count(key) != 0)) {
      const auto v = static_cast<std::uint32_t>(rng() % 1000);
      map.assign(key, v);
      model[key] = v;
    } else {
      EXPECT_EQ(map.erase(key), model.erase(key) == 1);
    }
    const std::uint64_t probe = rng() % 600;
    const auto it = model.find(probe);
    ASSERT_EQ(map.find(probe), it == model.end() ? kvkit::detail::flat_u64_map::npos : it->second);
    ASSERT_EQ(map.size(), model.size());
  }
}

TEST(LatencyHistogram, PercentilesWithinABucket) {
  kvkit::detail::latency_histogram h;
  for (std::uint64_t v = 1; v <= 1000; ++v)
    h.record(v * 1000);  // 1 us .. 1 ms, uniform
  const auto s = h.summary();
  EXPECT_EQ(s.count, 1000u);
  EXPECT_EQ(s.max_ns, 1'000'000u);
  auto near = [](std::uint64_t got, std::uint64_t want) {
    return got >= want && static_cast<double>(got) <= static_cast<double>(want) * 1.0625 + 1;
  };
  EXPECT_TRUE(near(s.p50_ns, 500'000)) << s.p50_ns;
  EXPECT_TRUE(near(s.p90_ns, 900'000)) << s.p90_ns;
  EXPECT_TRUE(near(s.p99_ns, 990'000)) << s.p99_ns;
  EXPECT_EQ(kvkit::detail::latency_histogram{}.summary().p99_ns, 0u);
}

TEST(ErrorEpisodes, OneReportPerEpisode) {
  auto t = std::make_shared<std::int64_t>(0);
  std::vector<kvkit::tier_event::kind> seen;
  std::vector<std::uint64_t> counts;
  kvkit::detail::error_episodes ep(
      "x",
      [&](const kvkit::tier_event& e) {
        seen.push_back(e.what);
        counts.push_back(e.errors);
      },
      std::chrono::milliseconds(10), [t] { return std::chrono::nanoseconds(*t); });
  // A link outage: three kinds of link errors, one episode; it ends when the link works.
  ep.count(kvkit::tier_error::timeout, "a");
  ep.count(kvkit::tier_error::unavailable, "b");
  ep.count(kvkit::tier_error::connect, "c");
  EXPECT_EQ(seen.size(), 1u);
  ep.link_ok();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1], kvkit::tier_event::kind::episode_end);
  EXPECT_EQ(counts[1], 3u);
  // Bad values: one episode until 10 ms pass without one.
  ep.count(kvkit::tier_error::checksum_mismatch, "d");
  *t += 5'000'000;
  ep.poll();
  ep.count(kvkit::tier_error::checksum_mismatch, "e");
  *t += 9'000'000;
  ep.poll();
  EXPECT_EQ(seen.size(), 3u);
  *t += 2'000'000;
  ep.poll();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(counts[3], 2u);
  EXPECT_EQ(ep.episodes(), 2u);
  EXPECT_EQ(ep.errors()[static_cast<std::size_t>(kvkit::tier_error::checksum_mismatch)], 2u);
}

}  // namespace
