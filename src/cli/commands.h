// The client commands of `hostvisor` (create, ls, status, start, stop,
// restart, rm, logs, shutdown), registered on the binary's CLI11 app. Each
// talks to the daemon's unix socket and sets the process exit code:
// 0 success, 1 the daemon refused (its message on stderr), 2 bad usage,
// 3 the daemon cannot be reached.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace hv::cli {

struct GlobalOptions {
  std::string dataDir;  // "" = defaultDataDir()
};

void addClientCommands(CLI::App& app, const GlobalOptions& global, int* exitCode);

}  // namespace hv::cli
