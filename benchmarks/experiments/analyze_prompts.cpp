// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// kvkit-analyze-prompts: tells where a set of prompts stops sharing prefixes, how much of it a
// prefix cache would reuse (the predicted prefill saving), and why not more: e.g. a timestamp at
// the top of an otherwise static system prompt. See include/kvkit/prompt_analysis.hpp.
//
//   kvkit-analyze-prompts prompts.jsonl                    # text report, block size 16
//   kvkit-analyze-prompts prompts.jsonl --block-size 32 --top 20
//   some-tokenizer ... | kvkit-analyze-prompts - --json    # JSON report of stdin
//
// Input: JSON lines, one prompt a line, in arrival order: an array of token ids `[1, 2, 3]`, or
// an object with "tokens" (or "prompt_token_ids") and an optional "id" (string or integer).
// Blank lines are skipped. Exit status: 0 on success, 2 on bad input or options (the message
// names file:line and the problem).
#include <kvkit/prompt_analysis.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace {

constexpr const char* tool = "kvkit-analyze-prompts";

/// One prompt read from the input.
struct input_prompt {
  std::vector<kvkit::token_id> tokens;
  std::string id;        // empty when the line gave none
  std::size_t line = 0;  // 1-based line number
};

/// Reads the token array @p arr named @p key; returns a message on failure.
std::optional<std::string> read_tokens(const nlohmann::json& arr, const std::string& key,
                                       std::vector<kvkit::token_id>* out) {
  if (!arr.is_array())
    return key + " must be an array of token ids, got " + arr.type_name();
  constexpr auto max_token = static_cast<std::int64_t>(std::numeric_limits<kvkit::token_id>::max());
  out->reserve(arr.size());
  std::size_t i = 0;
  for (const auto& v : arr) {
    const std::string at = key + "[" + std::to_string(i) + "]";
    if (!v.is_number_integer())
      return at + " must be an integer token id, got " + v.dump();
    const bool in_range = v.is_number_unsigned()
                              ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(max_token)
                              : v.get<std::int64_t>() >= 0 && v.get<std::int64_t>() <= max_token;
    if (!in_range)
      return at + " = " + v.dump() + " is outside [0, " + std::to_string(max_token) + "]";
    out->push_back(static_cast<kvkit::token_id>(v.get<std::int64_t>()));
    ++i;
  }
  if (out->empty())
    return key + " is empty; a prompt needs at least one token";
  return std::nullopt;
}

/// Parses one non-blank line; returns a message naming the problem on failure.
std::optional<std::string> parse_line(const std::string& text, input_prompt* p) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded())
    return std::string("malformed JSON");
  if (j.is_array())
    return read_tokens(j, "array", &p->tokens);
  if (!j.is_object()) {
    return std::string("expected an array of token ids or an object with \"tokens\", got ") +
           j.type_name();
  }
  const char* key = j.contains("tokens")             ? "tokens"
                    : j.contains("prompt_token_ids") ? "prompt_token_ids"
                                                     : nullptr;
  if (key == nullptr)
    return std::string("missing field \"tokens\" (or \"prompt_token_ids\")");
  if (auto e = read_tokens(j.at(key), key, &p->tokens))
    return e;
  if (auto id = j.find("id"); id != j.end() && !id->is_null()) {
    if (id->is_string())
      p->id = id->get<std::string>();
    else if (id->is_number_integer())
      p->id = id->dump();
    else
      return std::string("id must be a string or an integer, got ") + id->type_name();
  }
  return std::nullopt;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string pad(const std::string& s, std::size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

std::string opt_index(const std::optional<std::size_t>& v) {
  return v ? std::to_string(*v) : std::string("-");
}

nlohmann::json json_index(const std::optional<std::size_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

void print_text(const std::string& source, const std::vector<input_prompt>& in,
                const kvkit::prompt_set_analysis& a, std::size_t top) {
  const std::size_t n = a.prompts.size();
  std::cout << tool << ": " << source << ", " << n << " prompts, block size " << a.block_size
            << "\n\nSummary\n"
            << "  prompts                        " << n << "\n"
            << "  total tokens                   " << a.total_tokens << "\n"
            << "  cacheable tokens               " << a.cacheable_tokens << " ("
            << fixed(100.0 * a.cacheable_fraction, 1) << "% of all: the predicted prefill saving)\n"
            << "  prompts without a cache hit    " << a.prompts_without_hit << "\n"
            << "  prefix common to all prompts   " << a.common_prefix_tokens << " tokens\n"
            << "  distinct blocks (working set)  " << a.distinct_blocks << "\n";

  const std::size_t groups = std::min(top, a.groups.size());
  std::cout << "\nPrefix groups (prompts sharing a prefix of at least one block, by tokens saved): "
            << a.groups.size()
            << (groups < a.groups.size() ? ", first " + std::to_string(groups) : std::string())
            << "\n";
  if (groups > 0) {
    std::cout << "  " << pad("shared_tokens", 15) << pad("prompts", 9) << pad("first_prompt", 14)
              << "saved_tokens\n";
  }
  for (std::size_t g = 0; g < groups; ++g) {
    const kvkit::prefix_group& x = a.groups[g];
    std::cout << "  " << pad(std::to_string(x.shared_tokens), 15)
              << pad(std::to_string(x.prompts), 9) << pad(std::to_string(x.first_prompt), 14)
              << x.saved_tokens << "\n";
  }

  const std::size_t rows = std::min(top, n);
  std::cout << "\nPrompts (in input order): " << n
            << (rows < n ? ", first " + std::to_string(rows) : std::string()) << "\n"
            << "  " << pad("prompt", 8) << pad("line", 6) << pad("id", 12) << pad("tokens", 8)
            << pad("first_divergence", 18) << pad("cacheable", 11) << pad("best_match", 12)
            << "positional_match\n";
  for (std::size_t i = 0; i < rows; ++i) {
    const kvkit::prompt_report& r = a.prompts[i];
    std::cout << "  " << pad(std::to_string(i), 8) << pad(std::to_string(in[i].line), 6)
              << pad(in[i].id.empty() ? "-" : in[i].id, 12)
              << pad(std::to_string(r.prompt_tokens), 8)
              << pad(std::to_string(r.first_divergence), 18)
              << pad(std::to_string(r.cacheable_tokens), 11) << pad(opt_index(r.best_match), 12)
              << (r.positional_match
                      ? opt_index(r.positional_match) + " (" +
                            std::to_string(r.positional_agreement) + " equal positions)"
                      : std::string("-"))
              << "\n";
  }

  std::cout << "\nFindings: " << (a.findings.empty() ? "none" : std::to_string(a.findings.size()))
            << "\n";
  for (const kvkit::finding& f : a.findings) {
    std::cout << "  [" << kvkit::to_string(f.kind) << "] " << f.message << "\n";
  }
}

void print_json(const std::string& source, const std::vector<input_prompt>& in,
                const kvkit::prompt_set_analysis& a, std::size_t top) {
  nlohmann::ordered_json j;
  j["source"] = source;
  j["block_size"] = a.block_size;
  j["prompt_count"] = a.prompts.size();
  j["total_tokens"] = a.total_tokens;
  j["cacheable_tokens"] = a.cacheable_tokens;
  j["cacheable_fraction"] = a.cacheable_fraction;
  j["prompts_without_hit"] = a.prompts_without_hit;
  j["common_prefix_tokens"] = a.common_prefix_tokens;
  j["distinct_blocks"] = a.distinct_blocks;
  j["groups_total"] = a.groups.size();
  j["groups"] = nlohmann::ordered_json::array();
  for (std::size_t g = 0; g < std::min(top, a.groups.size()); ++g) {
    const kvkit::prefix_group& x = a.groups[g];
    j["groups"].push_back({{"shared_tokens", x.shared_tokens},
                           {"prompts", x.prompts},
                           {"first_prompt", x.first_prompt},
                           {"saved_tokens", x.saved_tokens}});
  }
  j["prompt_reports"] = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < std::min(top, a.prompts.size()); ++i) {
    const kvkit::prompt_report& r = a.prompts[i];
    j["prompt_reports"].push_back({{"prompt", i},
                                   {"line", in[i].line},
                                   {"id", in[i].id.empty() ? nlohmann::ordered_json(nullptr)
                                                           : nlohmann::ordered_json(in[i].id)},
                                   {"prompt_tokens", r.prompt_tokens},
                                   {"first_divergence", r.first_divergence},
                                   {"cacheable_tokens", r.cacheable_tokens},
                                   {"best_match", json_index(r.best_match)},
                                   {"longest_shared_prefix", r.longest_shared_prefix},
                                   {"positional_match", json_index(r.positional_match)},
                                   {"positional_agreement", r.positional_agreement}});
  }
  j["findings"] = nlohmann::ordered_json::array();
  for (const kvkit::finding& f : a.findings) {
    j["findings"].push_back(
        {{"kind", kvkit::to_string(f.kind)}, {"message", f.message}, {"prompts", f.prompts}});
  }
  std::cout << j.dump(2) << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "kvkit-analyze-prompts: where a set of prompts stops sharing prefixes, how much of it a "
      "prefix cache with unlimited capacity reuses when the prompts arrive in the given order "
      "(the predicted prefill saving), and what limits reuse (e.g. a timestamp at the top of a "
      "static system prompt)."};
  std::string path;
  std::int64_t block_size = 16;
  bool json = false;
  std::int64_t top_arg = 10;
  app.add_option("prompts", path,
                 "JSON lines, one prompt a line: [1,2,3] or {\"id\": ..., \"tokens\": [...]} "
                 "(also \"prompt_token_ids\"); '-' reads stdin")
      ->required();
  app.add_option("--block-size", block_size, "Tokens per cache block (a power of two)")
      ->capture_default_str();
  app.add_flag("--json", json, "Machine-readable output (JSON)");
  app.add_option("--top", top_arg, "Prefix groups and per-prompt rows to print (0: all)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; bad options: 2, like bad input
  }
  if (block_size <= 0 || block_size > (std::int64_t{1} << 31) ||
      (block_size & (block_size - 1)) != 0) {
    std::cerr << tool << ": --block-size must be a power of two >= 1 (1, 2, 4, 8, 16, ...), got "
              << block_size << "\n";
    return 2;
  }
  if (top_arg < 0) {
    std::cerr << tool << ": --top must be >= 0 (0: all), got " << top_arg << "\n";
    return 2;
  }
  const std::size_t top =
      top_arg == 0 ? std::numeric_limits<std::size_t>::max() : static_cast<std::size_t>(top_arg);

  const std::string source = path == "-" ? std::string("<stdin>") : path;
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) {
      std::cerr << tool << ": cannot open " << path << "\n";
      return 2;
    }
  }
  std::istream& input = path == "-" ? std::cin : file;

  std::vector<input_prompt> prompts;
  std::string line;
  std::size_t number = 0;
  while (std::getline(input, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    input_prompt p;
    p.line = number;
    if (auto e = parse_line(line, &p)) {
      std::cerr << tool << ": " << source << ":" << number << ": " << *e << "\n";
      return 2;
    }
    prompts.push_back(std::move(p));
  }
  if (prompts.empty()) {
    std::cerr << tool << ": " << source << " holds no prompt (one JSON line per prompt)\n";
    return 2;
  }

  std::vector<std::vector<kvkit::token_id>> tokens;
  tokens.reserve(prompts.size());
  for (input_prompt& p : prompts)
    tokens.push_back(std::move(p.tokens));
  auto analysis = kvkit::analyze_prompts(tokens, static_cast<std::uint32_t>(block_size));
  if (!analysis.ok()) {
    std::cerr << tool << ": " << analysis.error().message() << "\n";
    return 2;
  }
  if (json)
    print_json(source, prompts, *analysis, top);
  else
    print_text(source, prompts, *analysis, top);
  return 0;
}
