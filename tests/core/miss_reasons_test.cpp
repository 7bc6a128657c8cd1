// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Miss reasons with the hash, radix and session matchers (the suite:
// support/miss_reasons_suite.hpp; the vLLM-hash matcher: tests/events/vllm_miss_reasons_test.cpp).

#include <kvkit/matcher/hash.hpp>
#include <kvkit/matcher/radix.hpp>
#include <kvkit/matcher/session.hpp>

#include "support/miss_reasons_suite.hpp"

namespace kvkit::test {
namespace {
using matchers = ::testing::Types<hash_matcher, radix_matcher, session_matcher>;
INSTANTIATE_TYPED_TEST_SUITE_P(core, MissReasons, matchers);
}  // namespace
}  // namespace kvkit::test
