// KVKIT_EXPECT_ERROR: tier_has_load
// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// A tier without `load()` does not satisfy kvkit::cache_tier, and the diagnostic names the missing
// requirement. Compiling with -DKVKIT_COMPILE_FAIL_CONTROL adds the member back; the file then
// compiles, which shows that nothing else in it is broken.

#include <kvkit/tier.hpp>

#include <cstdint>
#include <span>

struct bad_tier {
  [[nodiscard]] const kvkit::kv_layout& layout() const { return layout_; }
  std::uint32_t lookup(const kvkit::tier_chain&) { return 0; }
#ifdef KVKIT_COMPILE_FAIL_CONTROL
  std::uint32_t load(const kvkit::tier_chain&, std::span<const kvkit::kv_block_view>) {
    return 0;
  }
#endif
  std::uint32_t store(std::span<const kvkit::tier_block>, kvkit::tier_store_reason) {
    return 0;
  }
  kvkit::tier_invalidation invalidate(kvkit::tier_scope) {
    return {};
  }
  std::uint64_t expire() {
    return 0;
  }
  [[nodiscard]] kvkit::tier_stats stats() const {
    return {};
  }
  kvkit::kv_layout layout_{};
};

static_assert(kvkit::cache_tier<bad_tier>);

int main() {
  return 0;
}
