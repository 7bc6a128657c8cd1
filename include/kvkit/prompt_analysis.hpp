// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Prompt-set analysis: how much of a set of prompts a prefix cache can reuse, where the
/// prompts stop sharing, and why (e.g. a timestamp at the top of an otherwise static prompt).
///
/// The prompts are taken in the given order, as a prefix cache with unlimited capacity sees them
/// when they arrive one after the other (each admitted, prefilled, committed and finished before
/// the next). The numbers are those of `kvkit::prefix_cache` with a matcher that reuses whole
/// blocks only (`hash_matcher`): see @ref kvkit::prompt_report::cacheable_tokens. Matchers that
/// also reuse part of a block (`radix_matcher`, `session_matcher`) can serve a few more tokens.
#pragma once

#include <kvkit/error.hpp>
#include <kvkit/types.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvkit {

/// @brief What a prompt-set analysis found out about one prompt.
struct prompt_report {
  /// @brief Tokens in the prompt.
  std::size_t prompt_tokens = 0;
  /// @brief Length of the longest common prefix of this prompt with any earlier prompt (0 for
  /// the first prompt): the position of the first token no earlier prompt has at this place.
  /// Equals @ref prompt_tokens when the prompt repeats an earlier one or is a prefix of one.
  std::size_t first_divergence = 0;
  /// @brief Leading tokens a prefix cache holding every earlier prompt serves from the cache:
  /// `block_size * min(floor(first_divergence / block_size), floor((prompt_tokens - 1) /
  /// block_size))`.
  ///
  /// The cache reuses whole blocks only, and never the block holding the last prompt token, so
  /// that at least one token is computed (its logits start the decode): a prompt repeated
  /// exactly gets `prompt_tokens - 1` rounded down to whole blocks, and a prompt of at most
  /// `block_size` tokens never gets a hit. This equals `admission::request.cached_tokens` of
  /// `kvkit::prefix_cache` with `hash_matcher` (no partial-block reuse).
  std::size_t cacheable_tokens = 0;
  /// @brief The earliest earlier prompt that shares @ref first_divergence tokens with this one;
  /// empty for the first prompt and when @ref first_divergence is 0.
  std::optional<std::size_t> best_match{};
  /// @brief Length of the longest common prefix of this prompt with any other prompt, earlier
  /// or later.
  std::size_t longest_shared_prefix = 0;
  /// @brief An earlier prompt that this one matches position by position after its first
  /// divergence (the finding `finding_kind::dynamic_prefix`); empty when that finding does not
  /// concern this prompt.
  std::optional<std::size_t> positional_match{};
  /// @brief When @ref positional_match is set, the positions `p >= first_divergence` (below both
  /// lengths) where this prompt and @ref positional_match hold the same token; 0 otherwise.
  std::size_t positional_agreement = 0;
};

/// @brief Prompts that share a prefix: a branching point of the prompt set's token trie.
///
/// Every member starts with the same @ref shared_tokens tokens, no other prompt does, and the
/// members do not all share one token more (two of them differ there, or one ends there). Groups
/// nest: a group's members may form smaller groups with longer prefixes.
struct prefix_group {
  std::size_t shared_tokens = 0;  ///< Length of the shared prefix (at least one block).
  std::size_t prompts = 0;        ///< Prompts that start with it (at least 2).
  std::size_t first_prompt =
      0;  ///< Index of the first prompt, in input order, that starts with it.
  /// @brief Tokens the group saves when its prefix is cached once: @ref shared_tokens rounded
  /// down to whole blocks, times `prompts - 1`. The savings of nested groups overlap: do not add
  /// them up (prompt_set_analysis::cacheable_tokens is the set's total).
  std::size_t saved_tokens = 0;
};

/// @brief Kinds of @ref kvkit::finding.
enum class finding_kind : std::uint8_t {
  /// @brief Varying content near the top of otherwise matching prompts (a timestamp, session or
  /// request id at the top of a static system prompt).
  ///
  /// Concerns prompt `i > 0` with first divergence `d` near its top (`d < block_size` or
  /// `10 * d < prompt_tokens`) when an earlier prompt `j` matches it position by position after
  /// `d`: over the positions `[d, m)`, `m = min(len(i), len(j)) > d`, the two hold the same token
  /// at least at half of them, and at a run of at least `block_size` consecutive ones. `j` is
  /// sought among prompt `i`'s best match, prompt `i - 1`, and the (at most 4) earlier prompts
  /// that hold most of prompt `i`'s whole blocks after `d` at the same block positions (for each
  /// block, the first prompt that held it); the one with most equal positions is reported.
  dynamic_prefix,
  /// @brief Prompts of more than one block that share less than one block of prefix with every
  /// other prompt (unique documents), except prompts concerned by `dynamic_prefix`.
  no_reuse,
  /// @brief The shared prefixes are short: among prompts `i > 0` not concerned by
  /// `dynamic_prefix`, the longest first divergence `S` is between 1 and 256 tokens and less than
  /// half the mean prompt length. When `S < block_size` (nothing cacheable), only if at least
  /// half of those prompts diverge at exactly `S` (a common header, not a chance match).
  short_shared_prefix,
  /// @brief Prompts of at most `block_size` tokens: they never get a hit.
  short_prompts,
  /// @brief Many distinct prefixes, each reused little: with some reuse, the block hits are
  /// fewer than half the distinct blocks (prompt_set_analysis::distinct_blocks); needs at least
  /// 4 prompts.
  low_reuse,
};

/// @brief Name of a finding kind, e.g. "dynamic_prefix".
/// @param k The kind.
/// @return A static string.
constexpr std::string_view to_string(finding_kind k) noexcept {
  switch (k) {
    case finding_kind::dynamic_prefix:
      return "dynamic_prefix";
    case finding_kind::no_reuse:
      return "no_reuse";
    case finding_kind::short_shared_prefix:
      return "short_shared_prefix";
    case finding_kind::short_prompts:
      return "short_prompts";
    case finding_kind::low_reuse:
      return "low_reuse";
  }
  return "unknown";
}

/// @brief Something in the prompt set that limits prefix reuse, explained.
struct finding {
  finding_kind kind = finding_kind::no_reuse;  ///< What was found.
  std::string message;                         ///< Explanation naming positions and counts.
  std::vector<std::size_t> prompts;            ///< Indices of the prompts concerned, ascending.
};

/// @brief Result of @ref analyze_prompts.
struct prompt_set_analysis {
  std::uint32_t block_size = 16;       ///< Tokens per cache block the analysis assumed.
  std::vector<prompt_report> prompts;  ///< One report per prompt, in input order.
  std::uint64_t total_tokens = 0;      ///< Sum of the prompts' lengths.
  std::uint64_t cacheable_tokens = 0;  ///< Sum of prompt_report::cacheable_tokens.
  /// @brief `cacheable_tokens / total_tokens`: the fraction of prefill a prefix cache saves
  /// (with prefill cost proportional to computed tokens: `P / (P + S)` for `P` cached and `S`
  /// computed tokens).
  double cacheable_fraction = 0.0;
  std::size_t prompts_without_hit = 0;   ///< Prompts whose cacheable_tokens is 0 (the first too).
  std::size_t common_prefix_tokens = 0;  ///< Longest prefix common to all prompts.
  /// @brief Distinct whole blocks (block-aligned prefixes) of all prompts: the blocks a cache
  /// holds after all prompts when nothing is evicted (its working set).
  std::uint64_t distinct_blocks = 0;
  /// @brief Prompts sharing a prefix of at least one block, by saved tokens (most first), then
  /// longer prefix, then earlier first prompt.
  std::vector<prefix_group> groups;
  std::vector<finding> findings;  ///< What limits reuse, in the order of @ref finding_kind.
};

namespace detail {

/// Radix trie of the prompts, built in input order. Node 0 is the root. A node's edge label is
/// tokens [parent depth, depth) of the node's first prompt (the earliest through it).
class prompt_trie {
 public:
  struct node {
    std::size_t depth = 0;
    std::uint32_t parent = 0;
    std::uint32_t first = 0;
    std::uint32_t count = 0;
  };
  struct insertion {
    std::size_t divergence = 0;
    std::optional<std::size_t> best;
    std::uint32_t end = 0;
  };

  explicit prompt_trie(std::span<const std::vector<token_id>> prompts) : prompts_(prompts) {
    nodes_.push_back(node{});
  }

  insertion insert(std::uint32_t i) {
    const std::vector<token_id>& t = prompts_[i];
    const std::size_t len = t.size();
    std::uint32_t at = 0;
    std::size_t pos = 0;
    ++nodes_[0].count;
    while (pos < len) {
      const auto it = children_.find(key(at, t[pos]));
      if (it == children_.end()) {
        const std::uint32_t leaf = add(node{len, at, i, 1});
        children_.emplace(key(at, t[pos]), leaf);
        return {pos, pos > 0 ? std::optional<std::size_t>(nodes_[at].first) : std::nullopt, leaf};
      }
      const std::uint32_t c = it->second;
      const std::vector<token_id>& label = prompts_[nodes_[c].first];
      const std::size_t end = nodes_[c].depth;
      std::size_t k = pos + 1;  // the first token matched (it is the child's key)
      while (k < end && k < len && label[k] == t[k])
        ++k;
      if (k == end) {
        ++nodes_[c].count;
        at = c;
        pos = k;
        continue;
      }
      // Diverges (or ends) inside the edge: split it at k.
      const std::uint32_t mid = add(node{k, at, nodes_[c].first, nodes_[c].count + 1});
      it->second = mid;
      nodes_[c].parent = mid;
      children_.emplace(key(mid, label[k]), c);
      std::uint32_t last = mid;
      if (k < len) {
        last = add(node{len, mid, i, 1});
        children_.emplace(key(mid, t[k]), last);
      }
      return {k, nodes_[c].first, last};
    }
    return {len, nodes_[at].first, at};
  }

  [[nodiscard]] const std::vector<node>& nodes() const noexcept { return nodes_; }

  /// Length of the longest prefix the prompt ending at node @p end shares with another prompt.
  [[nodiscard]] std::size_t shared_depth(std::uint32_t end) const noexcept {
    while (end != 0 && nodes_[end].count < 2)
      end = nodes_[end].parent;
    return nodes_[end].count >= 2 ? nodes_[end].depth : 0;
  }

 private:
  static std::uint64_t key(std::uint32_t n, token_id t) noexcept {
    return (std::uint64_t{n} << 32) | static_cast<std::uint32_t>(t);
  }
  std::uint32_t add(const node& n) {
    nodes_.push_back(n);
    return static_cast<std::uint32_t>(nodes_.size() - 1);
  }

  std::span<const std::vector<token_id>> prompts_;
  std::vector<node> nodes_;
  std::unordered_map<std::uint64_t, std::uint32_t> children_;
};

inline std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

/// Hash of block @p k of a prompt (its tokens and its position).
inline std::uint64_t block_key(std::size_t k, std::span<const token_id> tokens) noexcept {
  std::uint64_t h = mix64(0x6B766B6974ull + k);
  for (const token_id t : tokens)
    h = mix64(h ^ static_cast<std::uint32_t>(t));
  return h;
}

/// Position-by-position comparison of two prompts over [from, min(len a, len b)).
struct positional_agreement {
  std::size_t first_difference = 0;  // length of the common prefix of the two
  std::size_t span = 0;              // positions compared
  std::size_t agree = 0;             // positions holding the same token
  std::size_t run_start = 0;         // longest run of consecutive equal positions (the first one)
  std::size_t run_length = 0;
};

inline positional_agreement compare_positions(std::span<const token_id> a,
                                              std::span<const token_id> b, std::size_t from) {
  positional_agreement r;
  const std::size_t m = std::min(a.size(), b.size());
  if (m <= from)
    return r;
  r.span = m - from;
  while (r.first_difference < m && a[r.first_difference] == b[r.first_difference])
    ++r.first_difference;
  std::size_t run = 0;
  for (std::size_t p = from; p < m; ++p) {
    if (a[p] == b[p]) {
      ++r.agree;
      ++run;
      if (run > r.run_length) {
        r.run_length = run;
        r.run_start = p + 1 - run;
      }
    } else {
      run = 0;
    }
  }
  return r;
}

inline std::string percent(double num, double den) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", den > 0 ? 100.0 * num / den : 0.0);
  return buf;
}

inline std::string count_of(std::size_t k, std::size_t n, const char* what) {
  return std::to_string(k) + " of " + std::to_string(n) + " " + what;
}

inline std::string example_list(const std::vector<std::size_t>& prompts) {
  std::string s;
  const std::size_t shown = std::min<std::size_t>(prompts.size(), 8);
  for (std::size_t k = 0; k < shown; ++k)
    s += (k ? ", " : "") + std::to_string(prompts[k]);
  if (shown < prompts.size())
    s += ", ... (" + std::to_string(prompts.size() - shown) + " more)";
  return s;
}

/// Findings of an analysis whose prompts and totals are filled in (see finding_kind).
inline void add_findings(const std::vector<std::size_t>& dynamic,
                         const std::vector<positional_agreement>& agreement,
                         prompt_set_analysis& a) {
  const std::size_t n = a.prompts.size();
  const std::size_t bs = a.block_size;
  const auto& rep = a.prompts;

  // (a) dynamic content near the top
  std::vector<bool> in_dynamic(n, false);
  if (!dynamic.empty()) {
    for (const std::size_t i : dynamic) {
      in_dynamic[i] = true;
      in_dynamic[*rep[i].positional_match] = true;
    }
    const std::size_t i = dynamic.front();
    const prompt_report& r = rep[i];
    const positional_agreement& g = agreement[i];
    const std::size_t d = r.first_divergence;
    const std::size_t j = *r.positional_match;
    std::string m =
        "dynamic content near the top: " + count_of(dynamic.size(), n, "prompts") +
        " diverge from every earlier prompt near their top (before one block of " +
        std::to_string(bs) +
        " tokens or 10% of their length) but match an earlier prompt position by position after "
        "that point (prompts " +
        example_list(dynamic) + "). Prompt " + std::to_string(i) + " shares only its first " +
        std::to_string(d) + " tokens with any earlier prompt (first divergence at token " +
        std::to_string(d) + "), yet holds the same token as prompt " + std::to_string(j) + " at " +
        std::to_string(g.agree) + " of the " + std::to_string(g.span) + " positions from token " +
        std::to_string(d) + " on, " + std::to_string(g.run_length) + " of them in a row (tokens " +
        std::to_string(g.run_start) + " to " + std::to_string(g.run_start + g.run_length - 1) +
        "). The two first differ at token " + std::to_string(g.first_difference) +
        (g.run_start - 1 == g.first_difference
             ? "; the varying part is token " + std::to_string(g.first_difference)
             : "; the varying part lies within tokens " + std::to_string(g.first_difference) +
                   " to " + std::to_string(g.run_start - 1)) +
        ". A varying field (timestamp, date, session or request id) at the top of an otherwise "
        "static prompt ends prefix reuse there: move it after the static part.";
    a.findings.push_back({finding_kind::dynamic_prefix, std::move(m), dynamic});
  }

  // (b) no reuse
  {
    std::vector<std::size_t> unique;
    std::uint64_t tokens = 0;
    for (std::size_t i = 0; i < n && n >= 2; ++i) {
      if (rep[i].prompt_tokens > bs && rep[i].longest_shared_prefix < bs && !in_dynamic[i]) {
        unique.push_back(i);
        tokens += rep[i].prompt_tokens;
      }
    }
    if (!unique.empty()) {
      const std::size_t i = unique.front();
      std::string m =
          "no reuse: " + count_of(unique.size(), n, "prompts") + " share less than one block (" +
          std::to_string(bs) + " tokens) of prefix with every other prompt (prompts " +
          example_list(unique) + "; prompt " + std::to_string(i) + " shares " +
          std::to_string(rep[i].longest_shared_prefix) + " of its " +
          std::to_string(rep[i].prompt_tokens) + " tokens): none of their " +
          std::to_string(tokens) + " tokens (" +
          percent(static_cast<double>(tokens), static_cast<double>(a.total_tokens)) +
          " of all) can be reused. Unique documents gain nothing from a prefix cache unless they "
          "recur; put content shared by several prompts (instructions, examples) before them.";
      a.findings.push_back({finding_kind::no_reuse, std::move(m), std::move(unique)});
    }
  }

  // (c) short shared prefix
  {
    std::size_t longest = 0;
    std::size_t considered = 0;
    for (std::size_t i = 1; i < n; ++i) {
      if (rep[i].positional_match)
        continue;
      ++considered;
      longest = std::max(longest, rep[i].first_divergence);
    }
    std::vector<std::size_t> at;
    for (std::size_t i = 1; i < n; ++i) {
      if (!rep[i].positional_match && rep[i].first_divergence == longest)
        at.push_back(i);
    }
    const double mean = static_cast<double>(a.total_tokens) / static_cast<double>(n);
    // Below one block, only a header most prompts share counts (not a chance match of a token).
    const bool common_header = longest >= bs || 2 * at.size() >= considered;
    if (considered > 0 && longest >= 1 && longest <= 256 &&
        2.0 * static_cast<double>(longest) < mean && common_header) {
      std::string m =
          "short shared prefix: the longest prefix any prompt shares with an earlier "
          "one is " +
          std::to_string(longest) + " tokens (prompts " + example_list(at) + "), ";
      if (longest < bs) {
        m += "less than one block (" + std::to_string(bs) +
             " tokens): a prefix cache reuses whole blocks only, so nothing is cacheable (a block "
             "size of " +
             std::to_string(std::bit_floor(longest)) +
             " would reuse some). Put more static content (instructions, examples, tool "
             "definitions) at the front, before anything that varies.";
      } else {
        const std::size_t cached = longest / bs * bs;
        m += "of which " + std::to_string(cached) + " (" + std::to_string(longest / bs) +
             " whole blocks) are cacheable, against " + std::to_string(a.total_tokens / n) +
             " tokens per prompt on average: a prefix cache saves at most " +
             percent(static_cast<double>(cached), mean) +
             " of an average prompt's prefill. Put more static content (instructions, examples, "
             "tool definitions) at the front, before anything that varies.";
      }
      a.findings.push_back({finding_kind::short_shared_prefix, std::move(m), std::move(at)});
    }
  }

  // (d) short prompts
  {
    std::vector<std::size_t> shorts;
    for (std::size_t i = 0; i < n; ++i) {
      if (rep[i].prompt_tokens <= bs)
        shorts.push_back(i);
    }
    if (!shorts.empty()) {
      const std::size_t i = shorts.front();
      std::string m = "short prompts: " + count_of(shorts.size(), n, "prompts") +
                      " have at most one block (" + std::to_string(bs) + " tokens) (prompts " +
                      example_list(shorts) + "; prompt " + std::to_string(i) + " has " +
                      std::to_string(rep[i].prompt_tokens) +
                      "): they never get a hit, since the cache reuses whole blocks only and "
                      "always computes the last prompt token; a prompt needs at least " +
                      std::to_string(bs + 1) + " tokens to reuse one block.";
      a.findings.push_back({finding_kind::short_prompts, std::move(m), std::move(shorts)});
    }
  }

  // (e) many distinct prefixes with low reuse
  {
    const std::uint64_t hits = a.cacheable_tokens / bs;
    if (n >= 4 && hits > 0 && 2 * hits < a.distinct_blocks) {
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, "%.2f",
                    static_cast<double>(hits) / static_cast<double>(a.distinct_blocks));
      std::string m =
          "low reuse: the prompts hold " + std::to_string(a.distinct_blocks) +
          " distinct blocks (" + std::to_string(a.distinct_blocks * bs) + " tokens) but get only " +
          std::to_string(hits) + " block hits from them (" + ratio + " per distinct block, " +
          std::to_string(a.groups.size()) +
          " prefix groups): most cached blocks are never reused. A cache smaller than these " +
          std::to_string(a.distinct_blocks) +
          " blocks evicts blocks before their reuse and saves less than the predicted " +
          percent(static_cast<double>(a.cacheable_tokens), static_cast<double>(a.total_tokens)) +
          ".";
      a.findings.push_back({finding_kind::low_reuse, std::move(m), {}});
    }
  }
}

}  // namespace detail

/// @brief Analyzes a prompt set as a prefix cache with unlimited capacity would see it, the
/// prompts arriving one after the other in the given order: per prompt, where it first diverges
/// from every earlier prompt and how many of its tokens are served from the cache; totals; the
/// shared-prefix groups; and findings that explain lost reuse (see @ref finding_kind).
///
/// Runs in O(T + n log n) expected time and O(T / block_size + n) memory beyond the input, for
/// `n` prompts of `T` tokens in all. Changes nothing; a failed call returns only the error.
/// @param prompts The prompts' token ids (at least one prompt, none empty).
/// @param block_size Tokens per cache block: a power of two >= 1.
/// @return The analysis, or `errc::empty_input` (no prompt, or an empty prompt, named by its
/// index) / `errc::invalid_argument` (block size not a power of two, too many prompts), naming
/// the accepted values.
[[nodiscard]] inline result<prompt_set_analysis> analyze_prompts(
    std::span<const std::vector<token_id>> prompts, std::uint32_t block_size = 16) {
  if (block_size == 0 || !std::has_single_bit(block_size)) {
    return error{errc::invalid_argument,
                 "kvkit: analyze_prompts: block_size must be a power of two >= 1 (1, 2, 4, 8, 16, "
                 "...), got " +
                     std::to_string(block_size)};
  }
  if (prompts.empty()) {
    return error{errc::empty_input,
                 "kvkit: analyze_prompts: the prompt set is empty; pass at least one prompt"};
  }
  if (prompts.size() > 0x7FFFFFFFu) {
    return error{errc::invalid_argument,
                 "kvkit: analyze_prompts: " + std::to_string(prompts.size()) +
                     " prompts; accepted: at most 2147483647"};
  }
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) {
      return error{errc::empty_input, "kvkit: analyze_prompts: prompt " + std::to_string(i) +
                                          " is empty; every prompt needs at least one token"};
    }
  }

  const std::size_t n = prompts.size();
  const std::size_t bs = block_size;
  prompt_set_analysis a;
  a.block_size = block_size;
  a.prompts.resize(n);

  detail::prompt_trie trie(prompts);
  std::vector<std::uint32_t> ends(n);
  // Block (position, content) -> first prompt holding it there.
  std::unordered_map<std::uint64_t, std::uint32_t> first_holder;
  std::vector<std::size_t> dynamic;
  std::vector<detail::positional_agreement> agreement(n);
  std::unordered_map<std::uint32_t, std::size_t> votes;

  for (std::size_t i = 0; i < n; ++i) {
    const std::span<const token_id> t(prompts[i]);
    const std::size_t len = t.size();
    const auto ins = trie.insert(static_cast<std::uint32_t>(i));
    ends[i] = ins.end;
    prompt_report& r = a.prompts[i];
    r.prompt_tokens = len;
    r.first_divergence = ins.divergence;
    r.best_match = ins.best;
    r.cacheable_tokens = std::min(ins.divergence / bs, (len - 1) / bs) * bs;
    a.total_tokens += len;
    a.cacheable_tokens += r.cacheable_tokens;
    a.distinct_blocks += len / bs - ins.divergence / bs;
    if (r.cacheable_tokens == 0)
      ++a.prompts_without_hit;

    const std::size_t d = ins.divergence;
    if (i > 0 && (d < bs || 10 * d < len)) {
      // Candidates for a positional match: best match, previous prompt, most aligned blocks.
      votes.clear();
      for (std::size_t k = (d + bs - 1) / bs; (k + 1) * bs <= len; ++k) {
        const auto blk = t.subspan(k * bs, bs);
        const auto it = first_holder.find(detail::block_key(k, blk));
        if (it == first_holder.end())
          continue;
        const std::span<const token_id> other(prompts[it->second]);
        if (std::equal(blk.begin(), blk.end(), other.begin() + static_cast<std::ptrdiff_t>(k * bs)))
          ++votes[it->second];
      }
      std::vector<std::pair<std::size_t, std::size_t>> ranked;  // (votes, prompt)
      for (const auto& [j, v] : votes)
        ranked.emplace_back(v, j);
      std::sort(ranked.begin(), ranked.end(), [](const auto& x, const auto& y) {
        return x.first != y.first ? x.first > y.first : x.second < y.second;
      });
      std::vector<std::size_t> cands;
      for (std::size_t k = 0; k < ranked.size() && k < 4; ++k)
        cands.push_back(ranked[k].second);
      if (ins.best)
        cands.push_back(*ins.best);
      cands.push_back(i - 1);
      std::optional<std::size_t> best;
      detail::positional_agreement best_g;
      for (const std::size_t j : cands) {
        const auto g = detail::compare_positions(t, prompts[j], d);
        if (g.span == 0 || 2 * g.agree < g.span || g.run_length < bs)
          continue;
        if (!best || g.agree > best_g.agree || (g.agree == best_g.agree && j < *best)) {
          best = j;
          best_g = g;
        }
      }
      if (best) {
        r.positional_match = best;
        r.positional_agreement = best_g.agree;
        agreement[i] = best_g;
        dynamic.push_back(i);
      }
    }
    for (std::size_t k = 0; (k + 1) * bs <= len; ++k)
      first_holder.try_emplace(detail::block_key(k, t.subspan(k * bs, bs)),
                               static_cast<std::uint32_t>(i));
  }
  a.cacheable_fraction =
      static_cast<double>(a.cacheable_tokens) / static_cast<double>(a.total_tokens);

  for (std::size_t i = 0; i < n; ++i)
    a.prompts[i].longest_shared_prefix = trie.shared_depth(ends[i]);

  a.common_prefix_tokens = prompts[0].size();
  for (std::size_t i = 1; i < n; ++i) {
    const auto& p = prompts[i];
    const std::size_t lim = std::min(a.common_prefix_tokens, p.size());
    std::size_t k = 0;
    while (k < lim && p[k] == prompts[0][k])
      ++k;
    a.common_prefix_tokens = k;
  }

  for (std::size_t v = 1; v < trie.nodes().size(); ++v) {
    const auto& nd = trie.nodes()[v];
    if (nd.count >= 2 && nd.depth >= bs) {
      a.groups.push_back(prefix_group{nd.depth, nd.count, nd.first,
                                      nd.depth / bs * bs * (std::size_t{nd.count} - 1)});
    }
  }
  std::sort(a.groups.begin(), a.groups.end(), [](const prefix_group& x, const prefix_group& y) {
    if (x.saved_tokens != y.saved_tokens)
      return x.saved_tokens > y.saved_tokens;
    if (x.shared_tokens != y.shared_tokens)
      return x.shared_tokens > y.shared_tokens;
    return x.first_prompt < y.first_prompt;
  });

  detail::add_findings(dynamic, agreement, a);
  return a;
}

}  // namespace kvkit
