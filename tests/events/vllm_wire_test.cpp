// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// vllm_event_batch: the msgpack layout of vLLM's KVEventBatch (v0.33.0), decoded here with
// msgpack-cxx and compared field by field; chains coalesce into one BlockStored, removals into
// one BlockRemoved. (tests/events/zmq_interop_test.cpp checks the same bytes against vLLM's own
// msgspec Structs.)
#include <kvkit/events.hpp>
#include <kvkit/events/vllm_wire.hpp>

#include <gtest/gtest.h>

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

namespace {

using kvkit::token_id;

msgpack::object_handle decode(const std::vector<std::uint8_t>& bytes) {
  return msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::string str(const msgpack::object& o) {
  return o.as<std::string>();
}

// Map keys in order.
std::vector<std::string> keys(const msgpack::object& map) {
  std::vector<std::string> out;
  for (std::uint32_t i = 0; i < map.via.map.size; ++i)
    out.push_back(str(map.via.map.ptr[i].key));
  return out;
}

const msgpack::object& field(const msgpack::object& map, const std::string& key) {
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    if (str(map.via.map.ptr[i].key) == key)
      return map.via.map.ptr[i].val;
  }
  throw std::runtime_error("no field " + key);
}

kvkit::block_stored_event stored(std::uint64_t hash, std::optional<std::uint64_t> parent,
                                 const std::vector<token_id>& tokens, std::uint64_t salt = 0,
                                 std::span<const std::uint64_t> extra = {}) {
  kvkit::block_stored_event e;
  e.hash = hash;
  e.parent_hash = parent;
  e.tokens = tokens;
  e.block_size = static_cast<std::uint32_t>(tokens.size());
  e.tenant_salt = salt;
  e.extra_keys = extra;
  return e;
}

TEST(VllmWire, BatchIsPositionalArrayOfTaggedMaps) {
  kvkit::vllm_event_batch b;
  const std::vector<token_id> t1 = {1, 2, 3, 4}, t2 = {5, 6, 7, 300000}, t3 = {9, 9, 9, 9};
  const std::uint64_t big = 0xFEDCBA9876543210ull;
  b.add(stored(big, std::nullopt, t1));
  b.add(stored(17, big, t2));  // continues the chain
  b.add(stored(18, 5, t3));    // another chain
  b.add(kvkit::block_removed_event{17, kvkit::removal_reason::evicted, {}});
  b.add(kvkit::block_removed_event{18, kvkit::removal_reason::expired, {}});
  b.add(kvkit::all_blocks_cleared_event{});
  EXPECT_EQ(b.added(), 6u);
  EXPECT_EQ(b.wire_events(), 4u);

  std::vector<std::uint8_t> bytes;
  b.encode(1234.5, bytes);
  const auto h = decode(bytes);
  const msgpack::object& batch = h.get();
  ASSERT_EQ(batch.type, msgpack::type::ARRAY);
  ASSERT_EQ(batch.via.array.size, 3u);  // [ts, events, data_parallel_rank]
  EXPECT_EQ(batch.via.array.ptr[0].type, msgpack::type::FLOAT64);
  EXPECT_EQ(batch.via.array.ptr[0].as<double>(), 1234.5);
  EXPECT_EQ(batch.via.array.ptr[2].as<std::int64_t>(), 0);
  const msgpack::object& events = batch.via.array.ptr[1];
  ASSERT_EQ(events.via.array.size, 4u);

  const msgpack::object& chain = events.via.array.ptr[0];
  EXPECT_EQ(keys(chain), (std::vector<std::string>{"type", "block_hashes", "parent_block_hash",
                                                   "token_ids", "block_size", "lora_id", "medium",
                                                   "lora_name", "extra_keys", "group_idx"}));
  EXPECT_EQ(str(field(chain, "type")), "BlockStored");
  EXPECT_EQ(field(chain, "block_hashes").as<std::vector<std::uint64_t>>(),
            (std::vector<std::uint64_t>{big, 17}));
  EXPECT_TRUE(field(chain, "parent_block_hash").is_nil());
  EXPECT_EQ(field(chain, "token_ids").as<std::vector<std::int64_t>>(),
            (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 300000}));
  EXPECT_EQ(field(chain, "block_size").as<int>(), 4);
  EXPECT_TRUE(field(chain, "lora_id").is_nil());
  EXPECT_EQ(str(field(chain, "medium")), "GPU");
  EXPECT_TRUE(field(chain, "lora_name").is_nil());
  const msgpack::object& extra = field(chain, "extra_keys");
  ASSERT_EQ(extra.via.array.size, 2u);  // one entry per block, as vLLM sends
  EXPECT_TRUE(extra.via.array.ptr[0].is_nil());
  EXPECT_TRUE(extra.via.array.ptr[1].is_nil());
  EXPECT_EQ(field(chain, "group_idx").as<int>(), 0);

  const msgpack::object& other = events.via.array.ptr[1];
  EXPECT_EQ(field(other, "block_hashes").as<std::vector<std::uint64_t>>(),
            std::vector<std::uint64_t>{18});
  EXPECT_EQ(field(other, "parent_block_hash").as<std::uint64_t>(), 5u);

  const msgpack::object& removed = events.via.array.ptr[2];
  EXPECT_EQ(keys(removed),
            (std::vector<std::string>{"type", "block_hashes", "medium", "group_idx"}));
  EXPECT_EQ(str(field(removed, "type")), "BlockRemoved");
  EXPECT_EQ(field(removed, "block_hashes").as<std::vector<std::uint64_t>>(),
            (std::vector<std::uint64_t>{17, 18}));

  const msgpack::object& cleared = events.via.array.ptr[3];
  EXPECT_EQ(keys(cleared), std::vector<std::string>{"type"});
  EXPECT_EQ(str(field(cleared, "type")), "AllBlocksCleared");
}

TEST(VllmWire, NamespaceGoesToExtraKeysSaltOnFirstBlockOnly) {
  kvkit::vllm_event_batch b;
  const std::vector<token_id> t = {1, 2};
  const std::uint64_t adapter[] = {7, 0xFFFFFFFFFFFFFFFFull};
  b.add(stored(100, std::nullopt, t, 0xabcdef, adapter));  // first block: extras + salt
  b.add(stored(101, 100, t, 0xabcdef, adapter));           // later block: extras only
  b.add(stored(200, std::nullopt, t, 0x1234));             // salt only
  std::vector<std::uint8_t> bytes;
  b.encode(0, bytes);
  const auto h = decode(bytes);
  const msgpack::object& events = h.get().via.array.ptr[1];
  ASSERT_EQ(events.via.array.size, 2u);
  const msgpack::object& e0 = field(events.via.array.ptr[0], "extra_keys");
  ASSERT_EQ(e0.via.array.size, 2u);
  const msgpack::object& k0 = e0.via.array.ptr[0];
  ASSERT_EQ(k0.via.array.size, 3u);
  EXPECT_EQ(k0.via.array.ptr[0].as<std::uint64_t>(), 7u);
  EXPECT_EQ(k0.via.array.ptr[1].as<std::uint64_t>(), 0xFFFFFFFFFFFFFFFFull);
  EXPECT_EQ(str(k0.via.array.ptr[2]), "0000000000abcdef");
  const msgpack::object& k1 = e0.via.array.ptr[1];
  ASSERT_EQ(k1.via.array.size, 2u);
  const msgpack::object& e1 = field(events.via.array.ptr[1], "extra_keys");
  ASSERT_EQ(e1.via.array.size, 1u);
  ASSERT_EQ(e1.via.array.ptr[0].via.array.size, 1u);
  EXPECT_EQ(str(e1.via.array.ptr[0].via.array.ptr[0]), "0000000000001234");
}

TEST(VllmWire, ChainsBreakOnMediumBlockSizeAndParent) {
  kvkit::vllm_event_batch b;
  const std::vector<token_id> t4 = {1, 2, 3, 4}, t2 = {1, 2};
  b.add(stored(1, std::nullopt, t4));
  kvkit::block_stored_event cpu = stored(2, 1, t4);
  cpu.medium = kvkit::medium_cpu;  // another medium: a new event
  b.add(cpu);
  b.add(stored(3, 2, t2));  // another block size: a new event (medium back to the default)
  b.add(stored(4, 3, t2));  // continues
  b.add(kvkit::block_removed_event{1, kvkit::removal_reason::evicted, kvkit::medium_cpu});
  b.add(kvkit::block_removed_event{2, kvkit::removal_reason::evicted, {}});
  EXPECT_EQ(b.wire_events(), 5u);
  std::vector<std::uint8_t> bytes;
  b.encode(0, bytes);
  const auto h = decode(bytes);
  const msgpack::object& events = h.get().via.array.ptr[1];
  EXPECT_EQ(str(field(events.via.array.ptr[1], "medium")), "CPU");
  EXPECT_EQ(field(events.via.array.ptr[2], "block_hashes").as<std::vector<std::uint64_t>>(),
            (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(field(events.via.array.ptr[2], "parent_block_hash").as<std::uint64_t>(), 2u);
  EXPECT_EQ(str(field(events.via.array.ptr[3], "medium")), "CPU");
  EXPECT_EQ(str(field(events.via.array.ptr[4], "medium")), "GPU");
}

TEST(VllmWire, OptionsSetMediumGroupAndRank) {
  kvkit::vllm_event_batch b({.medium = "CPU", .group_idx = std::nullopt, .data_parallel_rank = 3});
  const std::vector<token_id> t = {1};
  b.add(stored(1, std::nullopt, t));
  b.add(kvkit::block_removed_event{1, kvkit::removal_reason::evicted, {}});
  std::vector<std::uint8_t> bytes;
  b.encode(0, bytes);
  const auto h = decode(bytes);
  EXPECT_EQ(h.get().via.array.ptr[2].as<int>(), 3);
  const msgpack::object& events = h.get().via.array.ptr[1];
  EXPECT_EQ(keys(events.via.array.ptr[0]).back(), "extra_keys");  // no group_idx
  EXPECT_EQ(keys(events.via.array.ptr[1]),
            (std::vector<std::string>{"type", "block_hashes", "medium"}));
  EXPECT_EQ(str(field(events.via.array.ptr[0], "medium")), "CPU");

  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.added(), 0u);
  bytes.clear();
  b.encode(0, bytes);
  EXPECT_EQ(decode(bytes).get().via.array.ptr[1].via.array.size, 0u);
}

}  // namespace
