// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// <kvkit/events.hpp>: the event_sink concept, the recording sink, and the resident set a stream of
// events leaves (compared with an independent model: a map rebuilt from scratch after each event).
#include <kvkit/events.hpp>

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "events/synthetic_events.hpp"

namespace {

using kvkit::token_id;

struct missing_cleared {
  void on_stored(const kvkit::block_stored_event&) {}
  void on_removed(const kvkit::block_removed_event&) {}
};
static_assert(!kvkit::event_sink<missing_cleared>);
static_assert(kvkit::event_sink<kvkit::null_event_sink>);

struct counting_sink {
  int stored = 0, removed = 0, cleared = 0;
  void on_stored(const kvkit::block_stored_event&) { ++stored; }
  void on_removed(const kvkit::block_removed_event&) { ++removed; }
  void on_cleared(const kvkit::all_blocks_cleared_event&) { ++cleared; }
};

TEST(EventSink, FlushEventsCallsFlushOnlyWhenThereIsOne) {
  counting_sink plain;
  kvkit::flush_events(plain);  // no flush(): nothing happens, compiles
  kvkit::recording_event_sink rec;
  kvkit::flush_events(rec);
  EXPECT_TRUE(rec.batch_ends().empty());  // an empty batch is not a batch
  rec.on_cleared({});
  kvkit::flush_events(rec);
  kvkit::flush_events(rec);
  EXPECT_EQ(rec.batch_ends(), std::vector<std::size_t>{1});
}

TEST(EventSink, RecordingSinkCopiesEveryField) {
  kvkit::recording_event_sink rec;
  std::vector<token_id> tokens = {1, 2, 3};
  const std::uint64_t extra[] = {9};
  kvkit::block_stored_event e;
  e.hash = 5;
  e.parent_hash = 4;
  e.tokens = tokens;
  e.block_size = 3;
  e.tenant_salt = 77;
  e.extra_keys = extra;
  e.medium = kvkit::medium_cpu;
  rec.on_stored(e);
  tokens[0] = 100;  // the event's view is dead after the call; the copy is not
  rec.on_removed({5, kvkit::removal_reason::expired, {}});
  ASSERT_EQ(rec.events().size(), 2u);
  const kvkit::recorded_event& s = rec.events()[0];
  EXPECT_EQ(s.kind, kvkit::event_kind::stored);
  EXPECT_EQ(s.hash, 5u);
  EXPECT_EQ(s.parent_hash, 4u);
  EXPECT_EQ(s.tokens, (std::vector<token_id>{1, 2, 3}));
  EXPECT_EQ(s.tenant_salt, 77u);
  EXPECT_EQ(s.extra_keys, std::vector<std::uint64_t>{9});
  EXPECT_EQ(s.medium, "CPU");
  EXPECT_EQ(rec.events()[1].reason, kvkit::removal_reason::expired);
  EXPECT_EQ(kvkit::to_string(kvkit::removal_reason::invalidated), "invalidated");
  EXPECT_TRUE(rec.resident().size() == 0);
}

TEST(ResidentSet, CountsCopiesAndClearsByMedium) {
  kvkit::resident_set s;
  kvkit::recorded_event a{.kind = kvkit::event_kind::stored, .hash = 1, .tokens = {1}};
  kvkit::recorded_event b{
      .kind = kvkit::event_kind::stored, .hash = 2, .tokens = {2}, .medium = "CPU"};
  s.apply(a);
  s.apply(a);  // stored twice (two blocks with one key)
  s.apply(b);
  s.apply({.kind = kvkit::event_kind::removed, .hash = 1});
  EXPECT_TRUE(s.contains(1));  // one copy left
  EXPECT_EQ(s.blocks().at(1).copies, 1u);
  s.apply({.kind = kvkit::event_kind::removed, .hash = 99});  // unknown: ignored
  s.apply({.kind = kvkit::event_kind::cleared, .medium = "CPU"});
  EXPECT_TRUE(s.contains(1));
  EXPECT_FALSE(s.contains(2));
  s.apply(b);
  s.apply({.kind = kvkit::event_kind::cleared, .medium = "GPU"});  // `a` named none: GPU
  EXPECT_FALSE(s.contains(1));
  EXPECT_TRUE(s.contains(2));
  s.apply(a);
  s.apply({.kind = kvkit::event_kind::cleared});  // every medium
  EXPECT_EQ(s.size(), 0u);
}

// Differential: the resident set after every prefix of a random stream equals a model that
// replays the prefix into a plain std::map from scratch.
TEST(ResidentSet, MatchesAModelRebuiltFromScratch) {
  kvkit::recording_event_sink rec;
  kvkit_test::synthetic_events gen(
      {.block_size = 4, .pool_blocks = 64, .max_chain = 6, .clear_probability = 0.05, .seed = 5});
  for (int i = 0; i < 60; ++i)
    gen.batch(5, rec);
  kvkit::resident_set incremental;
  for (std::size_t n = 0; n < rec.events().size(); ++n) {
    incremental.apply(rec.events()[n]);
    std::map<std::uint64_t, std::pair<std::uint32_t, std::vector<token_id>>> model;
    for (std::size_t i = 0; i <= n; ++i) {
      const kvkit::recorded_event& e = rec.events()[i];
      if (e.kind == kvkit::event_kind::cleared) {
        model.clear();
      } else if (e.kind == kvkit::event_kind::stored) {
        auto& m = model[e.hash];
        if (m.first++ == 0)
          m.second = e.tokens;
      } else if (auto it = model.find(e.hash); it != model.end() && --it->second.first == 0) {
        model.erase(it);
      }
    }
    const auto got = incremental.blocks();
    ASSERT_EQ(got.size(), model.size()) << "after event " << n;
    for (const auto& [h, m] : model) {
      ASSERT_TRUE(got.contains(h));
      EXPECT_EQ(got.at(h).copies, m.first);
      EXPECT_EQ(got.at(h).tokens, m.second);
    }
  }
  EXPECT_EQ(rec.resident().size(), gen.stored());
}

}  // namespace
