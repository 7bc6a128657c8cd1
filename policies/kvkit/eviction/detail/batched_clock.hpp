// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Internals of the time-based eviction policies: their injectable clock, read once per batch of
// calls. Not a public header.
#pragma once

#include <kvkit/eviction/detail/indexed_heap.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <utility>

namespace kvkit::detail {

/// @brief A policy's clock (nanoseconds from any fixed origin), read once per batch.
///
/// Between begin_batch() and the matching end_batch() (the cache brackets each of its
/// operations with them), now() returns the time read at the outermost begin_batch(), so an
/// admission touching a thousand blocks reads the clock once instead of a thousand times through
/// a `std::function`. Outside a batch (a policy used on its own) every now() reads the clock.
/// Batches nest. The batch state is `mutable` because const queries (`expired()`) take part in
/// a batch too; it is not part of the policy's observable state.
class batched_clock {
 public:
  /// @brief A clock reading @p now (an empty function means `std::chrono::steady_clock`).
  /// @param now The clock.
  explicit batched_clock(std::function<std::chrono::nanoseconds()> now)
      : now_(now ? std::move(now) : std::function<std::chrono::nanoseconds()>(steady_now)) {}

  /// @brief The time: the batch's, or the clock's outside a batch.
  /// @return Nanoseconds.
  [[nodiscard]] std::int64_t now() const { return depth_ != 0 ? batch_now_ : now_().count(); }

  /// @brief Starts a batch (reads the clock if it is the outermost).
  void begin_batch() const {
    if (depth_++ == 0)
      batch_now_ = now_().count();
  }

  /// @brief Ends the innermost batch.
  void end_batch() const noexcept {
    if (depth_ != 0)
      --depth_;
  }

 private:
  std::function<std::chrono::nanoseconds()> now_;
  mutable std::int64_t batch_now_ = 0;
  mutable std::uint32_t depth_ = 0;
};

}  // namespace kvkit::detail
