// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The cache fuzzer's compositions with the hash matcher (see fuzz_one.hpp).
#include "fuzz_one.hpp"

template void kvkit::fuzz::fuzz_with_matcher<kvkit::hash_matcher>(std::size_t,
                                                                  kvkit::fuzz::byte_choices&);
