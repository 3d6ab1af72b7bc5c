// Routes: the front proxy's route table derived from the instances. The
// supervisor and the proxy never include each other; the daemon maps one to
// the other here. Pure.
#pragma once

#include <chrono>
#include <vector>

#include "daemon/config.h"
#include "proxy/route.h"
#include "supervisor/supervisor.h"

namespace hv::daemon {

// Every static upstream of the config ([[proxy.upstreams]]) becomes one
// route to its servers (always "up": passive health ejects a dead one).
// Every instance with a route becomes one proxy route to 127.0.0.1:PORT:
// running → up, starting/backoff → starting (503, or held for `hold`),
// otherwise down (502). Instances whose route does not parse, or that take a
// route already taken (by a static upstream or an earlier instance), are
// skipped with an error in the log (validation refuses them at create).
// O((instances + statics) · log): it runs on every route-relevant change.
std::vector<proxy::Route> routesFor(const std::vector<supervisor::RouteView>& instances,
                                    std::chrono::milliseconds hold,
                                    const std::vector<Config::StaticUpstream>& statics = {});

// An error naming both when `route` is a static upstream's route ("instance
// chat has route '/api/', which is also the route of the [[proxy.upstreams]]
// 'x' at FILE:LINE:COL"); ok otherwise. Validation at create and update
// (SupervisorOptions::routeReserved).
Status checkStaticConflict(std::string_view instance, std::string_view route,
                           const std::vector<Config::StaticUpstream>& statics);

}  // namespace hv::daemon
