// KVKIT_EXPECT_ERROR: host_tier: Eviction must satisfy kvkit::eviction_policy
// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A host tier given a type that is not an eviction policy is rejected with a message naming the
// concept. Compiling with -DKVKIT_COMPILE_FAIL_CONTROL uses a real policy; the file then compiles.

#include <kvkit/eviction/lru.hpp>
#include <kvkit/tiers/host_tier.hpp>

struct not_a_policy {};

#ifdef KVKIT_COMPILE_FAIL_CONTROL
using tier = kvkit::host_tier<kvkit::lru_eviction>;
#else
using tier = kvkit::host_tier<not_a_policy>;
#endif

int main() {
  [[maybe_unused]] auto size = sizeof(tier);  // instantiates the class: its static_assert runs
  return 0;
}
