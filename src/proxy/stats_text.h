// prometheusText: the proxy's counters (Proxy::stats()) as Prometheus text
// exposition (format 0.0.4), for the daemon's /metrics. Pure; any thread.
#pragma once

#include <string>

#include "proxy/proxy.h"

namespace hv::proxy {

std::string prometheusText(const Stats& stats);

}  // namespace hv::proxy
