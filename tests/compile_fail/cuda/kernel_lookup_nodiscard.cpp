// KVKIT_EXPECT_ERROR: ignoring return value|unused-result|nodiscard
// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A kernel lookup is an error value: discarding it must not compile (warnings are errors).
#include <kvkit/kernel_registry.hpp>

int main() {
  kvkit::find_kernel_config(128, kvkit::cuda_dtype::bf16);
  return 0;
}
