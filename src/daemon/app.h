// App: the composition root. Builds and wires everything for `hostvisor
// serve` — the data dir and its lock, the store, the accounts, the supervisor,
// the API listeners and the signal handling — then runs the control
// io_context on the calling thread until SIGTERM/SIGINT or an API shutdown.
#pragma once

#include "base/result.h"
#include "daemon/config.h"

namespace hv::daemon {

// Returns the process exit code; an Error if the daemon could not start.
Result<int> serve(const Config& config);

}  // namespace hv::daemon
