// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdio>
#include <cstdlib>

namespace kvkit::detail {

/// Prints a contract violation and aborts. Never returns.
[[noreturn]] inline void contract_failure(const char* expr, const char* msg, const char* file,
                                          int line) noexcept {
  std::fprintf(stderr, "kvkit: contract violated: %s (%s) at %s:%d\n", msg, expr, file, line);
  std::abort();
}

}  // namespace kvkit::detail

// KVKIT_ASSERT checks a precondition in debug builds (or always with KVKIT_ENABLE_ASSERTS).
#if !defined(NDEBUG) || defined(KVKIT_ENABLE_ASSERTS)
#define KVKIT_ASSERT(cond, msg)                                          \
  do {                                                                   \
    if (!(cond))                                                         \
      ::kvkit::detail::contract_failure(#cond, msg, __FILE__, __LINE__); \
  } while (false)
#else
#define KVKIT_ASSERT(cond, msg) \
  do {                          \
  } while (false)
#endif

// KVKIT_CHECK is checked in every build type (cheap checks on misuse that would corrupt memory).
#define KVKIT_CHECK(cond, msg)                                           \
  do {                                                                   \
    if (!(cond))                                                         \
      ::kvkit::detail::contract_failure(#cond, msg, __FILE__, __LINE__); \
  } while (false)
