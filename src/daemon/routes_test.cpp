#include "daemon/routes.h"

#include <gtest/gtest.h>

namespace hv::daemon {
namespace {

supervisor::InstanceStatus instance(std::string name, std::string route, supervisor::State state, int port) {
  supervisor::InstanceStatus s;
  s.spec.name = std::move(name);
  s.spec.route = std::move(route);
  s.spec.port = port;
  s.state = state;
  return s;
}

TEST(Routes, EachRoutedInstanceBecomesOneRouteWithItsHealth) {
  using supervisor::State;
  auto chat = instance("chat", "chat.example.com/ws/", State::kRunning, 20001);
  chat.spec.access = {"allow 10.0.0.0/8", "deny all"};
  chat.spec.stripPrefix = true;
  const std::vector<supervisor::InstanceStatus> all = {
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

}  // namespace
}  // namespace hv::daemon
