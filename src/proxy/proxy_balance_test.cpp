// Loopback tests of load balancing and passive health across replicas.
#include <gtest/gtest.h>

#include <map>

#include "proxy/test_support.h"

namespace hv::proxy::test {
namespace {

class ProxyBalance : public ::testing::Test {
 protected:
  void SetUp() override {
    proxy = startProxy();  // one loop: balancing state is per loop
    ASSERT_TRUE(proxy);
  }
  std::map<std::string, int> spread(int requests, const std::string& method = "GET") {
    std::map<std::string, int> seen;
    Client c;
    if (!c.connect(proxy->boundAddress())) return seen;
    for (int i = 0; i < requests; ++i) {
      Request req{http::string_to_verb(method), "/", 11};
      req.set(http::field::host, "app.test");
      auto r = c.request(req);
      ++seen[r ? (r->result_int() == 200 ? echoed(r->body(), "backend") : std::to_string(r->result_int())) : "none"];
    }
    return seen;
  }

  TestBackend a{"a"}, b{"b"}, c{"c"};
  std::unique_ptr<Proxy> proxy;
};

TEST_F(ProxyBalance, RoundRobinSharesRequestsEvenly) {
  ASSERT_TRUE(proxy->setRoutes({routeTo("/", {a.port(), b.port(), c.port()})}));
  EXPECT_EQ(spread(9), (std::map<std::string, int>{{"a", 3}, {"b", 3}, {"c", 3}}));
}

TEST_F(ProxyBalance, LeastConnectionsAvoidsTheUpstreamHoldingATunnel) {
  Route r = routeTo("/", {a.port(), b.port()});
  r.balance = Route::Balance::kLeastConn;
  ASSERT_TRUE(proxy->setRoutes({r}));
  WsClient ws;  // a long-lived connection on one of the two
  ASSERT_TRUE(ws.connect(proxy->boundAddress(), "app.test", "/"));
  const bool onA = a.connections() == 1;
  const auto seen = spread(6);
  EXPECT_EQ(seen, (std::map<std::string, int>{{onA ? "b" : "a", 6}}));
  ASSERT_TRUE(ws.close());
  ASSERT_TRUE(eventually([&] { return proxy->stats().tunnelsOpen == 0; }));
  EXPECT_EQ(spread(6).size(), 2u);  // equal again: ties alternate
}

TEST_F(ProxyBalance, FailedUpstreamIsEjectedAndRequestsGoElsewhere) {
  ASSERT_TRUE(proxy->setRoutes({routeTo("/", {deadPort(), a.port()})}));
  EXPECT_EQ(spread(6), (std::map<std::string, int>{{"a", 6}}));
  EXPECT_EQ(proxy->stats().upstreamFailures, 1u);  // tried once, then skipped
  EXPECT_EQ(spread(2, "POST"), (std::map<std::string, int>{{"a", 2}}));  // a refused connect sent nothing
}

TEST_F(ProxyBalance, IdempotentRequestIsRetriedWhenAnUpstreamDropsIt) {
  TestBackend reset{"reset", TestBackend::Mode::kReset};
  ASSERT_TRUE(proxy->setRoutes({routeTo("/", {reset.port(), a.port()})}));
  EXPECT_EQ(spread(4), (std::map<std::string, int>{{"a", 4}}));
  EXPECT_GE(reset.requests(), 1);
  // A POST the upstream may have acted on is not sent twice.
  const auto posts = spread(4, "POST");
  EXPECT_EQ(posts.at("a"), 2);
  EXPECT_EQ(posts.at("502"), 2);
}

TEST_F(ProxyBalance, StaticUpstreamsCanMixHealthStates) {
  Route r = routeTo("/", {a.port(), b.port(), c.port()});
  r.upstreams[1].health = Upstream::Health::kStarting;
  r.upstreams[2].health = Upstream::Health::kDown;
  ASSERT_TRUE(proxy->setRoutes({r}));
  EXPECT_EQ(spread(3), (std::map<std::string, int>{{"a", 3}}));
}

// Attack (traffic hijack): account A's instance filled the proxy's keep-alive
// pool for its port, was deleted, and account B's new instance got the same
// port; B's customers' requests then went down A's pooled connections (held
// by another of A's programs). A pooled connection belongs to its run.
TEST_F(ProxyBalance, PooledConnectionsServeOnlyTheRunTheyWereOpenedTo) {
  Route attacker = routeTo("/", {a.port()}, "", "a1");
  attacker.upstreams[0].run = 1;
  ASSERT_TRUE(proxy->setRoutes({attacker}));
  EXPECT_EQ(spread(2), (std::map<std::string, int>{{"a", 2}}));
  EXPECT_EQ(a.connections(), 1);
  EXPECT_EQ(proxy->stats().upstreamReuses, 1u);  // the pool works within a run

  Route victim = routeTo("/", {a.port()}, "", "victim");  // same port, another run
  victim.upstreams[0].run = 2;
  ASSERT_TRUE(proxy->setRoutes({victim}));
  EXPECT_EQ(spread(2), (std::map<std::string, int>{{"a", 2}}));
  EXPECT_EQ(a.connections(), 2) << "a connection pooled for run 1 served run 2";
  EXPECT_EQ(proxy->stats().upstreamReuses, 2u);  // only run 2's own connection was reused
}

}  // namespace
}  // namespace hv::proxy::test
