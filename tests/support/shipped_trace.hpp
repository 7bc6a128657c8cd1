// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The shipped Mooncake trace for the replay tests: where it is, what to say when it is missing,
// and its records as the tests' naive models read them (independently of the replay's parser).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace kvkit::test {

/// The trace's path: the environment variable KVKIT_REPLAY_TRACE when set, else the CMake cache
/// variable of that name (compiled in); "" when neither is there.
inline std::string shipped_trace_path() {
  if (const char* env = std::getenv("KVKIT_REPLAY_TRACE"); env != nullptr && *env != '\0')
    return env;
#ifdef KVKIT_REPLAY_TRACE
  return KVKIT_REPLAY_TRACE;
#else
  return "";
#endif
}

/// Why a test that needs the trace skips.
inline std::string shipped_trace_missing() {
  return "Mooncake trace not found at '" + shipped_trace_path() +
         "' (set KVKIT_REPLAY_TRACE or the CMake cache variable of that name)";
}

/// The trace's records, each made as Record{hash_ids, input_length, output_length} (blank lines
/// skipped); empty when the trace cannot be read.
template <class Record>
std::vector<Record> read_mooncake_records(const std::string& path) {
  std::vector<Record> out;
  std::ifstream in(path);
  if (path.empty() || !in)
    return out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back(Record{j.at("hash_ids").get<std::vector<std::int64_t>>(),
                         j.at("input_length").get<std::uint64_t>(),
                         j.value("output_length", std::uint64_t{0})});
  }
  return out;
}

}  // namespace kvkit::test
