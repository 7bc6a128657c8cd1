// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// merge_states against reference_merge_states, with rows whose LSE is -inf on one or both sides
// and with the output aliasing the first input. Tolerances: output |err| <= 3e-3 (bf16) /
// 5e-4 (fp16), half an ulp of an output below 1 plus margin (the inputs are exact in the element
// type and the merge runs in fp32); LSE |err| <= 2e-3.
#include <kvkit/kernel_registry.hpp>
#include <kvkit/merge_states.hpp>
#include <kvkit/reference_attention.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda/cuda_test_support.hpp"

namespace {

using namespace kvkit;
using namespace kvkit::test;

template <class T>
void check_merge(const kernel_config& config, bool in_place, std::uint32_t seed) {
  SCOPED_TRACE(to_string(config) + (in_place ? " in place" : ""));
  std::mt19937_64 rng(seed);
  const std::uint32_t d = static_cast<std::uint32_t>(config.head_dim);
  const std::size_t rows = 1000 + rng() % 100;
  const std::vector<T> oa = random_values<T>(rows * d, -1.0f, 1.0f, rng);
  const std::vector<T> ob = random_values<T>(rows * d, -1.0f, 1.0f, rng);
  std::vector<float> la(rows), lb(rows);
  std::uniform_real_distribution<float> lse(-8.0f, 8.0f);
  for (std::size_t r = 0; r < rows; ++r) {
    la[r] = lse(rng);
    lb[r] = lse(rng);
    if (r % 17 == 3)
      la[r] = -INFINITY;
    if (r % 23 == 5)
      lb[r] = -INFINITY;
    if (r % 31 == 7)
      la[r] = lb[r] = -INFINITY;
  }
  device_buffer<T> d_oa(oa), d_ob(ob), d_o(rows * d);
  device_buffer<float> d_la(la), d_lb(lb), d_lse(rows);
  d_o.poison();
  d_lse.poison();
  merge_states_args args;
  args.o_a = d_oa.get();
  args.lse_a = d_la.get();
  args.o_b = d_ob.get();
  args.lse_b = d_lb.get();
  args.o = in_place ? d_oa.get() : d_o.get();
  args.lse = in_place ? d_la.get() : d_lse.get();
  args.rows = rows;
  args.head_dim = d;
  args.dtype = cuda_dtype_of<T>();
  KVKIT_STATUS_OK(can_implement(args));
  KVKIT_STATUS_OK(run(args, nullptr, nullptr));
  KVKIT_CUDA_OK(cudaDeviceSynchronize());

  const std::vector<float> fa = to_floats(oa), fb = to_floats(ob);
  std::vector<float> want_o(rows * d), want_lse(rows);
  reference_merge_states(fa.data(), la.data(), fb.data(), lb.data(), rows, d, want_o.data(),
                         want_lse.data());
  const std::vector<float> got_o = to_floats((in_place ? d_oa : d_o).download());
  const std::vector<float> got_lse = (in_place ? d_la : d_lse).download();
  EXPECT_LE(max_abs_error(got_o, want_o), output_tolerance<T>());
  EXPECT_LE(max_abs_error(got_lse, want_lse), lse_tolerance);
}

TEST(MergeStates, MatchesReference) {
  KVKIT_REQUIRE_CUDA_DEVICE();
  for (const kernel_config& config : test_configs()) {
    with_dtype(config.dtype, [&]<class T>() {
      check_merge<T>(config, false, 1);
      check_merge<T>(config, true, 2);
    });
  }
}

}  // namespace
