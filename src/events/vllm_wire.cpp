// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// vLLM KVEventBatch encoding with msgpack-cxx's packer. Integers take their shortest msgpack form,
// the timestamp a float64 and map headers the width msgspec gives them, so a batch encodes to the
// same bytes as msgspec.msgpack.encode() of vLLM v0.33.0's KVEventBatch (tests/events checks it).
#include <kvkit/detail/assert.hpp>
#include <kvkit/events/vllm_wire.hpp>

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <algorithm>
#include <string_view>

#include <msgpack.hpp>

namespace kvkit {
namespace {

// msgpack-cxx's packer writes through `write(const char*, size_t)`.
struct byte_sink {
  std::vector<std::uint8_t>& out;
  void write(const char* p, std::size_t n) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
};

using packer = msgpack::packer<byte_sink>;

void pack_str(packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void pack_salt(packer& pk, std::uint64_t salt) {
  static constexpr char hex[] = "0123456789abcdef";
  char s[16];
  for (int i = 0; i < 16; ++i)
    s[i] = hex[(salt >> (60 - 4 * i)) & 0xF];
  pack_str(pk, std::string_view(s, 16));
}

}  // namespace

vllm_event_batch::vllm_event_batch(vllm_wire_options options) : options_(std::move(options)) {}

std::uint32_t vllm_event_batch::medium_index(std::string_view medium) {
  if (medium.empty())
    medium = options_.medium;
  for (std::size_t i = 0; i < media_.size(); ++i) {
    if (media_[i] == medium)
      return static_cast<std::uint32_t>(i);
  }
  media_.emplace_back(medium);
  return static_cast<std::uint32_t>(media_.size() - 1);
}

void vllm_event_batch::add(const block_stored_event& e) {
  KVKIT_ASSERT(e.tokens.size() == e.block_size,
               "vllm_event_batch::add: a stored block carries exactly block_size tokens");
  ++added_;
  const std::uint32_t medium = medium_index(e.medium);
  const bool continues = !events_.empty() && events_.back().kind == event_kind::stored &&
                         events_.back().medium == medium &&
                         events_.back().block_size == e.block_size && e.parent_hash &&
                         *e.parent_hash == hashes_.back();
  if (!continues) {
    wire_event w{};
    w.kind = event_kind::stored;
    w.medium = medium;
    w.first_hash = static_cast<std::uint32_t>(hashes_.size());
    w.first_token = static_cast<std::uint32_t>(tokens_.size());
    w.block_size = e.block_size;
    w.has_parent = e.parent_hash.has_value();
    w.parent = e.parent_hash.value_or(0);
    events_.push_back(w);
  }
  wire_event& w = events_.back();
  hashes_.push_back(e.hash);
  keys_.push_back(block_keys{e.tenant_salt, static_cast<std::uint32_t>(extras_.size()),
                             static_cast<std::uint32_t>(e.extra_keys.size()),
                             !e.parent_hash.has_value()});
  extras_.insert(extras_.end(), e.extra_keys.begin(), e.extra_keys.end());
  tokens_.insert(tokens_.end(), e.tokens.begin(), e.tokens.end());
  ++w.hash_count;
  w.token_count += static_cast<std::uint32_t>(e.tokens.size());
}

void vllm_event_batch::add(const block_removed_event& e) {
  ++added_;
  const std::uint32_t medium = medium_index(e.medium);
  if (events_.empty() || events_.back().kind != event_kind::removed ||
      events_.back().medium != medium) {
    wire_event w{};
    w.kind = event_kind::removed;
    w.medium = medium;
    w.first_hash = static_cast<std::uint32_t>(hashes_.size());
    events_.push_back(w);
  }
  hashes_.push_back(e.hash);
  keys_.push_back(block_keys{});
  ++events_.back().hash_count;
}

void vllm_event_batch::add(const all_blocks_cleared_event& e) {
  ++added_;
  wire_event w{};
  w.kind = event_kind::cleared;
  w.medium = medium_index(e.medium);
  events_.push_back(w);
}

void vllm_event_batch::encode(double ts, std::vector<std::uint8_t>& out) const {
  byte_sink sink{out};
  packer pk(sink);
  const bool group = options_.group_idx.has_value();
  pk.pack_array(3);
  pk.pack_double(ts);
  pk.pack_array(static_cast<std::uint32_t>(events_.size()));
  for (const wire_event& w : events_) {
    switch (w.kind) {
      case event_kind::stored: {
        // msgspec sizes a struct's map header by the entries it could have: vLLM v0.33's
        // BlockStored has 15 fields and the tag, so its header is a map16 whatever is left out.
        const std::uint8_t header[3] = {0xde, 0x00, static_cast<std::uint8_t>(group ? 10 : 9)};
        sink.write(reinterpret_cast<const char*>(header), sizeof header);
        pack_str(pk, "type");
        pack_str(pk, "BlockStored");
        pack_str(pk, "block_hashes");
        pk.pack_array(w.hash_count);
        for (std::uint32_t i = 0; i < w.hash_count; ++i)
          pk.pack_uint64(hashes_[w.first_hash + i]);
        pack_str(pk, "parent_block_hash");
        if (w.has_parent)
          pk.pack_uint64(w.parent);
        else
          pk.pack_nil();
        pack_str(pk, "token_ids");
        pk.pack_array(w.token_count);
        for (std::uint32_t i = 0; i < w.token_count; ++i)
          pk.pack_int32(tokens_[w.first_token + i]);
        pack_str(pk, "block_size");
        pk.pack_uint32(w.block_size);
        pack_str(pk, "lora_id");
        pk.pack_nil();
        pack_str(pk, "medium");
        pack_str(pk, media_[w.medium]);
        pack_str(pk, "lora_name");
        pk.pack_nil();
        pack_str(pk, "extra_keys");
        pk.pack_array(w.hash_count);
        for (std::uint32_t i = 0; i < w.hash_count; ++i) {
          const block_keys& k = keys_[w.first_hash + i];
          const bool salt = k.first_in_chain && k.salt != 0;
          if (k.extra_count == 0 && !salt) {
            pk.pack_nil();
            continue;
          }
          pk.pack_array(k.extra_count + (salt ? 1 : 0));
          for (std::uint32_t j = 0; j < k.extra_count; ++j)
            pk.pack_uint64(extras_[k.first_extra + j]);
          if (salt)
            pack_salt(pk, k.salt);
        }
        if (group) {
          pack_str(pk, "group_idx");
          pk.pack_int64(*options_.group_idx);
        }
        break;
      }
      case event_kind::removed:
        pk.pack_map(group ? 4 : 3);
        pack_str(pk, "type");
        pack_str(pk, "BlockRemoved");
        pack_str(pk, "block_hashes");
        pk.pack_array(w.hash_count);
        for (std::uint32_t i = 0; i < w.hash_count; ++i)
          pk.pack_uint64(hashes_[w.first_hash + i]);
        pack_str(pk, "medium");
        pack_str(pk, media_[w.medium]);
        if (group) {
          pack_str(pk, "group_idx");
          pk.pack_int64(*options_.group_idx);
        }
        break;
      case event_kind::cleared:
        pk.pack_map(1);
        pack_str(pk, "type");
        pack_str(pk, "AllBlocksCleared");
        break;
    }
  }
  pk.pack_int64(options_.data_parallel_rank);
}

void vllm_event_batch::clear() noexcept {
  events_.clear();
  hashes_.clear();
  keys_.clear();
  tokens_.clear();
  extras_.clear();
  media_.clear();
  added_ = 0;
}

}  // namespace kvkit
