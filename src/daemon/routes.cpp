#include "daemon/routes.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unordered_map>

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

Error staticConflict(std::string_view instance, std::string_view route, const Config::StaticUpstream& u) {
  return Error::make(Errc::kConflict, fmt::format("instance {} has route '{}', which is also the route of the "
                                                  "[[proxy.upstreams]] '{}' at {}",
                                                  instance, route, u.name, u.where));
}

}  // namespace

Status checkStaticConflict(std::string_view instance, std::string_view route,
                           const std::vector<Config::StaticUpstream>& statics) {
  const std::string key = routeKey(route);
  if (key.empty()) return {};
  if (const auto* u = staticWithKey(key, statics)) return std::unexpected(staticConflict(instance, route, *u));
  return {};
}

std::vector<proxy::Route> routesFor(const std::vector<supervisor::RouteView>& instances,
                                    std::chrono::milliseconds hold,
                                    const std::vector<Config::StaticUpstream>& statics) {
  std::vector<proxy::Route> routes;
  routes.reserve(statics.size() + instances.size());
  // Route key → the static upstream that has it, or null for an instance.
  std::unordered_map<std::string, const Config::StaticUpstream*> taken;
  taken.reserve(statics.size() + instances.size());
  for (const auto& u : statics) {
    routes.push_back(staticRoute(u));
    taken.emplace(routeKey(u.route), &u);
  }
  for (const auto& s : instances) {
    if (s.route.empty()) continue;
    auto spec = proxy::parseRouteSpec(s.route);
    if (!spec) {
      spdlog::warn("instance {}: route '{}' skipped: {}", s.name, s.route, spec.error().message);
      continue;
    }
    // Validation keeps routes unique; should two still collide, the proxy
    // would refuse the whole table, so the later one is dropped instead.
    auto [it, fresh] = taken.try_emplace(spec->first + spec->second, nullptr);
    if (!fresh && it->second) {
      spdlog::error("{}; the instance's route is skipped", staticConflict(s.name, s.route, *it->second).message);
      continue;
    }
    if (!fresh) {
      spdlog::warn("instance {}: route '{}' skipped: another instance has it", s.name, s.route);
      continue;
    }
    proxy::Route r;
    r.name = s.name;
    r.host = std::move(spec->first);
    r.pathPrefix = std::move(spec->second);
    r.stripPrefix = s.stripPrefix;
    r.upstreams.push_back(proxy::Upstream{"127.0.0.1", static_cast<uint16_t>(s.port), healthOf(s.state), s.run});
    for (const auto& text : s.access) {
      if (auto rule = proxy::CidrRule::parse(text)) r.access.push_back(*rule);
    }
    r.holdWhileStarting = hold;
    routes.push_back(std::move(r));
  }
  return routes;
}

}  // namespace hv::daemon
