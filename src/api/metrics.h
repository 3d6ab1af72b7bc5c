// Prometheus text exposition (format 0.0.4) of the supervisor's state.
// Pure; reads only the snapshot it is given.
#pragma once

#include <string>
#include <vector>

#include "supervisor/supervisor.h"

namespace hv::api {

std::string renderMetrics(const std::vector<supervisor::InstanceStatus>& instances);

}  // namespace hv::api
