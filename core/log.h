// Logging setup: spdlog to stderr, one line per event, level from config.
#pragma once

#include <string>

namespace freshet {

// `level` is one of trace, debug, info, warn, error, off (validated by config).
void InitLogging(const std::string& level, const std::string& process_name);

}  // namespace freshet
