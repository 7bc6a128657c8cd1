// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internal: the sequence table of a prefix_cache (live sequences, generations, handle lookup).
// Not a public header.
#pragma once

#include <kvkit/cache_types.hpp>
#include <kvkit/error.hpp>
#include <kvkit/types.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kvkit::detail {

/// One sequence: its tokens, block table and how far it is computed and committed.
template <class Cursor>
struct sequence_state {
  std::uint32_t generation = 1;  // of the slot; a handle with an older one is stale
  bool active = false;
  bool pin = false;      // made by pin()
  std::uint32_t ns = 0;  // namespace index
  std::uint32_t request_class = 0;
  std::vector<token_id> tokens;
  std::vector<block_id> table;         // block table
  std::uint32_t computed = 0;          // leading tokens with K/V written
  std::uint32_t committed_blocks = 0;  // leading blocks registered (or deduplicated)
  std::uint32_t prompt_tokens = 0;
  std::uint32_t cached_tokens = 0;
  std::uint32_t last_node = 0;  // tree node of the last committed block (or the root)
  Cursor chain{};               // matcher cursor at last_node
};

/// The live sequences of a cache, in reusable slots. A handle carries its slot's generation, so a
/// finished (stale) handle is told apart from one this cache never issued.
template <class Cursor>
class sequence_table {
 public:
  using state = sequence_state<Cursor>;

  /// A fresh active sequence in a free slot; @p index receives the slot.
  state& open(std::uint32_t* index) {
    if (!free_.empty()) {
      *index = free_.back();
      free_.pop_back();
    } else {
      *index = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    state& s = slots_[*index];
    s.active = true;
    s.pin = false;
    s.table.clear();
    s.tokens.clear();
    ++active_;
    return s;
  }

  /// Ends the sequence in slot @p index: its handle goes stale, the slot is reused.
  void close(std::uint32_t index) {
    state& s = slots_[index];
    s.table.clear();
    s.tokens.clear();
    s.active = false;
    ++s.generation;
    free_.push_back(index);
    --active_;
  }

  /// The live sequence @p seq, or `errc::finished_sequence` / `errc::unknown_sequence` naming
  /// the operation @p op and the handle.
  [[nodiscard]] result<const state*> lookup(sequence_id seq, const char* op) const {
    if (seq.index < slots_.size()) {
      const state& s = slots_[seq.index];
      if (s.active && s.generation == seq.generation)
        return &s;
      if (seq.generation != 0 && seq.generation < s.generation) {
        return error{errc::finished_sequence, std::string("kvkit: ") + op + ": sequence " +
                                                  describe(seq) + " was already finished"};
      }
    }
    return error{errc::unknown_sequence, std::string("kvkit: ") + op + ": sequence " +
                                             describe(seq) + " was never issued by this cache"};
  }
  /// @copydoc lookup
  [[nodiscard]] result<state*> lookup(sequence_id seq, const char* op) {
    auto r = std::as_const(*this).lookup(seq, op);
    if (!r.ok())
      return r.error();
    return const_cast<state*>(*r);
  }

  [[nodiscard]] state& operator[](std::uint32_t index) noexcept { return slots_[index]; }
  [[nodiscard]] const state& operator[](std::uint32_t index) const noexcept {
    return slots_[index];
  }
  /// Slots in use or ever used.
  [[nodiscard]] std::uint32_t size() const noexcept {
    return static_cast<std::uint32_t>(slots_.size());
  }
  [[nodiscard]] std::uint32_t active_count() const noexcept { return active_; }

 private:
  static std::string describe(sequence_id seq) {
    return "{index=" + std::to_string(seq.index) +
           ", generation=" + std::to_string(seq.generation) + "}";
  }

  std::vector<state> slots_;
  std::vector<std::uint32_t> free_;
  std::uint32_t active_ = 0;
};

}  // namespace kvkit::detail
