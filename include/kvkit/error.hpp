// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Error codes and the value types that carry them (`status`, `result<T>`).
///
/// Expected failures (out of blocks, unknown sequence, bad configuration) are returned as values
/// that the caller must look at. A failed call leaves the object it was called on unchanged.
#pragma once

#include <kvkit/detail/assert.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kvkit {

/// @brief What went wrong.
enum class errc : std::uint8_t {
  ok = 0,             ///< No error.
  out_of_blocks,      ///< Not enough free or evictable blocks for the request.
  unknown_sequence,   ///< The sequence id was never issued by this cache.
  finished_sequence,  ///< The sequence was already finished.
  empty_input,        ///< A token list that must not be empty was empty.
  invalid_config,     ///< A configuration value is out of its accepted range.
  layout_mismatch,    ///< Two layouts that must agree (cache and storage) do not.
  invalid_argument,   ///< An argument is out of its accepted range for this call.
  device_error,       ///< A CUDA call failed; the message carries the CUDA error.
};

/// @brief Short name of an error code, e.g. "out_of_blocks".
/// @param e The code.
/// @return A static string.
constexpr std::string_view to_string(errc e) noexcept {
  switch (e) {
    case errc::ok:
      return "ok";
    case errc::out_of_blocks:
      return "out_of_blocks";
    case errc::unknown_sequence:
      return "unknown_sequence";
    case errc::finished_sequence:
      return "finished_sequence";
    case errc::empty_input:
      return "empty_input";
    case errc::invalid_config:
      return "invalid_config";
    case errc::layout_mismatch:
      return "layout_mismatch";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::device_error:
      return "device_error";
  }
  return "unknown";
}

/// @brief An error: a code plus a message that names the problem and the accepted values.
class error {
 public:
  /// @brief Makes an error.
  /// @param code What went wrong (not `errc::ok`).
  /// @param message Human-readable explanation.
  error(errc code, std::string message) : code_(code), message_(std::move(message)) {}

  /// @brief The error code.
  /// @return The code.
  [[nodiscard]] errc code() const noexcept { return code_; }
  /// @brief The message, e.g. "kvkit: block_size must be a power of two >= 1, got 12".
  /// @return The message.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  errc code_;
  std::string message_;
};

/// @brief Outcome of an operation that returns no value: success or an @ref error.
class [[nodiscard]] status {
 public:
  /// @brief A successful status.
  status() = default;
  /// @brief A failed status.
  /// @param e The error.
  status(error e) : code_(e.code()), message_(e.message()) {}  // NOLINT(implicit)

  /// @brief Whether the operation succeeded.
  /// @return True on success.
  [[nodiscard]] bool ok() const noexcept { return code_ == errc::ok; }
  /// @brief Same as ok().
  explicit operator bool() const noexcept { return ok(); }
  /// @brief The error code (`errc::ok` on success).
  /// @return The code.
  [[nodiscard]] errc code() const noexcept { return code_; }
  /// @brief The error message (empty on success).
  /// @return The message.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  errc code_ = errc::ok;
  std::string message_;
};

/// @brief A value of type @p T, or an @ref error explaining why there is none.
/// @tparam T The value type.
template <class T>
class [[nodiscard]] result {
 public:
  /// @brief A result holding a value.
  /// @param v The value.
  result(T v) : data_(std::in_place_index<0>, std::move(v)) {}  // NOLINT(implicit)
  /// @brief A result holding an error.
  /// @param e The error.
  result(kvkit::error e) : data_(std::in_place_index<1>, std::move(e)) {}  // NOLINT(implicit)

  /// @brief Whether a value is held.
  /// @return True when a value is held.
  [[nodiscard]] bool ok() const noexcept { return data_.index() == 0; }
  /// @brief Same as ok().
  explicit operator bool() const noexcept { return ok(); }

  /// @brief The value; aborts with the error's message when there is none.
  /// @return A reference to the value.
  T& value() & {
    check();
    return std::get<0>(data_);
  }
  /// @copydoc value()
  const T& value() const& {
    check();
    return std::get<0>(data_);
  }
  /// @copydoc value()
  T&& value() && {
    check();
    return std::get<0>(std::move(data_));
  }
  /// @brief The value (precondition: ok()).
  /// @return A reference to the value.
  T& operator*() & { return value(); }
  /// @copydoc operator*()
  const T& operator*() const& { return value(); }
  /// @copydoc operator*()
  T&& operator*() && { return std::move(*this).value(); }
  /// @brief Member access on the value (precondition: ok()).
  /// @return A pointer to the value.
  T* operator->() { return &value(); }
  /// @copydoc operator->()
  const T* operator->() const { return &value(); }

  /// @brief The error code, `errc::ok` when a value is held.
  /// @return The code.
  [[nodiscard]] errc code() const noexcept { return ok() ? errc::ok : std::get<1>(data_).code(); }
  /// @brief The error message (empty when a value is held), as @ref kvkit::status::message.
  /// @return The message.
  [[nodiscard]] const std::string& message() const noexcept {
    static const std::string none;
    return ok() ? none : std::get<1>(data_).message();
  }
  /// @brief The error (precondition: !ok()).
  /// @return The error.
  [[nodiscard]] const kvkit::error& error() const {
    KVKIT_CHECK(!ok(), "result::error() called on a result that holds a value");
    return std::get<1>(data_);
  }
  /// @brief The error as a @ref status (an ok status when a value is held).
  /// @return The status.
  [[nodiscard]] kvkit::status status() const {
    return ok() ? kvkit::status{} : kvkit::status{std::get<1>(data_)};
  }

 private:
  void check() const {
    if (!ok()) {
      detail::contract_failure("result::ok()", std::get<1>(data_).message().c_str(), __FILE__,
                               __LINE__);
    }
  }
  std::variant<T, kvkit::error> data_;
};

}  // namespace kvkit
