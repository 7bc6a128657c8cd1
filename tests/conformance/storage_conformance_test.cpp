// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The storage conformance suite over every host storage policy.

#include <kvkit/storage.hpp>
#include <kvkit/testing/storage_conformance.hpp>

#include <gtest/gtest.h>

namespace kvkit::testing {
namespace {

using storage_policies =
    ::testing::Types<host_storage<bf16>, host_storage<fp16>, host_storage<float>, no_storage>;
INSTANTIATE_TYPED_TEST_SUITE_P(all, storage_conformance, storage_policies);

}  // namespace
}  // namespace kvkit::testing
