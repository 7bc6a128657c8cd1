// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Umbrella header: the prefix cache, its concepts and every policy shipped with kvkit.
#pragma once

#include <kvkit/allocator/fifo_free.hpp>
#include <kvkit/allocator/free_list.hpp>
#include <kvkit/allocator/lowest_index.hpp>
#include <kvkit/catalogue.hpp>
#include <kvkit/concepts.hpp>
#include <kvkit/error.hpp>
#include <kvkit/eviction/fifo.hpp>
#include <kvkit/eviction/lfu.hpp>
#include <kvkit/eviction/lru.hpp>
#include <kvkit/eviction/priority.hpp>
#include <kvkit/eviction/sieve.hpp>
#include <kvkit/eviction/ttl.hpp>
#include <kvkit/hashing.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/matcher/hash.hpp>
#include <kvkit/matcher/radix.hpp>
#include <kvkit/matcher/session.hpp>
#include <kvkit/metrics.hpp>
#include <kvkit/paged_kv.hpp>
#include <kvkit/prefix_cache.hpp>
#include <kvkit/reference_attention.hpp>
#include <kvkit/storage.hpp>
#include <kvkit/synchronized.hpp>
#include <kvkit/types.hpp>

/// @brief Everything kvkit provides lives in this namespace.
namespace kvkit {}
