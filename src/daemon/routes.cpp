#include "daemon/routes.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "proxy/route_table.h"

namespace hv::daemon {
namespace {

proxy::Upstream::Health healthOf(supervisor::State state) {
  using supervisor::State;
  switch (state) {
    case State::kRunning: return proxy::Upstream::Health::kUp;
    case State::kStarting:
    case State::kBackoff: return proxy::Upstream::Health::kStarting;
    default: return proxy::Upstream::Health::kDown;
  }
}

}  // namespace

std::vector<proxy::Route> routesFor(const std::vector<supervisor::InstanceStatus>& instances,
                                    std::chrono::milliseconds hold) {
  std::vector<proxy::Route> routes;
  std::vector<std::string> seen;
  for (const auto& s : instances) {
    if (s.spec.route.empty()) continue;
    auto spec = proxy::parseRouteSpec(s.spec.route);
    if (!spec) {
      spdlog::warn("instance {}: route '{}' skipped: {}", s.spec.name, s.spec.route, spec.error().message);
      continue;
    }
    // Validation keeps routes unique; should two still collide, the proxy
    // would refuse the whole table, so the later one is dropped instead.
    const std::string key = spec->first + spec->second;
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      spdlog::warn("instance {}: route '{}' skipped: another instance has it", s.spec.name, s.spec.route);
      continue;
    }
    seen.push_back(key);
    proxy::Route r;
    r.name = s.spec.name;
    r.host = spec->first;
    r.pathPrefix = spec->second;
    r.stripPrefix = s.spec.stripPrefix;
    r.upstreams.push_back(proxy::Upstream{"127.0.0.1", static_cast<uint16_t>(s.spec.port), healthOf(s.state)});
    for (const auto& text : s.spec.access) {
      if (auto rule = proxy::CidrRule::parse(text)) r.access.push_back(*rule);
    }
    r.holdWhileStarting = hold;
    routes.push_back(std::move(r));
  }
  return routes;
}

}  // namespace hv::daemon
