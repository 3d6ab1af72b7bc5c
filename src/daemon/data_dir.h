// The daemon's data directory: creating it with safe modes, and the lock that
// keeps a second daemon off it. A held lock tells who holds it.
#pragma once

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace hv::daemon {

// mkdir -p, and mode 0711 on the data dir itself (others may reach
// api.sock, not list the dir).
Status prepareDataDir(const std::string& dir);

// flock(2) on DIR/hostvisor.lock, holding our pid; kConflict naming the
// holder's pid if another daemon has it. Released when the fd closes.
Result<UniqueFd> lockDataDir(const std::string& dir);

}  // namespace hv::daemon
