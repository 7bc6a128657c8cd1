// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The public catalogue of shipped policies under the names the tests use.
#pragma once

#include <kvkit/catalogue.hpp>

namespace kvkit::test {
using kvkit::all_allocators;
using kvkit::all_evictions;
using kvkit::all_matchers;
using kvkit::combination_count;
using kvkit::for_each_combination;
using kvkit::type_list;
using kvkit::with_combination;
}  // namespace kvkit::test
