#include "proxy/upstreams.h"

#include <gtest/gtest.h>

#include <map>

namespace hv::proxy {
namespace {

using Health = Upstream::Health;
using Kind = Upstreams::Pick::Kind;

RouteEntry entry(std::vector<Health> health, Route::Balance balance = Route::Balance::kRoundRobin) {
  Route r;
  r.name = "app";
  r.balance = balance;
  for (size_t i = 0; i < health.size(); ++i) r.upstreams.push_back({"127.0.0.1", uint16_t(9000 + i), health[i]});
  auto table = RouteTable::build({r});
  EXPECT_TRUE(table);
  return *table->match("", "/");
}

class UpstreamsTest : public ::testing::Test {
 protected:
  Limits limits;
  Upstreams upstreams{limits};
  TimePoint now = TimePoint() + std::chrono::hours(1);
};

TEST_F(UpstreamsTest, RoundRobinCyclesOverUpOnes) {
  const RouteEntry e = entry({Health::kUp, Health::kDown, Health::kUp});
  std::map<size_t, int> seen;
  for (int i = 0; i < 6; ++i) {
    auto pick = upstreams.choose(e, {}, now);
    ASSERT_EQ(pick.kind, Kind::kEndpoint);
    ++seen[pick.index];
  }
  EXPECT_EQ(seen, (std::map<size_t, int>{{0, 3}, {2, 3}}));
}

TEST_F(UpstreamsTest, LeastConnectionsPrefersTheIdlest) {
  const RouteEntry e = entry({Health::kUp, Health::kUp, Health::kUp}, Route::Balance::kLeastConn);
  auto a = upstreams.lease(e.endpoints[0]);
  auto b = upstreams.lease(e.endpoints[0]);
  auto c = upstreams.lease(e.endpoints[2]);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(upstreams.choose(e, {}, now).index, 1u);
  auto d = upstreams.lease(e.endpoints[1]);
  auto f = upstreams.lease(e.endpoints[1]);
  EXPECT_EQ(upstreams.choose(e, {}, now).index, 2u);
  c.reset();
  EXPECT_EQ(upstreams.inUse(e.endpoints[2]), 0u);
}

TEST_F(UpstreamsTest, EjectedUpstreamsAreSkippedForAWhile) {
  const RouteEntry e = entry({Health::kUp, Health::kUp});
  upstreams.eject(e.endpoints[0], now);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(upstreams.choose(e, {}, now).index, 1u);
  const TimePoint later = now + limits.ejectTime;
  std::map<size_t, int> seen;
  for (int i = 0; i < 4; ++i) ++seen[upstreams.choose(e, {}, later).index];
  EXPECT_EQ(seen.size(), 2u);
}

TEST_F(UpstreamsTest, AllEjectedStillTriesRatherThanFailing) {
  const RouteEntry e = entry({Health::kUp});
  upstreams.eject(e.endpoints[0], now);
  EXPECT_EQ(upstreams.choose(e, {}, now).kind, Kind::kEndpoint);
}

TEST_F(UpstreamsTest, ReportsWhyNothingCanBeChosen) {
  EXPECT_EQ(upstreams.choose(entry({Health::kDown}), {}, now).kind, Kind::kDown);
  EXPECT_EQ(upstreams.choose(entry({}), {}, now).kind, Kind::kDown);
  EXPECT_EQ(upstreams.choose(entry({Health::kDown, Health::kStarting}), {}, now).kind, Kind::kStarting);
  const RouteEntry e = entry({Health::kUp, Health::kUp});
  EXPECT_EQ(upstreams.choose(e, {e.endpoints[0], e.endpoints[1]}, now).kind, Kind::kExhausted);
  EXPECT_EQ(upstreams.choose(e, {e.endpoints[0]}, now).index, 1u);
}

}  // namespace
}  // namespace hv::proxy
