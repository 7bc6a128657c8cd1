// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The kernel registry of kvkit::cuda: host-only, runs without a GPU.
#include <kvkit/kernel_registry.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#ifndef KVKIT_TEST_KERNEL_CONFIGS
#error "KVKIT_TEST_KERNEL_CONFIGS (the configured list, comma separated) must be defined"
#endif

namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string::size_type begin = 0;
  while (begin <= text.size()) {
    const auto end = text.find(separator, begin);
    parts.push_back(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) {
      break;
    }
    begin = end + 1;
  }
  return parts;
}

std::vector<std::string> built_names() {
  std::vector<std::string> names;
  for (const kvkit::kernel_config& config : kvkit::built_kernel_configs()) {
    names.push_back(kvkit::to_string(config));
  }
  return names;
}

}  // namespace

TEST(KernelRegistry, DtypeNames) {
  static_assert(kvkit::to_string(kvkit::cuda_dtype::fp16) == "fp16");
  static_assert(kvkit::to_string(kvkit::cuda_dtype::bf16) == "bf16");
  EXPECT_EQ(kvkit::to_string(kvkit::kernel_config{128, kvkit::cuda_dtype::bf16}), "hd128_bf16");
  EXPECT_EQ(kvkit::to_string(kvkit::kernel_config{64, kvkit::cuda_dtype::fp16}), "hd64_fp16");
}

TEST(KernelRegistry, BuiltConfigsAreTheConfiguredList) {
  EXPECT_EQ(built_names(), split(KVKIT_TEST_KERNEL_CONFIGS, ','));
}

TEST(KernelRegistry, FindsEveryBuiltConfig) {
  for (const kvkit::kernel_config& config : kvkit::built_kernel_configs()) {
    const kvkit::kernel_config_lookup found =
        kvkit::find_kernel_config(config.head_dim, config.dtype);
    ASSERT_TRUE(found.ok()) << found.error;
    EXPECT_EQ(*found.config, config);
    EXPECT_TRUE(found.error.empty());
  }
}

TEST(KernelRegistry, MissingConfigNamesWhatWasBuilt) {
  const kvkit::kernel_config_lookup found = kvkit::find_kernel_config(96, kvkit::cuda_dtype::bf16);
  ASSERT_FALSE(found);
  EXPECT_EQ(found.config, nullptr);

  std::string built;
  for (const std::string& name : built_names()) {
    built += built.empty() ? name : ", " + name;
  }
  EXPECT_EQ(found.error,
            "kvkit: no kernel built for head_dim=96 dtype=bf16; built configurations: " + built +
                " (set KVKIT_KERNEL_CONFIGS)");
}
