// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Substring expectations for error messages, with GoogleTest alone (no gmock).
#pragma once

#include <gtest/gtest.h>

#include <string>

/// Expects @p haystack (a std::string or C string) to contain @p needle.
#define KVKIT_EXPECT_SUBSTR(haystack, needle) \
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, std::string(needle), std::string(haystack))

/// Expects @p haystack not to contain @p needle.
#define KVKIT_EXPECT_NO_SUBSTR(haystack, needle) \
  EXPECT_PRED_FORMAT2(::testing::IsNotSubstring, std::string(needle), std::string(haystack))

#include <kvkit/error.hpp>

#include <ostream>

namespace kvkit {
/// Prints error codes by name in GoogleTest failure messages.
inline void PrintTo(errc e, std::ostream* os) {
  *os << to_string(e);
}
}  // namespace kvkit
