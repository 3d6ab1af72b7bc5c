// Logging setup. Modules log through spdlog's default logger; the daemon calls
// setupLogging() once at start, before any thread exists.
#pragma once

#include <string_view>

namespace hv {

// level: "trace", "debug", "info", "warn", "error". Unknown names mean "info".
void setupLogging(std::string_view level);

}  // namespace hv
