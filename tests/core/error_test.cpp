// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// status and result<T>: success and error semantics, and the abort on value() of an error.

#include <kvkit/error.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

namespace kvkit {
namespace {

TEST(Errc, Names) {
  EXPECT_EQ(to_string(errc::ok), "ok");
  EXPECT_EQ(to_string(errc::out_of_blocks), "out_of_blocks");
  EXPECT_EQ(to_string(errc::unknown_sequence), "unknown_sequence");
  EXPECT_EQ(to_string(errc::finished_sequence), "finished_sequence");
  EXPECT_EQ(to_string(errc::empty_input), "empty_input");
  EXPECT_EQ(to_string(errc::invalid_config), "invalid_config");
  EXPECT_EQ(to_string(errc::layout_mismatch), "layout_mismatch");
  EXPECT_EQ(to_string(errc::invalid_argument), "invalid_argument");
  EXPECT_EQ(to_string(static_cast<errc>(200)), "unknown");
}

TEST(Error, CarriesCodeAndMessage) {
  const error e{errc::invalid_config, "kvkit: block_size must be a power of two >= 1, got 12"};
  EXPECT_EQ(e.code(), errc::invalid_config);
  EXPECT_EQ(e.message(), "kvkit: block_size must be a power of two >= 1, got 12");
}

TEST(Status, DefaultIsOk) {
  const status s;
  EXPECT_TRUE(s.ok());
  EXPECT_TRUE(static_cast<bool>(s));
  EXPECT_EQ(s.code(), errc::ok);
  EXPECT_EQ(s.message(), "");
}

TEST(Status, FromErrorIsNotOk) {
  const status s = error{errc::out_of_blocks, "no room"};
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(static_cast<bool>(s));
  EXPECT_EQ(s.code(), errc::out_of_blocks);
  EXPECT_EQ(s.message(), "no room");
}

TEST(Result, HoldsAValue) {
  result<int> r = 42;
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.code(), errc::ok);
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  r.value() = 7;
  EXPECT_EQ(*r, 7);
  EXPECT_TRUE(r.status().ok());
  EXPECT_EQ(r.status().message(), "");
  EXPECT_EQ(r.message(), "") << "a result with a value has no message, like an ok status";
  const result<int>& cr = r;
  EXPECT_EQ(cr.value(), 7);
}

TEST(Result, MemberAccessAndMoveOut) {
  result<std::string> r = std::string("hello");
  EXPECT_EQ(r->size(), 5u);
  const std::string s = std::move(r).value();
  EXPECT_EQ(s, "hello");

  result<std::unique_ptr<int>> p = std::make_unique<int>(9);
  ASSERT_TRUE(p.ok());
  std::unique_ptr<int> owned = std::move(p).value();
  ASSERT_NE(owned, nullptr);
  EXPECT_EQ(*owned, 9);
}

TEST(Result, HoldsAnError) {
  const result<int> r = error{errc::unknown_sequence, "kvkit: sequence 7 unknown"};
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.code(), errc::unknown_sequence);
  EXPECT_EQ(r.error().code(), errc::unknown_sequence);
  EXPECT_EQ(r.error().message(), "kvkit: sequence 7 unknown");
  EXPECT_EQ(r.message(), "kvkit: sequence 7 unknown");
  const status s = r.status();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), errc::unknown_sequence);
  EXPECT_EQ(s.message(), "kvkit: sequence 7 unknown");
}

TEST(ResultDeathTest, ValueOfAnErrorAbortsWithItsMessage) {
  const result<int> r = error{errc::out_of_blocks, "needs 3 new blocks but only 1 are free"};
  EXPECT_DEATH((void)r.value(), "needs 3 new blocks but only 1 are free");
  EXPECT_DEATH((void)*r, "contract violated: needs 3 new blocks");
  result<std::string> m = error{errc::empty_input, "the prompt is empty"};
  EXPECT_DEATH((void)std::move(m).value(), "the prompt is empty");
}

TEST(ResultDeathTest, ErrorOfAValueAborts) {
  const result<int> r = 1;
  EXPECT_DEATH((void)r.error(), "result::error\\(\\) called on a result that holds a value");
}

}  // namespace
}  // namespace kvkit
