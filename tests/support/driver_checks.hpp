// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Checks for the workload drivers (tests/support/differential_driver.hpp,
/// tests/support/property_driver.hpp), independent of any test framework.
///
/// A driver owns a `check_context`; the macros below report a failed check to it with the file,
/// line and a message built with `<<`, like GoogleTest's EXPECT / ASSERT. The context forwards
/// each failure to a sink: `ADD_FAILURE_AT` in a GoogleTest, print-and-abort in a fuzzer.
/// `KVKIT_DRIVER_ASSERT*` also return from the (void) function, as GoogleTest's ASSERT_* do.
#pragma once

#include <kvkit/error.hpp>

#include <functional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace kvkit::test {

/// Where a driver's failed checks go.
class check_context {
 public:
  using sink = std::function<void(const char* file, int line, const std::string& message)>;

  explicit check_context(sink s) : sink_(std::move(s)) {}

  void fail(const char* file, int line, const std::string& message) {
    failed_ = true;
    sink_(file, line, message);
  }
  /// Whether any check failed so far.
  [[nodiscard]] bool failed() const noexcept { return failed_; }

 private:
  sink sink_;
  bool failed_ = false;
};

namespace detail {

/// Collects a failure message and hands it to the context when the full expression ends.
class failure_report {
 public:
  failure_report(check_context& ctx, const char* file, int line, std::string_view what)
      : ctx_(ctx), file_(file), line_(line) {
    os_ << what;
  }
  failure_report(const failure_report&) = delete;
  failure_report& operator=(const failure_report&) = delete;
  ~failure_report() { ctx_.fail(file_, line_, os_.str()); }

  template <class T>
  failure_report& operator<<(const T& v) {
    os_ << v;
    return *this;
  }

 private:
  check_context& ctx_;
  const char* file_;
  int line_;
  std::ostringstream os_;
};

/// Turns `report << ...` into a void expression (for `return` in the ASSERT macros).
struct voidify {
  void operator&(const failure_report&) const noexcept {}
};

template <class T>
void show(std::ostream& os, const T& v) {
  if constexpr (std::is_same_v<T, errc>) {
    os << to_string(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    os << (v ? "true" : "false");
  } else {
    os << v;
  }
}

/// Outcome of an equality check: empty text when equal.
struct eq_result {
  bool ok = true;
  std::string text;
};

template <class A, class B>
eq_result check_eq(const A& a, const B& b, const char* a_text, const char* b_text) {
  if (a == b)
    return {};
  std::ostringstream os;
  os << "Expected equality of " << a_text << " and " << b_text << "\n  " << a_text << " = ";
  show(os, a);
  os << "\n  " << b_text << " = ";
  show(os, b);
  os << "\n";
  return {false, os.str()};
}

}  // namespace detail
}  // namespace kvkit::test

// The driver's check_context is the member `checks_`. The switch keeps an `else` that follows a
// macro in an unbraced `if` from binding to the macro's own `if`.
#define KVKIT_DRIVER_REPORT_(text) \
  ::kvkit::test::detail::failure_report(checks_, __FILE__, __LINE__, text)

#define KVKIT_DRIVER_EXPECT(cond) \
  switch (0)                      \
  case 0:                         \
  default:                        \
    if (cond)                     \
      ;                           \
    else                          \
      ::kvkit::test::detail::voidify{} & KVKIT_DRIVER_REPORT_("Check failed: " #cond "\n")

#define KVKIT_DRIVER_ASSERT(cond) \
  switch (0)                      \
  case 0:                         \
  default:                        \
    if (cond)                     \
      ;                           \
    else                          \
      return ::kvkit::test::detail::voidify{} & KVKIT_DRIVER_REPORT_("Check failed: " #cond "\n")

#define KVKIT_DRIVER_EXPECT_EQ(a, b)                           \
  switch (0)                                                   \
  case 0:                                                      \
  default:                                                     \
    if (const ::kvkit::test::detail::eq_result kvkit_eq_ =     \
            ::kvkit::test::detail::check_eq((a), (b), #a, #b); \
        kvkit_eq_.ok)                                          \
      ;                                                        \
    else                                                       \
      ::kvkit::test::detail::voidify{} & KVKIT_DRIVER_REPORT_(kvkit_eq_.text)

#define KVKIT_DRIVER_ASSERT_EQ(a, b)                           \
  switch (0)                                                   \
  case 0:                                                      \
  default:                                                     \
    if (const ::kvkit::test::detail::eq_result kvkit_eq_ =     \
            ::kvkit::test::detail::check_eq((a), (b), #a, #b); \
        kvkit_eq_.ok)                                          \
      ;                                                        \
    else                                                       \
      return ::kvkit::test::detail::voidify{} & KVKIT_DRIVER_REPORT_(kvkit_eq_.text)

/// An unconditional failure (GoogleTest's ADD_FAILURE).
#define KVKIT_DRIVER_FAIL() ::kvkit::test::detail::voidify{} & KVKIT_DRIVER_REPORT_("Failure\n")
