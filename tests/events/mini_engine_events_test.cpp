// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The mini engine demo with --events, end to end: the demo process publishes its caching run's KV
// events on free 127.0.0.1 ports; the Python subscriber (msgspec, vLLM's declared schema) joins
// late, fetches what it missed from the replay socket, and its index must hold exactly as many
// blocks as the engine reports cached at the end. Both processes are killed when the test ends,
// also when it fails.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <regex>
#include <string>

#include "events/subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using kvkit_test::subprocess;

// The next line of @p p matching @p re (other lines are skipped), or fails the test.
std::smatch expect_line(subprocess& p, const std::regex& re, std::string& line) {
  std::smatch m;
  for (;;) {
    const auto l = p.read_line(120s);
    if (!l) {
      ADD_FAILURE() << "no line matching the expected output (see stderr above)";
      return m;
    }
    std::printf("demo: %s\n", l->c_str());
    line = *l;
    if (std::regex_search(line, m, re))
      return m;
  }
}

TEST(MiniEngineEvents, LateSubscriberRebuildsTheEnginesCachedBlocks) {
  subprocess demo({KVKIT_MINI_ENGINE_DEMO, "--events", "tcp://127.0.0.1:*", "--events-replay",
                   "tcp://127.0.0.1:*", "--events-linger", "60"});
  std::string line;
  const std::smatch ep = expect_line(demo, std::regex(R"(^events: (\S+) replay: (\S+)$)"), line);
  ASSERT_EQ(ep.size(), 3u);
  const std::string pub = ep[1], replay = ep[2];
  subprocess sub({KVKIT_TEST_PYTHON, KVKIT_EVENTS_SUBSCRIBER, "--pub", pub, "--replay", replay});
  const auto ready = sub.read_line(30s);
  ASSERT_TRUE(ready && *ready == "ready") << "the subscriber did not start";

  const std::smatch done = expect_line(
      demo,
      std::regex(
          R"(^events: (\d+) batches published \(sequence 0 to (\d+)\), (\d+) blocks cached$)"),
      line);
  ASSERT_EQ(done.size(), 4u);
  const std::uint64_t batches = std::stoull(done[1]);
  const std::uint64_t last = std::stoull(done[2]);
  const std::uint64_t cached = std::stoull(done[3]);
  ASSERT_GT(batches, 0u);
  ASSERT_GT(cached, 0u);

  sub.write_line("end " + std::to_string(last));
  const auto report_line = sub.read_line(120s);
  ASSERT_TRUE(report_line) << "the subscriber sent no report";
  EXPECT_EQ(sub.wait(10s), 0);
  const nlohmann::json r = nlohmann::json::parse(*report_line);
  EXPECT_TRUE(r.at("unrecoverable").empty()) << r.at("unrecoverable");
  EXPECT_EQ(r.at("batches").get<std::uint64_t>(), batches);
  EXPECT_EQ(r.at("byte_identical").get<std::uint64_t>(), batches);
  EXPECT_EQ(r.at("next_seq").get<std::uint64_t>(), last + 1);
  EXPECT_EQ(r.at("media"), nlohmann::json::array({"GPU"}));
  EXPECT_EQ(r.at("blocks").size(), cached) << "the subscriber's index against the engine's count";
  std::uint64_t copies = 0;
  for (const auto& [key, block] : r.at("blocks").items())
    copies += block.at("copies").get<std::uint64_t>();
  EXPECT_EQ(copies, cached);
}

}  // namespace
