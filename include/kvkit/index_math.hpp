// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief The index arithmetic of paged attention, one function per formula: where a token's
/// K/V lives (page, position, slot id, element offset in NHD and HND order), how a sequence is
/// split for split-KV decode, how the query heads of a GQA group are packed into rows, and which
/// keys a query that follows a cached prefix may see.
///
/// Every function is `constexpr` and, under nvcc, `__host__ __device__`: the CUDA kernels,
/// `paged_kv`, `kv_layout`, the CPU reference attention and the mini engine's backends all call
/// these, so each formula is written once. The header is plain C++ (no nvcc needed) and depends
/// on nothing but `<cstdint>` and `<cstddef>`.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
/// @brief `__host__ __device__` under nvcc, nothing otherwise: marks functions callable from
/// both host and device code.
#define KVKIT_HOST_DEVICE __host__ __device__
#else
/// @brief `__host__ __device__` under nvcc, nothing otherwise: marks functions callable from
/// both host and device code.
#define KVKIT_HOST_DEVICE
#endif

namespace kvkit {

// ---- pages, positions and slots ------------------------------------------------------------

/// @brief `ceil(a / b)`, without overflow.
/// @param a Dividend.
/// @param b Divisor (>= 1).
/// @return The quotient rounded up.
KVKIT_HOST_DEVICE constexpr std::uint32_t ceil_div(std::uint32_t a, std::uint32_t b) noexcept {
  return static_cast<std::uint32_t>((std::uint64_t{a} + b - 1) / b);
}

/// @brief Where token `t` of a sequence lives relative to that sequence's page list.
struct token_slot {
  std::uint32_t page_index = 0;  ///< Index into the sequence's pages (`t / block_size`).
  std::uint32_t position = 0;    ///< Position inside that page (`t % block_size`).
};

/// @brief The page (index into the sequence's page list) and position of token @p token.
/// @param token Token position in its sequence.
/// @param block_size Tokens per page (>= 1).
/// @return `{token / block_size, token % block_size}`.
KVKIT_HOST_DEVICE constexpr token_slot token_slot_of(std::uint32_t token,
                                                     std::uint32_t block_size) noexcept {
  return {token / block_size, token % block_size};
}

/// @brief Pages needed for @p tokens tokens (the last one may be partial).
/// @param tokens Token count.
/// @param block_size Tokens per page (>= 1).
/// @return `ceil(tokens / block_size)`.
KVKIT_HOST_DEVICE constexpr std::uint32_t pages_for(std::uint32_t tokens,
                                                    std::uint32_t block_size) noexcept {
  return ceil_div(tokens, block_size);
}

/// @brief The flat slot id of (page, position), as `append_kv_args::slot_mapping` holds it.
/// @param page Page id in the pool.
/// @param position Position inside the page.
/// @param block_size Tokens per page.
/// @return `page * block_size + position`.
KVKIT_HOST_DEVICE constexpr std::int64_t slot_id(std::uint32_t page, std::uint32_t position,
                                                 std::uint32_t block_size) noexcept {
  return static_cast<std::int64_t>(std::uint64_t{page} * block_size + position);
}

/// @brief The flat slot id of token @p token of a sequence whose pages are @p pages.
/// @param pages The sequence's page ids, in order.
/// @param token Token position in the sequence.
/// @param block_size Tokens per page.
/// @return `slot_id(pages[token / block_size], token % block_size, block_size)`.
KVKIT_HOST_DEVICE constexpr std::int64_t token_slot_id(const std::uint32_t* pages,
                                                       std::uint32_t token,
                                                       std::uint32_t block_size) noexcept {
  const token_slot s = token_slot_of(token, block_size);
  return slot_id(pages[s.page_index], s.position, block_size);
}

/// @brief A page id and a position inside it.
struct page_position {
  std::uint32_t page = 0;      ///< Page id in the pool.
  std::uint32_t position = 0;  ///< Position inside the page.
};

/// @brief Inverse of slot_id(): the page and position of flat slot @p slot.
/// @param slot A slot id `>= 0`.
/// @param block_size Tokens per page.
/// @return `{slot / block_size, slot % block_size}`.
KVKIT_HOST_DEVICE constexpr page_position page_position_of(std::int64_t slot,
                                                           std::uint32_t block_size) noexcept {
  const auto s = static_cast<std::uint64_t>(slot);
  return {static_cast<std::uint32_t>(s / block_size), static_cast<std::uint32_t>(s % block_size)};
}

/// @brief Whether flat slot @p slot is one append_kv writes: `0 <= slot < num_blocks *
/// block_size` (a negative slot marks a padding token).
/// @param slot The slot id.
/// @param block_size Tokens per page.
/// @param num_blocks Pages in the pool.
/// @return `true` for a slot inside the pool.
KVKIT_HOST_DEVICE constexpr bool slot_in_pool(std::int64_t slot, std::uint32_t block_size,
                                              std::uint32_t num_blocks) noexcept {
  return slot >= 0 && static_cast<std::uint64_t>(slot) < std::uint64_t{num_blocks} * block_size;
}

// ---- element offsets -----------------------------------------------------------------------

/// @brief Elements in one page of one pool.
/// @param block_size Tokens per page.
/// @param num_kv_heads K/V heads.
/// @param head_dim Elements per head.
/// @return `block_size * num_kv_heads * head_dim`.
KVKIT_HOST_DEVICE constexpr std::size_t page_elements(std::uint32_t block_size,
                                                      std::uint32_t num_kv_heads,
                                                      std::uint32_t head_dim) noexcept {
  return std::size_t{block_size} * num_kv_heads * head_dim;
}

/// @brief Element offset of (position, head, 0) inside one page.
/// @param position Token position inside the page.
/// @param head K/V head.
/// @param block_size Tokens per page.
/// @param num_kv_heads K/V heads.
/// @param head_dim Elements per head.
/// @param hnd `false` for NHD (`[token][head][dim]`), `true` for HND (`[head][token][dim]`).
/// @return NHD: `(position * num_kv_heads + head) * head_dim`; HND: `(head * block_size +
/// position) * head_dim`.
KVKIT_HOST_DEVICE constexpr std::size_t in_page_offset(std::uint32_t position, std::uint32_t head,
                                                       std::uint32_t block_size,
                                                       std::uint32_t num_kv_heads,
                                                       std::uint32_t head_dim, bool hnd) noexcept {
  return hnd ? (std::size_t{head} * block_size + position) * head_dim
             : (std::size_t{position} * num_kv_heads + head) * head_dim;
}

/// @brief Element offset of (page, position, head, 0) from the start of a pool.
/// @param page Page id.
/// @param position Token position inside the page.
/// @param head K/V head.
/// @param block_size Tokens per page.
/// @param num_kv_heads K/V heads.
/// @param head_dim Elements per head.
/// @param hnd `true` for HND order, `false` for NHD.
/// @return `page * page_elements() + in_page_offset()`, in 64-bit arithmetic (pools may hold
/// more than 2^32 elements).
KVKIT_HOST_DEVICE constexpr std::size_t page_offset(std::uint32_t page, std::uint32_t position,
                                                    std::uint32_t head, std::uint32_t block_size,
                                                    std::uint32_t num_kv_heads,
                                                    std::uint32_t head_dim, bool hnd) noexcept {
  return std::size_t{page} * page_elements(block_size, num_kv_heads, head_dim) +
         in_page_offset(position, head, block_size, num_kv_heads, head_dim, hnd);
}

// ---- split-KV bounds -----------------------------------------------------------------------

/// @brief A half-open token range `[begin, end)`.
struct token_range {
  std::uint32_t begin = 0;  ///< First token.
  std::uint32_t end = 0;    ///< One past the last token (`end >= begin`).
};

/// @brief Tokens of split @p split of a sequence of @p kv_len tokens cut into @p num_splits
/// splits of @p split_tokens tokens.
///
/// Split `s` covers `[s * split_tokens, (s + 1) * split_tokens)`, clipped to the sequence; the
/// last split runs to the end of the sequence, however long, so the splits cover every token
/// even when `num_splits * split_tokens < kv_len` (an understated `max_kv_len` at planning
/// time). Splits past the end are empty.
/// @param split Split index (`< num_splits`).
/// @param num_splits Splits per sequence (>= 1).
/// @param split_tokens Tokens per split (ignored with one split).
/// @param kv_len Tokens of the sequence.
/// @return The split's range; `begin == end` for an empty split.
KVKIT_HOST_DEVICE constexpr token_range split_range(std::uint32_t split, std::uint32_t num_splits,
                                                    std::uint32_t split_tokens,
                                                    std::uint32_t kv_len) noexcept {
  const std::uint64_t begin = std::uint64_t{split} * split_tokens;
  std::uint64_t end = split + 1 >= num_splits ? kv_len : begin + split_tokens;
  if (end > kv_len)
    end = kv_len;
  const std::uint64_t b = begin < end ? begin : end;
  return {static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(end)};
}

/// @brief Tokens per split when @p bound tokens are cut into @p splits splits whose length is a
/// multiple of @p granule (so that no tile of @p granule tokens straddles two splits).
/// @param bound Host-side bound of the sequence length (>= 1).
/// @param splits Requested splits (>= 1).
/// @param granule Alignment of a split's length (>= 1), e.g. the largest kernel tile.
/// @return `round_up(ceil(bound / splits), granule)`.
KVKIT_HOST_DEVICE constexpr std::uint32_t split_tokens_for(std::uint32_t bound,
                                                           std::uint32_t splits,
                                                           std::uint32_t granule) noexcept {
  return ceil_div(ceil_div(bound, splits), granule) * granule;
}

// ---- GQA: query heads of a K/V head ----------------------------------------------------------

/// @brief Query heads per K/V head.
/// @param num_qo_heads Query heads (a multiple of @p num_kv_heads).
/// @param num_kv_heads K/V heads (>= 1).
/// @return `num_qo_heads / num_kv_heads`.
KVKIT_HOST_DEVICE constexpr std::uint32_t gqa_group(std::uint32_t num_qo_heads,
                                                    std::uint32_t num_kv_heads) noexcept {
  return num_qo_heads / num_kv_heads;
}

/// @brief The K/V head that query head @p qo_head reads.
/// @param qo_head Query head.
/// @param group Query heads per K/V head.
/// @return `qo_head / group`.
KVKIT_HOST_DEVICE constexpr std::uint32_t kv_head_of(std::uint32_t qo_head,
                                                     std::uint32_t group) noexcept {
  return qo_head / group;
}

/// @brief Chunks of at most @p per_chunk query heads that a GQA group of @p group heads takes.
/// @param group Query heads per K/V head.
/// @param per_chunk Most query heads one chunk (one CTA) holds.
/// @return `max(1, ceil(group / per_chunk))`.
KVKIT_HOST_DEVICE constexpr std::uint32_t head_chunks(std::uint32_t group,
                                                      std::uint32_t per_chunk) noexcept {
  const std::uint32_t n = ceil_div(group, per_chunk);
  return n > 0 ? n : 1;
}

/// @brief A run of consecutive query heads.
struct head_span {
  std::uint32_t first = 0;  ///< First query head.
  std::uint32_t count = 0;  ///< Number of heads.
};

/// @brief The query heads of chunk @p chunk of K/V head @p kv_head.
/// @param kv_head K/V head.
/// @param chunk Chunk index (`< head_chunks(group, per_chunk)`).
/// @param group Query heads per K/V head.
/// @param per_chunk Most query heads per chunk.
/// @return First head `kv_head * group + chunk * per_chunk` and `min(per_chunk, group - chunk *
/// per_chunk)` heads.
KVKIT_HOST_DEVICE constexpr head_span head_chunk(std::uint32_t kv_head, std::uint32_t chunk,
                                                 std::uint32_t group,
                                                 std::uint32_t per_chunk) noexcept {
  const std::uint32_t done = chunk * per_chunk;
  const std::uint32_t left = group > done ? group - done : 0;
  return {kv_head * group + done, left < per_chunk ? left : per_chunk};
}

/// @brief A packed row of prefill: one (query token, query head) pair of a GQA group.
struct packed_row {
  std::uint32_t query = 0;    ///< Query index within its sequence's new tokens.
  std::uint32_t qo_head = 0;  ///< Query head.
};

/// @brief Unpacks row @p row of K/V head @p kv_head: rows enumerate (query, head of the group)
/// with the head fastest, so all heads of the group share each K/V tile.
/// @param row Packed row (`< num_queries * group`).
/// @param kv_head K/V head.
/// @param group Query heads per K/V head.
/// @return `{row / group, kv_head * group + row % group}`.
KVKIT_HOST_DEVICE constexpr packed_row unpack_row(std::uint32_t row, std::uint32_t kv_head,
                                                  std::uint32_t group) noexcept {
  return {row / group, kv_head * group + row % group};
}

/// @brief Index of the `[tokens][num_qo_heads]` row of query token @p token (counted over the
/// whole batch) and head @p qo_head; multiply by `head_dim` for an element offset into q or o,
/// or use as is for an LSE entry.
/// @param token Query token in the batch (`qo_indptr[b] + i`).
/// @param qo_head Query head.
/// @param num_qo_heads Query heads.
/// @return `token * num_qo_heads + qo_head`, in 64-bit arithmetic.
KVKIT_HOST_DEVICE constexpr std::uint64_t qo_row(std::uint32_t token, std::uint32_t qo_head,
                                                 std::uint32_t num_qo_heads) noexcept {
  return std::uint64_t{token} * num_qo_heads + qo_head;
}

// ---- causal limit of a query that follows a cached prefix -----------------------------------

/// @brief Position in the sequence of new query @p i when the @p num_queries new tokens are the
/// last tokens of a sequence of @p kv_len tokens (a cached prefix, then the new tokens).
/// @param kv_len Tokens of the sequence, new tokens included.
/// @param num_queries New tokens (`<= kv_len`).
/// @param i Query index (`< num_queries`).
/// @return `kv_len - num_queries + i`.
KVKIT_HOST_DEVICE constexpr std::uint32_t query_position(std::uint32_t kv_len,
                                                         std::uint32_t num_queries,
                                                         std::uint32_t i) noexcept {
  return kv_len - num_queries + i;
}

/// @brief Exclusive limit of the keys new query @p i may attend to: with @p causal the keys up
/// to and including its own position (the mask aligned bottom-right), otherwise all @p kv_len.
/// @param kv_len Tokens of the sequence, new tokens included.
/// @param num_queries New tokens.
/// @param i Query index.
/// @param causal Whether the mask is causal.
/// @return `min(kv_len, query_position() + 1)` with @p causal, else `kv_len`; 0 when the inputs
/// are inconsistent (`kv_len + i + 1 <= num_queries`), never a wrapped value.
KVKIT_HOST_DEVICE constexpr std::uint32_t key_limit(std::uint32_t kv_len, std::uint32_t num_queries,
                                                    std::uint32_t i, bool causal) noexcept {
  if (!causal)
    return kv_len;
  const std::uint64_t reach = std::uint64_t{kv_len} + i + 1;
  if (reach <= num_queries)
    return 0;
  const std::uint64_t limit = reach - num_queries;
  return limit < kv_len ? static_cast<std::uint32_t>(limit) : kv_len;
}

}  // namespace kvkit
