// Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
// The replay engine's combinations with the session matcher (see engine_matcher.hpp).
#include "engine_matcher.hpp"

namespace kvkit::replay::detail {
template result<replay_result> replay_with_matcher<session_matcher>(const trace&,
                                                                    const replay_options&,
                                                                    std::string_view,
                                                                    std::string_view);
}  // namespace kvkit::replay::detail
