#include "daemon/routes.h"

#include <gtest/gtest.h>

namespace hv::daemon {
namespace {

supervisor::RouteView instance(std::string name, std::string route, supervisor::State state, int port) {
  supervisor::RouteView s;
  s.name = std::move(name);
  s.route = std::move(route);
  s.port = port;
  s.state = state;
  return s;
}

TEST(Routes, EachRoutedInstanceBecomesOneRouteWithItsHealth) {
  using supervisor::State;
  auto chat = instance("chat", "chat.example.com/ws/", State::kRunning, 20001);
  chat.access = {"allow 10.0.0.0/8", "deny all"};
  chat.stripPrefix = true;
  const std::vector<supervisor::RouteView> all = {
      chat, instance("worker", "", State::kRunning, 20002), instance("api", "/api/", State::kBackoff, 20003),
      instance("old", "/old/", State::kStopped, 20004)};
  auto routes = routesFor(all, std::chrono::milliseconds(3000));
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(routes[0].host, "chat.example.com");
  EXPECT_EQ(routes[0].pathPrefix, "/ws/");
  EXPECT_TRUE(routes[0].stripPrefix);
  EXPECT_EQ(routes[0].access.size(), 2u);
  EXPECT_EQ(routes[0].upstreams.at(0).port, 20001);
  EXPECT_EQ(routes[0].upstreams.at(0).health, proxy::Upstream::Health::kUp);
  EXPECT_EQ(routes[0].holdWhileStarting.count(), 3000);
  EXPECT_EQ(routes[1].host, "");
  EXPECT_EQ(routes[1].upstreams.at(0).health, proxy::Upstream::Health::kStarting);
  EXPECT_EQ(routes[2].upstreams.at(0).health, proxy::Upstream::Health::kDown);
}

TEST(Routes, ADuplicateRouteIsDroppedSoTheOthersStillApply) {
  using supervisor::State;
  auto routes = routesFor({instance("a", "/x/", State::kRunning, 1), instance("b", "/x/", State::kRunning, 2),
                           instance("c", "/y/", State::kRunning, 3)},
                          std::chrono::milliseconds(0));
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].name, "a");
  EXPECT_EQ(routes[1].name, "c");
}

Config::StaticUpstream staticUpstream(std::string route, std::vector<std::string> servers) {
  Config::StaticUpstream u;
  u.name = "static-" + route;
  u.route = std::move(route);
  u.servers = std::move(servers);
  u.where = "hv.toml:7:1";
  return u;
}

TEST(Routes, StaticUpstreamsComeFirstAndKeepTheirRoute) {
  using supervisor::State;
  auto api = staticUpstream("api.test/v1/", {"127.0.0.1:9000", "[::1]:9001"});
  api.leastConn = true;
  api.stripPrefix = true;
  api.access = {"deny all"};
  auto routes = routesFor({instance("clash", "api.test/v1/", State::kRunning, 20001),
                           instance("other", "/other/", State::kRunning, 20002)},
                          std::chrono::milliseconds(0), {api});
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].name, "static-api.test/v1/");
  EXPECT_EQ(routes[0].origin, proxy::Route::Origin::kStatic);
  EXPECT_EQ(routes[0].host, "api.test");
  EXPECT_EQ(routes[0].pathPrefix, "/v1/");
  EXPECT_EQ(routes[0].balance, proxy::Route::Balance::kLeastConn);
  EXPECT_TRUE(routes[0].stripPrefix);
  ASSERT_EQ(routes[0].upstreams.size(), 2u);
  EXPECT_EQ(routes[0].upstreams[1].host, "::1");
  EXPECT_EQ(routes[0].upstreams[1].port, 9001);
  EXPECT_EQ(routes[0].upstreams[0].health, proxy::Upstream::Health::kUp);
  EXPECT_EQ(routes[0].access.size(), 1u);
  EXPECT_EQ(routes[1].name, "other");
}

TEST(Routes, AnInstanceOnAStaticRouteIsAConflictNamingBoth) {
  const std::vector<Config::StaticUpstream> statics = {staticUpstream("/api/", {"127.0.0.1:9000"})};
  EXPECT_TRUE(checkStaticConflict("a", "/app/", statics));
  auto clash = checkStaticConflict("chat", "/api/", statics);
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code, Errc::kConflict);
  EXPECT_EQ(clash.error().message,
            "instance chat has route '/api/', which is also the route of the [[proxy.upstreams]] "
            "'static-/api/' at hv.toml:7:1");
  EXPECT_TRUE(checkStaticConflict("x", "/api/more/", statics));  // nested prefixes are fine
  EXPECT_TRUE(checkStaticConflict("x", "", statics));            // no route, no conflict
}

// The duplicate check is by key (host + path), in one pass: with many
// instances each later holder of a taken route is dropped, the first kept, and
// an instance on a static route loses to the static upstream.
TEST(Routes, ManyInstancesKeepTheFirstHolderOfEachRoute) {
  using supervisor::State;
  std::vector<supervisor::RouteView> all;
  for (int i = 0; i < 200; ++i) all.push_back(instance("i" + std::to_string(i), "/r" + std::to_string(i % 100) + "/",
                                                        State::kRunning, 20000 + i));
  all.push_back(instance("onstatic", "/static/", State::kRunning, 1));
  all.push_back(instance("unrouted", "", State::kRunning, 2));
  all.push_back(instance("bad", "bad host!/x/", State::kRunning, 3));
  auto routes = routesFor(all, std::chrono::milliseconds(0), {staticUpstream("/static/", {"127.0.0.1:9000"})});
  ASSERT_EQ(routes.size(), 101u);
  EXPECT_EQ(routes[0].origin, proxy::Route::Origin::kStatic);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(routes[1 + i].name, "i" + std::to_string(i));
    EXPECT_EQ(routes[1 + i].upstreams.at(0).port, 20000 + i);
  }
}

}  // namespace
}  // namespace hv::daemon
