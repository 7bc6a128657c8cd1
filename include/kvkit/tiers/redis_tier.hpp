// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief `redis_tier`: a remote tier on a Redis server, shared by every engine of the same model
/// and K/V layout (through hiredis; CMake target `kvkit::redis`).
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/layout.hpp>
#include <kvkit/tier.hpp>
#include <kvkit/tiers/detail/redis_link.hpp>
#include <kvkit/tiers/detail/tier_common.hpp>
#include <kvkit/tiers/detail/tier_value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kvkit {

/// @brief Settings of a @ref kvkit::redis_tier.
struct redis_tier_options {
  std::string host = "127.0.0.1";  ///< Server address (name or IP).
  std::uint16_t port = 6379;       ///< Server port (>= 1).
  /// @brief Names the model (and its weights' revision): engines share values only when their
  /// model names and K/V layouts are equal. Letters, digits and `. _ - / @ +`, 1 to 128 chars.
  std::string model;
  /// @brief First component of every key (same characters as @ref model).
  std::string key_prefix = "kvkit";
  std::chrono::milliseconds connect_timeout{200};  ///< Limit of one connection attempt (>= 1).
  /// @brief Limit of each socket read or write of a round trip (>= 1): a paused server costs a
  /// request at most about this long, then the tier backs off.
  std::chrono::milliseconds command_timeout{200};
  std::chrono::milliseconds retry_initial{50};  ///< First wait before reconnecting (>= 1).
  std::chrono::milliseconds retry_max{5000};    ///< Longest wait (doubling up to it).
  /// @brief Time to live of every value (`SET ... EX`); 0 keeps values until Redis evicts them.
  std::chrono::seconds ttl{3600};
  /// @brief A load restarts the time to live of the values it reads (`GETEX`), so the TTL counts
  /// idle time as in the host tier. Turn off to read from replicas (GETEX is a write).
  bool touch_on_hit = true;
  /// @brief How long a namespace's generations are trusted before they are read again: an
  /// invalidation by another engine takes effect here within this time. 0 reads them on every
  /// operation (one more round trip each).
  std::chrono::milliseconds generation_refresh{1000};
  /// @brief Time to live of the generation keys (renewed whenever read); 0: none. Keep it longer
  /// than `ttl`: a lost generation makes its namespace's values unreachable (a miss, never
  /// stale bytes).
  std::chrono::seconds generation_ttl{7 * 24 * 3600};
  /// @brief When blocks are written: on eviction from the pool, or on commit (write-through).
  tier_write_policy write = tier_write_policy::on_eviction;
  /// @brief Delete a value that fails verification (in the next round trip), so one bad value
  /// costs one miss rather than one per request.
  bool delete_bad_values = true;
  /// @brief An episode of value or reply errors ends after this long without another one.
  std::chrono::milliseconds quiet_period{10000};
  /// @brief Receives error episode reports (begin and end). Empty: one line on standard error per
  /// report.
  std::function<void(const tier_event&)> on_event{};
  /// @brief Clock of back-off, generation refresh and episodes, in nanoseconds from any fixed
  /// origin. Empty: `std::chrono::steady_clock`.
  std::function<std::chrono::nanoseconds()> now{};
};

/// @brief A remote tier on a Redis server: engines on many machines share blocks through it.
///
/// **Keys** are content addresses:
/// `<key_prefix>:v1:<model>:L<layers>.H<kv heads>.D<head dim>.B<block
/// size>.<dtype>.<order>:{<g>}:<key>` where `<key>` is the block's chained content key (16 hex
/// digits) and `<g>` (16 hex digits, a Redis Cluster hash tag) digests the namespace key with the
/// current generations of its tenant, session and extra keys. Generations live in small keys
/// (`<prefix>:gen:t:<salt>`, `gen:s:<session>`, `gen:x:<extra key>`) holding a random value;
/// invalidation writes a new random value, so every value of the namespace becomes unreachable
/// without scanning the keyspace, for every engine within `generation_refresh`.
///
/// **Values** are a header (format version, layout fingerprint, key, parent key, tenant salt,
/// session, extra-keys digest, sizes, XXH3-64 checksum of the K/V), the block's tokens and the K/V
/// of every layer. A loaded value is verified against all of them before its bytes are used: any
/// mismatch is a miss and a counted error, never wrong K/V.
///
/// **Round trips.** A chain moves in one pipelined round trip (`GETEX`/`GET`, `GETRANGE`+`STRLEN`
/// for lookups, `SET ... EX` for stores), plus one to read generations not read within
/// `generation_refresh`. Pending invalidations and deletions ride along with the next round trip.
///
/// **Faults.** A remote tier is an optimisation: no operation fails or blocks a request for
/// longer than the timeouts. A server that is absent, killed, restarted, paused or out of memory
/// makes operations misses; the tier reconnects with exponential back-off and skips operations
/// meanwhile (`tier_error::unavailable`). Errors are counted per kind and reported once per
/// episode through `redis_tier_options::on_event`.
///
/// Not thread-safe; the owner serialises calls. Moves but does not copy (it owns a connection).
class redis_tier {
 public:
  /// @brief Tier name used in statistics and reports.
  static constexpr std::string_view name = "redis";

  /// @brief Makes a tier for blocks of @p layout. Does not connect: the first operation does,
  /// and an absent server is a miss, not an error here.
  /// @param layout Shape of every block (`num_blocks` is ignored).
  /// @param opts Server, model name, timeouts, TTLs, write policy, reporting.
  /// @return The tier, or `errc::invalid_config` naming the bad setting and what is accepted.
  [[nodiscard]] static result<redis_tier> create(const kv_layout& layout, redis_tier_options opts);

  /// @brief Shape of the blocks.
  /// @return The layout.
  [[nodiscard]] const kv_layout& layout() const noexcept { return layout_; }

  /// @brief Length of the longest leading run of @p chain stored and verified (header, tokens,
  /// parent, namespace; not the checksum), in one round trip; moves no K/V bytes.
  /// @param chain The chain.
  /// @return Blocks (0 on any failure).
  [[nodiscard]] std::uint32_t lookup(const tier_chain& chain);

  /// @brief Loads the K/V of the longest verified leading run of @p chain into @p dst, in one
  /// round trip.
  /// @param chain The chain.
  /// @param dst One view per block (at most `dst.size()` blocks are loaded).
  /// @return Blocks loaded; bytes are written only into `dst[0, n)`.
  [[nodiscard]] std::uint32_t load(const tier_chain& chain, std::span<const kv_block_view> dst);

  /// @brief Writes @p blocks (if the tier accepts @p reason), in one round trip.
  /// @param blocks The blocks (blocks whose token count is not the block size are refused).
  /// @param reason Why they are offered.
  /// @return Blocks written.
  std::uint32_t store(std::span<const tier_block> blocks, tier_store_reason reason);

  /// @brief Makes every value of the namespaces in @p scope unreachable, for this engine at once
  /// and for every engine within `generation_refresh`, by writing a new generation.
  /// @param scope Tenant, session or extra key.
  /// @return `dropped` is 0 (values are not counted); `complete` is false when the server could
  /// not be reached: the new generation holds here and is written with the next round trip.
  tier_invalidation invalidate(tier_scope scope);

  /// @brief Redis expires values itself (`SET ... EX`).
  /// @return 0.
  std::uint64_t expire() noexcept { return 0; }

  /// @brief Whether the tier writes blocks offered for @p reason.
  /// @param reason Why blocks are offered.
  /// @return True for warm, and for eviction or commit as `redis_tier_options::write` says.
  [[nodiscard]] bool accepts(tier_store_reason reason) const noexcept;

  /// @brief Counters (errors by kind, episodes, round trips...).
  /// @return A snapshot.
  [[nodiscard]] tier_stats stats() const;

  /// @brief The key of block @p key of namespace @p ns under the current generations (reads them
  /// if they are not fresh: may cost a round trip). For tools and tests.
  /// @param ns The namespace.
  /// @param key The block's content key.
  /// @return The key, or nothing when the generations could not be read.
  [[nodiscard]] std::optional<std::string> data_key(const tier_namespace& ns, std::uint64_t key);

  /// @brief The prefix naming the model and the layout, e.g.
  /// `kvkit:v1:llama-3-8b:L32.H8.D128.B16.bf16.NHD`.
  /// @return The prefix.
  [[nodiscard]] const std::string& key_prefix() const noexcept { return prefix_; }

  /// @brief The layout fingerprint written into every value.
  /// @return The fingerprint.
  [[nodiscard]] std::uint64_t fingerprint() const noexcept { return fingerprint_; }

 private:
  struct gen_id {
    char kind;  // 't' tenant, 's' session, 'x' extra key
    std::uint64_t value;
    bool operator==(const gen_id&) const = default;
  };
  struct gen_hash {
    std::size_t operator()(const gen_id& g) const noexcept {
      return static_cast<std::size_t>(g.value * 0x9E3779B97F4A7C15ULL) ^
             static_cast<std::size_t>(g.kind);
    }
  };
  struct gen_entry {
    std::uint64_t value = 0;
    std::int64_t fetched_ns = 0;
    std::uint64_t connection = 0;
    bool pending = false;  // a new value not yet written to the server
  };
  // What each reply of a pipeline answers.
  struct reply_role {
    enum class what : std::uint8_t {
      pending_set,
      bad_delete,
      gen_create,
      gen_read,
      data,       // a value (GET/GETEX) or a write acknowledgement (SET)
      data_head,  // lookups: the header and tokens of a value (GETRANGE)
      data_len,   // lookups: the length of a value (STRLEN)
    } kind;
    std::size_t index;  // gen list index, or block index
  };

  redis_tier(const kv_layout& layout, redis_tier_options&& opts, std::string prefix);

  [[nodiscard]] std::int64_t now_ns() const { return clock_().count(); }
  void gens_of(const tier_namespace& ns, std::vector<gen_id>& out) const;
  [[nodiscard]] std::string gen_key(const gen_id& g) const;
  [[nodiscard]] bool fresh(const gen_entry& e) const;
  [[nodiscard]] bool refresh_generations(std::span<const tier_namespace* const> nss);
  [[nodiscard]] std::uint64_t ns_digest(const tier_namespace& ns) const;
  [[nodiscard]] std::string data_key_of(std::uint64_t digest, std::uint64_t key) const;
  void begin_pipeline();
  void on_pending_reply(const reply_role& role, const redisReply* r);
  void after_run(bool ok);
  void count_link_failure(const detail::link_failure& f);
  void count_reply_error(const redisReply* r, const std::string& what);
  void count_value_error(detail::value_check c, const std::string& key);
  [[nodiscard]] std::uint32_t fetch(const tier_chain& chain, std::span<const kv_block_view> dst,
                                    bool with_payload);

  kv_layout layout_;
  redis_tier_options opts_;
  std::function<std::chrono::nanoseconds()> clock_;
  std::string prefix_;
  std::uint64_t fingerprint_;
  detail::redis_link link_;
  detail::error_episodes episodes_;
  std::mt19937_64 rng_;

  std::unordered_map<gen_id, gen_entry, gen_hash> gens_;
  std::vector<gen_id> pending_gens_;          // generations to write
  std::vector<std::string> pending_deletes_;  // bad values to delete
  std::size_t pending_in_flight_gens_ = 0;
  std::size_t pending_in_flight_deletes_ = 0;

  detail::redis_pipeline pipe_;
  std::vector<reply_role> roles_;
  std::vector<std::string> keys_;
  std::vector<gen_id> gen_scratch_;
  std::vector<std::byte> values_;

  tier_stats stats_{};
  detail::latency_histogram latency_{};
};

}  // namespace kvkit

#include <kvkit/tiers/detail/redis_tier_impl.hpp>
