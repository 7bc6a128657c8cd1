// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// Implementation of kvkit::synchronized_cache (declared in <kvkit/synchronized.hpp>).
#pragma once

#include <kvkit/detail/assert.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <utility>

namespace kvkit {

template <class Cache>
result<synchronized_cache<Cache>> synchronized_cache<Cache>::create(
    const cache_config& config, storage_type storage, const eviction_options& eviction) {
  auto cache = Cache::create(config, std::move(storage), eviction);
  if (!cache.ok())
    return cache.error();
  return synchronized_cache(std::move(cache).value());
}

template <class Cache>
synchronized_cache<Cache>::synchronized_cache(Cache cache)
    : state_(std::make_unique<state>(std::move(cache))) {}

template <class Cache>
std::lock_guard<std::mutex> synchronized_cache<Cache>::lock() const {
  KVKIT_ASSERT(state_ != nullptr, "kvkit::synchronized_cache used after it was moved from");
  return std::lock_guard<std::mutex>(state_->mutex);
}

template <class Cache>
std::uint32_t synchronized_cache<Cache>::match(std::span<const token_id> prompt,
                                               const request_options& options) const {
  const auto held = lock();
  return state_->cache.match(prompt, options);
}

template <class Cache>
miss_info synchronized_cache<Cache>::explain_miss(std::span<const token_id> prompt,
                                                  const request_options& options) const {
  const auto held = lock();
  return state_->cache.explain_miss(prompt, options);
}

template <class Cache>
result<admission> synchronized_cache<Cache>::admit(std::span<const token_id> prompt,
                                                   const request_options& options) {
  const auto held = lock();
  return state_->cache.admit(prompt, options);
}

template <class Cache>
result<commit_info> synchronized_cache<Cache>::commit(sequence_id seq,
                                                      std::uint32_t num_computed_tokens) {
  const auto held = lock();
  return state_->cache.commit(seq, num_computed_tokens);
}

template <class Cache>
result<commit_info> synchronized_cache<Cache>::commit(sequence_id seq) {
  const auto held = lock();
  return state_->cache.commit(seq);
}

template <class Cache>
status synchronized_cache<Cache>::append(sequence_id seq, std::span<const token_id> tokens) {
  const auto held = lock();
  return state_->cache.append(seq, tokens);
}

template <class Cache>
result<sequence_id> synchronized_cache<Cache>::fork(sequence_id seq) {
  const auto held = lock();
  return state_->cache.fork(seq);
}

template <class Cache>
result<pin_info> synchronized_cache<Cache>::pin(std::span<const token_id> prompt,
                                                const request_options& options) {
  const auto held = lock();
  return state_->cache.pin(prompt, options);
}

template <class Cache>
status synchronized_cache<Cache>::finish(sequence_id seq) {
  const auto held = lock();
  return state_->cache.finish(seq);
}

template <class Cache>
result<sequence_snapshot> synchronized_cache<Cache>::sequence(sequence_id seq) const {
  const auto held = lock();
  auto view = state_->cache.sequence(seq);
  if (!view.ok())
    return view.error();
  return sequence_snapshot{{view->tokens.begin(), view->tokens.end()},
                           {view->blocks.begin(), view->blocks.end()},
                           view->computed_tokens,
                           view->request};
}

template <class Cache>
template <class Pred>
std::uint32_t synchronized_cache<Cache>::invalidate_if(Pred&& pred) {
  const auto held = lock();
  return state_->cache.invalidate_if(std::forward<Pred>(pred));
}

template <class Cache>
std::uint32_t synchronized_cache<Cache>::invalidate_tenant(std::uint64_t tenant_salt) {
  const auto held = lock();
  return state_->cache.invalidate_tenant(tenant_salt);
}

template <class Cache>
std::uint32_t synchronized_cache<Cache>::invalidate_session(std::uint64_t session_id) {
  const auto held = lock();
  return state_->cache.invalidate_session(session_id);
}

template <class Cache>
std::uint32_t synchronized_cache<Cache>::invalidate_key(std::uint64_t key) {
  const auto held = lock();
  return state_->cache.invalidate_key(key);
}

template <class Cache>
std::uint32_t synchronized_cache<Cache>::clear() {
  const auto held = lock();
  return state_->cache.clear();
}

template <class Cache>
std::uint32_t synchronized_cache<Cache>::expire() {
  const auto held = lock();
  return state_->cache.expire();
}

template <class Cache>
class_stats synchronized_cache<Cache>::stats(std::uint32_t request_class) const {
  const auto held = lock();
  return state_->cache.stats(request_class);
}

template <class Cache>
cache_stats synchronized_cache<Cache>::stats() const {
  const auto held = lock();
  return state_->cache.stats();
}

template <class Cache>
status synchronized_cache<Cache>::check_invariants() const {
  const auto held = lock();
  return state_->cache.check_invariants();
}

template <class Cache>
std::uint32_t synchronized_cache<Cache>::available_blocks() const {
  const auto held = lock();
  return state_->cache.available_blocks();
}

template <class Cache>
std::uint32_t synchronized_cache<Cache>::block_size() const {
  const auto held = lock();
  return state_->cache.block_size();
}

template <class Cache>
std::uint32_t synchronized_cache<Cache>::num_blocks() const {
  const auto held = lock();
  return state_->cache.num_blocks();
}

template <class Cache>
template <class F>
decltype(auto) synchronized_cache<Cache>::with_lock(F&& f) {
  const auto held = lock();
  return std::invoke(std::forward<F>(f), state_->cache);
}

template <class Cache>
template <class F>
decltype(auto) synchronized_cache<Cache>::with_lock(F&& f) const {
  const auto held = lock();
  return std::invoke(std::forward<F>(f), std::as_const(state_->cache));
}

}  // namespace kvkit
