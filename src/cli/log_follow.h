// `hostvisor logs NAME -f`: prints the last lines, then new output as it is
// written, over the API's WebSocket log stream, until interrupted or the
// instance is deleted. Returns the process exit code.
#pragma once

#include <string>

#include "cli/api_client.h"

namespace hv::cli {

int followLogs(const ApiClient& client, const std::string& name, int lines);

}  // namespace hv::cli
