// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Implementation of kvkit::synchronized_cache (declared in <kvkit/synchronized.hpp>).
#pragma once

#include <kvkit/detail/assert.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <utility>

namespace kvkit {

#define KVKIT_SC_TEMPLATE template <class Cache>
#define KVKIT_SC synchronized_cache<Cache>
#define KVKIT_SC_LOCK()                                                                      \
  KVKIT_ASSERT(state_ != nullptr, "kvkit::synchronized_cache used after it was moved from"); \
  const std::lock_guard<std::mutex> kvkit_sc_lock_(state_->mutex)

KVKIT_SC_TEMPLATE
result<KVKIT_SC> KVKIT_SC::create(const cache_config& config, storage_type storage,
                                  const eviction_options& eviction) {
  auto cache = Cache::create(config, std::move(storage), eviction);
  if (!cache.ok())
    return cache.error();
  return synchronized_cache(std::move(cache).value());
}

KVKIT_SC_TEMPLATE
KVKIT_SC::synchronized_cache(Cache cache) : state_(std::make_unique<state>(std::move(cache))) {}

KVKIT_SC_TEMPLATE
std::uint32_t KVKIT_SC::match(std::span<const token_id> prompt,
                              const request_options& options) const {
  KVKIT_SC_LOCK();
  return state_->cache.match(prompt, options);
}

KVKIT_SC_TEMPLATE
result<admission> KVKIT_SC::admit(std::span<const token_id> prompt,
                                  const request_options& options) {
  KVKIT_SC_LOCK();
  return state_->cache.admit(prompt, options);
}

KVKIT_SC_TEMPLATE
result<commit_info> KVKIT_SC::commit(sequence_id seq, std::uint32_t num_computed_tokens) {
  KVKIT_SC_LOCK();
  return state_->cache.commit(seq, num_computed_tokens);
}

KVKIT_SC_TEMPLATE
result<commit_info> KVKIT_SC::commit(sequence_id seq) {
  KVKIT_SC_LOCK();
  return state_->cache.commit(seq);
}

KVKIT_SC_TEMPLATE
status KVKIT_SC::append(sequence_id seq, std::span<const token_id> tokens) {
  KVKIT_SC_LOCK();
  return state_->cache.append(seq, tokens);
}

KVKIT_SC_TEMPLATE
result<sequence_id> KVKIT_SC::fork(sequence_id seq) {
  KVKIT_SC_LOCK();
  return state_->cache.fork(seq);
}

KVKIT_SC_TEMPLATE
result<pin_info> KVKIT_SC::pin(std::span<const token_id> prompt, const request_options& options) {
  KVKIT_SC_LOCK();
  return state_->cache.pin(prompt, options);
}

KVKIT_SC_TEMPLATE
status KVKIT_SC::finish(sequence_id seq) {
  KVKIT_SC_LOCK();
  return state_->cache.finish(seq);
}

KVKIT_SC_TEMPLATE
result<sequence_snapshot> KVKIT_SC::sequence(sequence_id seq) const {
  KVKIT_SC_LOCK();
  auto view = state_->cache.sequence(seq);
  if (!view.ok())
    return view.error();
  return sequence_snapshot{{view->tokens.begin(), view->tokens.end()},
                           {view->blocks.begin(), view->blocks.end()},
                           view->computed_tokens,
                           view->request};
}

KVKIT_SC_TEMPLATE
template <class Pred>
std::uint32_t KVKIT_SC::invalidate_if(Pred&& pred) {
  KVKIT_SC_LOCK();
  return state_->cache.invalidate_if(std::forward<Pred>(pred));
}

KVKIT_SC_TEMPLATE
std::uint32_t KVKIT_SC::invalidate_tenant(std::uint64_t tenant_salt) {
  KVKIT_SC_LOCK();
  return state_->cache.invalidate_tenant(tenant_salt);
}

KVKIT_SC_TEMPLATE
std::uint32_t KVKIT_SC::invalidate_session(std::uint64_t session_id) {
  KVKIT_SC_LOCK();
  return state_->cache.invalidate_session(session_id);
}

KVKIT_SC_TEMPLATE
std::uint32_t KVKIT_SC::invalidate_key(std::uint64_t key) {
  KVKIT_SC_LOCK();
  return state_->cache.invalidate_key(key);
}

KVKIT_SC_TEMPLATE
std::uint32_t KVKIT_SC::expire() {
  KVKIT_SC_LOCK();
  return state_->cache.expire();
}

KVKIT_SC_TEMPLATE
class_stats KVKIT_SC::stats(std::uint32_t request_class) const {
  KVKIT_SC_LOCK();
  return state_->cache.stats(request_class);
}

KVKIT_SC_TEMPLATE
cache_stats KVKIT_SC::stats() const {
  KVKIT_SC_LOCK();
  return state_->cache.stats();
}

KVKIT_SC_TEMPLATE
status KVKIT_SC::check_invariants() const {
  KVKIT_SC_LOCK();
  return state_->cache.check_invariants();
}

KVKIT_SC_TEMPLATE
std::uint32_t KVKIT_SC::available_blocks() const {
  KVKIT_SC_LOCK();
  return state_->cache.available_blocks();
}

KVKIT_SC_TEMPLATE
std::uint32_t KVKIT_SC::block_size() const {
  KVKIT_SC_LOCK();
  return state_->cache.block_size();
}

KVKIT_SC_TEMPLATE
std::uint32_t KVKIT_SC::num_blocks() const {
  KVKIT_SC_LOCK();
  return state_->cache.num_blocks();
}

KVKIT_SC_TEMPLATE
template <class F>
decltype(auto) KVKIT_SC::with_lock(F&& f) {
  KVKIT_SC_LOCK();
  return std::invoke(std::forward<F>(f), state_->cache);
}

KVKIT_SC_TEMPLATE
template <class F>
decltype(auto) KVKIT_SC::with_lock(F&& f) const {
  KVKIT_SC_LOCK();
  return std::invoke(std::forward<F>(f), std::as_const(state_->cache));
}

#undef KVKIT_SC_LOCK
#undef KVKIT_SC
#undef KVKIT_SC_TEMPLATE

}  // namespace kvkit
