// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Miss reasons with the hash matcher over vLLM's block hashes (SHA-256 chains; the suite:
// support/miss_reasons_suite.hpp).

#include <kvkit/vllm_hashing.hpp>

#include "support/miss_reasons_suite.hpp"

namespace kvkit::test {
namespace {
using matchers = ::testing::Types<vllm_hash_matcher>;
INSTANTIATE_TYPED_TEST_SUITE_P(MissReasons, MissReasons, matchers);
}  // namespace
}  // namespace kvkit::test
