#include "daemon/routes.h"

#include <fmt/format.h>
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

// "HOST/PATH" → the key two routes collide on; "" if it does not parse.
std::string routeKey(std::string_view spec) {
  auto parsed = proxy::parseRouteSpec(spec);
  return parsed ? parsed->first + parsed->second : std::string();
}

proxy::Route staticRoute(const Config::StaticUpstream& u) {
  proxy::Route r;
  r.name = u.name;
  r.origin = proxy::Route::Origin::kStatic;
  if (auto spec = proxy::parseRouteSpec(u.route)) std::tie(r.host, r.pathPrefix) = *spec;
  r.stripPrefix = u.stripPrefix;
  r.balance = u.leastConn ? proxy::Route::Balance::kLeastConn : proxy::Route::Balance::kRoundRobin;
  for (const auto& server : u.servers) {
    const size_t colon = server.rfind(':');
    std::string host = server.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    r.upstreams.push_back(proxy::Upstream{host, static_cast<uint16_t>(std::stoi(server.substr(colon + 1)))});
  }
  for (const auto& text : u.access)
    if (auto rule = proxy::CidrRule::parse(text)) r.access.push_back(*rule);
  return r;
}

const Config::StaticUpstream* staticWithKey(const std::string& key, const std::vector<Config::StaticUpstream>& statics) {
  for (const auto& u : statics)
    if (routeKey(u.route) == key) return &u;
  return nullptr;
}

}  // namespace

Status checkStaticConflict(std::string_view instance, std::string_view route,
                           const std::vector<Config::StaticUpstream>& statics) {
  const std::string key = routeKey(route);
  if (key.empty()) return {};
  if (const auto* u = staticWithKey(key, statics))
    return fail(Errc::kConflict, fmt::format("instance {} has route '{}', which is also the route of the "
                                             "[[proxy.upstreams]] '{}' at {}",
                                             instance, route, u->name, u->where));
  return {};
}

Status checkStaticConflicts(const std::vector<supervisor::InstanceStatus>& instances,
                            const std::vector<Config::StaticUpstream>& statics) {
  for (const auto& s : instances)
    if (auto st = checkStaticConflict(s.spec.name, s.spec.route, statics); !st) return st;
  return {};
}

std::vector<proxy::Route> routesFor(const std::vector<supervisor::InstanceStatus>& instances,
                                    std::chrono::milliseconds hold,
                                    const std::vector<Config::StaticUpstream>& statics) {
  std::vector<proxy::Route> routes;
  std::vector<std::string> seen;
  for (const auto& u : statics) {
    routes.push_back(staticRoute(u));
    seen.push_back(routeKey(u.route));
  }
  for (const auto& s : instances) {
    if (s.spec.route.empty()) continue;
    auto spec = proxy::parseRouteSpec(s.spec.route);
    if (!spec) {
      spdlog::warn("instance {}: route '{}' skipped: {}", s.spec.name, s.spec.route, spec.error().message);
      continue;
    }
    if (auto st = checkStaticConflict(s.spec.name, s.spec.route, statics); !st) {
      spdlog::error("{}; the instance's route is skipped", st.error().message);
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
