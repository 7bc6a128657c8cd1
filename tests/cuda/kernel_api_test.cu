// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The host side of the kernel API: argument checks, errors that name the bad field, the
// dispatch error listing the built configurations, split planning and workspace sizes. These
// never touch the device, so they run (and must pass) on machines without a GPU.
#include <kvkit/append_kv.hpp>
#include <kvkit/copy_blocks.hpp>
#include <kvkit/device_storage.hpp>
#include <kvkit/kernel_registry.hpp>
#include <kvkit/merge_states.hpp>
#include <kvkit/paged_decode.hpp>
#include <kvkit/paged_prefill.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "cuda/cuda_test_support.hpp"

namespace {

using namespace kvkit;

// Fake, well-aligned device addresses: can_implement() never dereferences them.
const void* fake(std::uintptr_t i) {
  return reinterpret_cast<const void*>(std::uintptr_t{0x10000} * i);
}
void* fake_mut(std::uintptr_t i) {
  return reinterpret_cast<void*>(std::uintptr_t{0x10000} * i);
}

const kernel_config& first_config() {
  return built_kernel_configs().front();
}

paged_decode_args valid_decode() {
  paged_decode_args a;
  a.q = fake(1);
  a.o = fake_mut(2);
  a.kv.k = fake(3);
  a.kv.v = fake(4);
  a.kv.indptr = static_cast<const std::uint32_t*>(fake(5));
  a.kv.indices = static_cast<const std::uint32_t*>(fake(6));
  a.kv.kv_len = static_cast<const std::uint32_t*>(fake(7));
  a.kv.batch = 4;
  a.kv.block_size = 16;
  a.kv.num_kv_heads = 8;
  a.kv.head_dim = static_cast<std::uint32_t>(first_config().head_dim);
  a.num_qo_heads = 32;
  a.dtype = first_config().dtype;
  return a;
}

std::string built_list() {
  std::string s;
  for (const kernel_config& c : built_kernel_configs())
    s += s.empty() ? to_string(c) : ", " + to_string(c);
  return s;
}

TEST(KernelApi, DecodeAcceptsValidArguments) {
  EXPECT_TRUE(can_implement(valid_decode()).ok()) << can_implement(valid_decode()).message();
}

TEST(KernelApi, UnbuiltConfigurationListsTheBuiltOnes) {
  paged_decode_args a = valid_decode();
  a.kv.head_dim = 96;
  const status s = can_implement(a);
  EXPECT_EQ(s.code(), errc::invalid_config);
  EXPECT_EQ(s.message(),
            "kvkit: no kernel built for head_dim=96 dtype=" + std::string(to_string(a.dtype)) +
                "; built configurations: " + built_list() + " (set KVKIT_KERNEL_CONFIGS)");
  // The same error from run(), before anything is launched.
  EXPECT_EQ(run(a, nullptr, nullptr).message(), s.message());

  merge_states_args m;
  m.head_dim = 80;
  EXPECT_EQ(can_implement(m).code(), errc::invalid_config);
  append_kv_args ap;
  ap.head_dim = 32;
  EXPECT_NE(can_implement(ap).message().find("built configurations: " + built_list()),
            std::string::npos);
}

TEST(KernelApi, ErrorsNameTheFieldAndTheAcceptedValues) {
  auto message = [](auto args) {
    return can_implement(args).message();
  };
  paged_decode_args a = valid_decode();
  a.q = nullptr;
  EXPECT_NE(message(a).find("paged_decode_args.q = null; accepted: a device pointer"),
            std::string::npos);
  a = valid_decode();
  a.num_qo_heads = 30;
  EXPECT_NE(message(a).find("paged_decode_args.num_qo_heads = 30; accepted: a positive multiple "
                            "of kv.num_kv_heads = 8"),
            std::string::npos);
  a = valid_decode();
  a.kv.block_size = 0;
  EXPECT_NE(message(a).find("kv.block_size"), std::string::npos);
  a = valid_decode();
  a.o = static_cast<char*>(fake_mut(2)) + 2;
  EXPECT_NE(message(a).find("paged_decode_args.o"), std::string::npos);
  EXPECT_NE(message(a).find("16-byte aligned"), std::string::npos);
  a = valid_decode();
  a.scale = -1.0f;
  EXPECT_NE(message(a).find("paged_decode_args.scale"), std::string::npos);

  paged_prefill_args p;
  p.q = fake(1);
  p.o = fake_mut(2);
  p.qo_indptr = static_cast<const std::uint32_t*>(fake(8));
  p.kv = valid_decode().kv;
  p.num_qo_heads = 32;
  p.dtype = first_config().dtype;
  EXPECT_NE(message(p).find("paged_prefill_args.max_qo_len = 0"), std::string::npos);
  p.max_qo_len = 512;
  EXPECT_TRUE(can_implement(p).ok()) << message(p);
  EXPECT_EQ(workspace_size(p), 0u);

  append_kv_args ap;
  ap.head_dim = static_cast<std::uint32_t>(first_config().head_dim);
  ap.dtype = first_config().dtype;
  ap.num_tokens = 3;
  ap.num_blocks = 10;
  ap.k_new = fake(1);
  ap.v_new = fake(2);
  ap.slot_mapping = static_cast<const std::int64_t*>(fake(3));
  ap.k_cache = fake_mut(4);
  ap.v_cache = fake_mut(5);
  EXPECT_TRUE(can_implement(ap).ok()) << message(ap);
  ap.k_stride = 7;
  EXPECT_NE(message(ap).find("append_kv_args.k_stride = 7"), std::string::npos);

  kv_layout l;
  l.num_blocks = 8;
  const block_copy bad_pair{1, 8};
  const status s = copy_blocks_inline(fake_mut(1), l, &bad_pair, 1, nullptr);
  EXPECT_NE(s.message().find("copy_blocks_inline.pairs[0] = {1, 8}"), std::string::npos)
      << s.message();
  copy_blocks_args c;
  c.layout = l;
  c.num_pairs = 2;
  c.base = fake_mut(1);
  EXPECT_NE(message(c).find("copy_blocks_args.pairs = null"), std::string::npos);
}

TEST(KernelApi, DecodeSplitsOnlyWhenTheBatchDoesNotFillTheGpu) {
  paged_decode_args a = valid_decode();
  a.kv.batch = 1;
  a.max_kv_len = 32768;
  const paged_decode_plan small = plan(a);
  EXPECT_GT(small.num_splits, 1u);
  EXPECT_GE(std::uint64_t{small.num_splits} * small.split_tokens, 32768u);
  EXPECT_EQ(small.split_tokens % 64, 0u);
  EXPECT_GT(workspace_size(a), 0u);

  a.kv.batch = 256;
  EXPECT_EQ(plan(a).num_splits, 1u);
  EXPECT_EQ(workspace_size(a), 0u);

  a.kv.batch = 1;
  a.max_kv_len = 100;  // too short to be worth splitting
  EXPECT_EQ(plan(a).num_splits, 1u);

  a.num_splits = 6;  // an explicit request is kept
  a.max_kv_len = 1000;
  EXPECT_EQ(plan(a).num_splits, 6u);
  EXPECT_EQ(workspace_size(a) >= std::size_t{6} * 32 * a.kv.head_dim * sizeof(float), true);

  a.num_qo_heads = 8 * 12;  // group 12: two CTAs per K/V head
  EXPECT_EQ(plan(a).head_chunks, 2u);
}

TEST(KernelApi, RunWithoutWorkspaceIsAnError) {
  paged_decode_args a = valid_decode();
  a.num_splits = 4;
  a.max_kv_len = 4096;
  const status s = run(a, nullptr, nullptr);
  EXPECT_EQ(s.code(), errc::invalid_argument);
  EXPECT_NE(s.message().find("workspace"), std::string::npos);
}

// Without a device, every launch fails, and the failure is errc::device_error carrying the CUDA
// error's name, never an argument or configuration error. (With a device the fake pointers
// would be dereferenced, so this runs only without one.)
TEST(KernelApi, ALaunchThatFailsIsADeviceErrorWithTheCudaMessage) {
  if (kvkit::test::cuda_device_available())
    GTEST_SKIP() << "needs a machine without a usable CUDA device";
  EXPECT_EQ(to_string(errc::device_error), "device_error");
  paged_decode_args a = valid_decode();
  const status s = run(a, nullptr, nullptr);
  EXPECT_EQ(s.code(), errc::device_error) << s.message();
  EXPECT_NE(s.message().find("kvkit: paged_decode launch failed: cuda"), std::string::npos)
      << s.message();
  append_kv_args ap;
  ap.head_dim = static_cast<std::uint32_t>(first_config().head_dim);
  ap.dtype = first_config().dtype;
  ap.num_tokens = 3;
  ap.num_blocks = 10;
  ap.k_new = fake(1);
  ap.v_new = fake(2);
  ap.slot_mapping = static_cast<const std::int64_t*>(fake(3));
  ap.k_cache = fake_mut(4);
  ap.v_cache = fake_mut(5);
  EXPECT_EQ(run(ap, nullptr, nullptr).code(), errc::device_error);
  kv_layout l;
  l.num_blocks = 8;
  const block_copy pair{1, 2};
  EXPECT_EQ(copy_blocks_inline(fake_mut(1), l, &pair, 1, nullptr).code(), errc::device_error);
}

// Planning reads the multiprocessor count of the device that holds kv.k (cached per device); a
// query that fails (no device, a pointer that is not device memory) leaves no error pending for
// the caller's next cudaGetLastError(), and the plan is the same every time.
TEST(KernelApi, PlanningLeavesNoErrorBehind) {
  static_cast<void>(cudaGetLastError());
  // Without a driver every runtime call, this one included, reports that; with a device it is
  // cudaSuccess. Either way planning must not change it.
  const cudaError_t before = cudaPeekAtLastError();
  paged_decode_args a = valid_decode();
  a.kv.batch = 1;
  a.max_kv_len = 32768;
  const paged_decode_plan first = plan(a);
  EXPECT_EQ(cudaPeekAtLastError(), before);
  const std::size_t ws = workspace_size(a);
  for (int i = 0; i < 3; ++i) {
    const paged_decode_plan again = plan(a);
    EXPECT_EQ(again.num_splits, first.num_splits);
    EXPECT_EQ(again.split_tokens, first.split_tokens);
    EXPECT_EQ(workspace_size(a), ws);
  }
  EXPECT_EQ(cudaPeekAtLastError(), before);
}

TEST(KernelApi, DeviceStorageWithoutDeviceIsAnError) {
  kv_layout l;
  l.num_blocks = 4;
  l.type = dtype::bf16;
  auto made = device_storage<bf16>::create(l);
  if (kvkit::test::cuda_device_available()) {
    EXPECT_TRUE(made.ok()) << made.status().message();
  } else {
    ASSERT_FALSE(made.ok());
    EXPECT_EQ(made.code(), errc::device_error);
    EXPECT_NE(made.error().message().find("no CUDA device"), std::string::npos)
        << made.error().message();
  }
  l.type = dtype::fp16;
  auto mismatch = device_storage<bf16>::create(l);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.code(), errc::layout_mismatch);
}

}  // namespace
