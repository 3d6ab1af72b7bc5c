// Routes: the front proxy's route table derived from the instances. The
// supervisor and the proxy never include each other; the daemon maps one to
// the other here. Pure.
#pragma once

#include <chrono>
#include <vector>

#include "proxy/route.h"
#include "supervisor/supervisor.h"

namespace hv::daemon {

// Every instance with a route becomes one proxy route to 127.0.0.1:PORT:
// running → up, starting/backoff → starting (503, or held for `hold`),
// otherwise down (502). Instances whose route does not parse are skipped
// (validation refuses them at create).
std::vector<proxy::Route> routesFor(const std::vector<supervisor::InstanceStatus>& instances,
                                    std::chrono::milliseconds hold);

}  // namespace hv::daemon
