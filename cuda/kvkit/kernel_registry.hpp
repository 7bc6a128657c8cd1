// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief The kernel configurations compiled into `kvkit::cuda`, and lookup by runtime values.
///
/// Kernels are templates on what changes registers or shared-memory layout (head dimension and
/// K/V element type). CMake instantiates one translation unit per entry of the
/// `KVKIT_KERNEL_CONFIGS` list (for example `hd128_bf16;hd64_fp16`), so a build pays only for
/// the configurations it names. At run time, find_kernel_config() maps a model's head dimension
/// and dtype to a built configuration, or returns an error that lists what was built.
///
/// This header is host-only C++; it does not need nvcc.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace kvkit {

/// @brief Element type of the K/V data that a kernel configuration reads and writes.
enum class cuda_dtype : std::uint8_t {
  fp16,  ///< IEEE 754 binary16 (`__half`).
  bf16,  ///< bfloat16 (`__nv_bfloat16`).
};

/// @brief Short name of a dtype, as written in `KVKIT_KERNEL_CONFIGS`.
/// @param dtype The element type.
/// @return `"fp16"` or `"bf16"`; `"unknown"` for a value outside the enumeration.
[[nodiscard]] constexpr std::string_view to_string(cuda_dtype dtype) noexcept {
  switch (dtype) {
    case cuda_dtype::fp16:
      return "fp16";
    case cuda_dtype::bf16:
      return "bf16";
  }
  return "unknown";
}

/// @brief One instantiated kernel configuration.
struct kernel_config {
  int head_dim = 0;                     ///< Head dimension (64, 128 or 256).
  cuda_dtype dtype = cuda_dtype::fp16;  ///< Element type of K and V.

  /// @brief Compares head dimension and dtype.
  /// @param lhs First configuration.
  /// @param rhs Second configuration.
  /// @return `true` when both members are equal.
  friend constexpr bool operator==(const kernel_config& lhs,
                                   const kernel_config& rhs) noexcept = default;
};

/// @brief Name of a configuration as written in `KVKIT_KERNEL_CONFIGS`.
/// @param config The configuration.
/// @return For example `"hd128_bf16"`.
[[nodiscard]] std::string to_string(const kernel_config& config);

/// @brief The configurations compiled into this build of `kvkit::cuda`.
/// @return The entries of `KVKIT_KERNEL_CONFIGS`, in the order given there; never empty.
[[nodiscard]] std::span<const kernel_config> built_kernel_configs() noexcept;

/// @brief Result of find_kernel_config(): the built configuration, or why there is none.
struct kernel_config_lookup {
  /// @brief The matching entry of built_kernel_configs(); `nullptr` when none matches.
  const kernel_config* config = nullptr;
  /// @brief Empty on success; otherwise a message that names the requested configuration and
  /// every built one, e.g. `kvkit: no kernel built for head_dim=96 dtype=bf16; built
  /// configurations: hd128_bf16, hd64_fp16 (set KVKIT_KERNEL_CONFIGS)`.
  std::string error;

  /// @brief Whether a configuration was found.
  /// @return `true` when #config is not null.
  [[nodiscard]] bool ok() const noexcept { return config != nullptr; }

  /// @brief Same as ok().
  /// @return `true` when #config is not null.
  [[nodiscard]] explicit operator bool() const noexcept { return ok(); }
};

/// @brief Finds the built configuration for a head dimension and dtype.
/// @param head_dim Head dimension of the model.
/// @param dtype Element type of K and V.
/// @return The configuration, or an error message naming the configurations that were built and
///         the CMake option (`KVKIT_KERNEL_CONFIGS`) that chooses them.
[[nodiscard]] kernel_config_lookup find_kernel_config(int head_dim, cuda_dtype dtype);

}  // namespace kvkit
