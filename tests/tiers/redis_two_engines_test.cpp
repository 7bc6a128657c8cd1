// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Two engines, one prefix: two mini engine processes (examples/mini_engine, --redis) share a
// system prompt through one real redis-server started by the test. The second engine's first
// request finds the 512-token prefix the first engine computed, prefills only its suffix, and
// generates the same tokens as a full recompute (the demo compares them and exits non-zero
// otherwise).
#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <string>

#include "support/redis_server.hpp"
#include <sys/wait.h>

namespace {

struct run_output {
  int exit_code = -1;
  std::string text;
};

run_output run(const std::string& command) {
  run_output out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr)
    return out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.text.append(buf, n);
  const int status = ::pclose(p);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

struct first_request {
  unsigned prompt = 0, cached = 0, from_redis = 0, prefilled = 0;
  bool same = false;
};

first_request parse_first(const std::string& text) {
  static const std::regex line(
      R"(request 0: prompt (\d+) tokens, cached (\d+) \(from redis (\d+)\), prefilled (\d+), same tokens as a full recompute: (yes|no))");
  std::smatch m;
  first_request r;
  if (std::regex_search(text, m, line)) {
    r.prompt = static_cast<unsigned>(std::stoul(m[1]));
    r.cached = static_cast<unsigned>(std::stoul(m[2]));
    r.from_redis = static_cast<unsigned>(std::stoul(m[3]));
    r.prefilled = static_cast<unsigned>(std::stoul(m[4]));
    r.same = m[5] == "yes";
  }
  return r;
}

TEST(TwoEngines, TheSecondFindsThePrefixTheFirstComputed) {
#ifndef KVKIT_MINI_ENGINE_DEMO
  GTEST_SKIP() << "the mini engine demo is not built (KVKIT_BUILD_EXAMPLES=OFF)";
#else
  kvkit::test::redis_server server;
  const std::string demo =
      std::string(KVKIT_MINI_ENGINE_DEMO) + " --redis 127.0.0.1:" + std::to_string(server.port());
  const run_output a = run(demo + " --question-seed 1");
  ASSERT_EQ(a.exit_code, 0) << a.text;
  const first_request fa = parse_first(a.text);
  ASSERT_GT(fa.prompt, 512u) << a.text;
  EXPECT_EQ(fa.from_redis, 0u) << "a fresh server holds nothing";
  EXPECT_EQ(fa.prefilled, fa.prompt) << a.text;
  EXPECT_TRUE(fa.same);

  const run_output b = run(demo + " --question-seed 2");
  ASSERT_EQ(b.exit_code, 0) << b.text;
  const first_request fb = parse_first(b.text);
  EXPECT_EQ(fb.from_redis, 512u) << "the system prompt (32 blocks of 16) comes from Redis\n"
                                 << b.text;
  EXPECT_EQ(fb.cached, 512u);
  EXPECT_EQ(fb.prefilled, fb.prompt - 512u) << "only the suffix is prefilled";
  EXPECT_TRUE(fb.same) << "the same tokens as a full recompute\n" << b.text;
#endif
}

}  // namespace
