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

// A plain HTTP GET of /metrics on 127.0.0.1:port; the body, or "" on failure.
std::string scrape(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return {};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n = 0;
      while ((n = ::read(fd, buf, sizeof buf)) > 0)
        out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return out;
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

  // A third engine serves /metrics with the Redis tier's statistics: scraped while it lingers.
  FILE* p =
      ::popen((demo + " --question-seed 3 --metrics-port 0 --metrics-linger 2 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[1024];
  int port = -1;
  std::string text, metrics;
  while (std::fgets(line, sizeof line, p) != nullptr) {
    text += line;
    std::sscanf(line, "metrics: http://127.0.0.1:%d/metrics", &port);
    if (std::string(line).find("generated tokens identical") != std::string::npos) {
      metrics = scrape(port);
      break;
    }
  }
  while (std::fgets(line, sizeof line, p) != nullptr)
    text += line;
  ::pclose(p);
  ASSERT_GT(port, 0) << text;
  EXPECT_NE(metrics.find("kvkit_tier_promoted_tokens_total{tier=\"redis\"} 512"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("kvkit_tier_errors_total{tier=\"redis\",kind=\"connect\"} 0"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("kvkit_cache_queries_total{tier=\"pool\"} 4"), std::string::npos)
      << metrics;
#endif
}

}  // namespace
