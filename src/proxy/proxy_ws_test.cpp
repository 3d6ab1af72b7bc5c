// Loopback tests of WebSocket tunnels: echo through the proxy, raw bytes and
// half-close, idle and lifetime limits, route changes, stop. Each runs twice:
// tunnels copied by the loop (Off) and by the kernel (Sockmap, BPF redirect;
// skipped when not root). In the Sockmap runs every tunnel must really have
// been offloaded, and closed tunnels must leave no entry in the BPF maps.
#include <gtest/gtest.h>
#include <unistd.h>

#include "proxy/test_support.h"

namespace hv::proxy::test {
namespace {

constexpr std::string_view kUpgrade =
    "GET /ws/ HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

class ProxyWs : public ::testing::TestWithParam<TunnelOffloadMode> {
 protected:
  void SetUp() override {
    if (offloaded() && ::geteuid() != 0) GTEST_SKIP() << "the sockmap offload needs root";
  }
  void TearDown() override {
    if (!proxy || !offloaded()) return;
    EXPECT_EQ(proxy->tunnelOffloadStatus(), "sockmap");
    // A tunnel whose client sends its FIN during the hand-off stays in user
    // space (CopiesRawBytes… may); the others must all have been offloaded.
    const Stats s = proxy->stats();
    EXPECT_GE(s.tunnelsOffloaded + 1, s.tunnelsTotal) << "tunnels should have been offloaded";
    proxy->stop();  // closes whatever is still open
    EXPECT_TRUE(eventually([&] { return proxy->offloadMapEntries() == 0; })) << proxy->offloadMapEntries();
  }
  bool offloaded() const { return GetParam() == TunnelOffloadMode::kSockmap; }

  void start(Limits limits = {}, std::chrono::milliseconds idle = {}) {
    proxy = startProxy(limits, 1, "", {}, GetParam());
    ASSERT_TRUE(proxy);
    Route r = routeTo("/ws/", {echo.port()});
    r.idleTimeout = idle;
    ASSERT_TRUE(proxy->setRoutes({r, routeTo("/raw/", {raw.port()})}));
  }

  TestBackend echo{"echo"};
  TestBackend raw{"raw", TestBackend::Mode::kRawUpgrade};
  std::unique_ptr<Proxy> proxy;
};

TEST_P(ProxyWs, EchoesTextAndBinaryMessagesOfAllSizes) {
  start();
  WsClient ws;
  ASSERT_TRUE(ws.connect(proxy->boundAddress(), "app.test", "/ws/chat"));
  EXPECT_EQ(proxy->stats().tunnelsOpen, 1u);
  if (offloaded()) {
    EXPECT_TRUE(eventually([&] { return proxy->stats().tunnelsOffloaded == 1; }));
  }
  for (size_t size : {size_t(0), size_t(1), size_t(125), size_t(126), size_t(65535), size_t(65536), size_t(1) << 20}) {
    for (bool binary : {false, true}) {
      std::string message(size, binary ? '\x01' : 'a');
      for (size_t i = 0; i < size; i += 997) message[i] = binary ? static_cast<char>(i % 251) : 'a' + i % 26;
      ASSERT_TRUE(ws.send(message, binary)) << size;
      bool gotBinary = !binary;
      auto back = ws.receive(&gotBinary);
      ASSERT_TRUE(back) << size;
      EXPECT_EQ(*back, message) << size;
      EXPECT_EQ(gotBinary, binary);
    }
  }
  EXPECT_TRUE(ws.close());
  ASSERT_TRUE(eventually([&] { return proxy->stats().tunnelsOpen == 0; }));
  EXPECT_EQ(proxy->stats().tunnelsTotal, 1u);
  EXPECT_GT(proxy->stats().tunnelBytesIn, 2u * (1u << 20));
  EXPECT_EQ(proxy->stats().connectionsOpen, 0u);
}

TEST_P(ProxyWs, CopiesRawBytesIncludingEarlyOnesAndHalfCloses) {
  start();
  Client c;
  ASSERT_TRUE(c.connect(proxy->boundAddress()));
  std::string request(kUpgrade);
  request.replace(request.find("/ws/"), 4, "/raw/");
  ASSERT_TRUE(c.write(request + "early-"));  // bytes right behind the request head
  auto head = c.read();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->result_int(), 101);
  EXPECT_EQ((*head)[http::field::upgrade], "websocket");
  EXPECT_EQ((*head)[http::field::connection], "Upgrade");
  ASSERT_TRUE(c.write("hello"));
  c.shutdownSend();  // our EOF must reach the backend, which then says bye and closes
  EXPECT_EQ(c.readUntilClosed(), "welcome\nearly-hellobye\n");
  EXPECT_EQ(c.error(), asio::error::eof);
  ASSERT_TRUE(eventually([&] { return proxy->stats().tunnelsOpen == 0; }));
}

TEST_P(ProxyWs, IdleTunnelClosesAfterTheRouteTimeout) {
  start({}, 200ms);
  WsClient ws;
  ASSERT_TRUE(ws.connect(proxy->boundAddress(), "app.test", "/ws/"));
  ASSERT_TRUE(ws.send("ping", false));
  ASSERT_TRUE(ws.receive());
  const auto begin = std::chrono::steady_clock::now();
  const auto ec = ws.waitClosed(3s);
  EXPECT_NE(ec, asio::error::timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 150ms);
  ASSERT_TRUE(eventually([&] { return proxy->stats().tunnelsOpen == 0; }));
}

TEST_P(ProxyWs, TrafficKeepsATunnelPastItsIdleTime) {
  start({}, 300ms);
  WsClient ws;
  ASSERT_TRUE(ws.connect(proxy->boundAddress(), "app.test", "/ws/"));
  const auto end = std::chrono::steady_clock::now() + 900ms;
  while (std::chrono::steady_clock::now() < end) {
    ASSERT_TRUE(ws.send("tick", false));
    ASSERT_TRUE(ws.receive());
    std::this_thread::sleep_for(50ms);  // pacing the traffic, not waiting for an event
  }
  EXPECT_EQ(proxy->stats().tunnelsOpen, 1u);
}

TEST_P(ProxyWs, LifetimeCapClosesEvenABusyTunnel) {
  Limits limits;
  limits.tunnelLifetime = 300ms;
  start(limits);
  WsClient ws;
  ASSERT_TRUE(ws.connect(proxy->boundAddress(), "app.test", "/ws/"));
  const auto begin = std::chrono::steady_clock::now();
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() - begin < 3s) closed = !ws.send("x", false) || !ws.receive();
  EXPECT_TRUE(closed);
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 250ms);
}

TEST_P(ProxyWs, RouteChangesDoNotDropOpenTunnels) {
  start();
  WsClient ws;
  ASSERT_TRUE(ws.connect(proxy->boundAddress(), "app.test", "/ws/"));
  ASSERT_TRUE(proxy->setRoutes({}));
  ASSERT_TRUE(eventually([&] {
    Client c;
    auto r = c.connect(proxy->boundAddress()) ? c.get("/ws/") : std::nullopt;
    return r && r->result_int() == 404;
  }));
  ASSERT_TRUE(ws.send("still here", false));
  auto back = ws.receive();
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, "still here");
  EXPECT_EQ(proxy->stats().tunnelsOpen, 1u);
}

TEST_P(ProxyWs, UpgradeToADeadInstanceIs502) {
  TestBackend reset{"reset", TestBackend::Mode::kReset};
  start();
  ASSERT_TRUE(proxy->setRoutes({routeTo("/ws/", {reset.port()}, "", "chat")}));
  Client c;
  ASSERT_TRUE(c.connect(proxy->boundAddress()));
  ASSERT_TRUE(c.write(kUpgrade));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 502);
  EXPECT_NE(r->body().find("the application closed the connection without answering"), std::string::npos) << r->body();
}

TEST_P(ProxyWs, StopClosesOpenTunnels) {
  start();
  WsClient ws;
  ASSERT_TRUE(ws.connect(proxy->boundAddress(), "app.test", "/ws/"));
  const auto begin = std::chrono::steady_clock::now();
  proxy->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);
  EXPECT_NE(ws.waitClosed(3s), asio::error::timed_out);
  EXPECT_EQ(proxy->stats().tunnelsOpen, 0u);
}

INSTANTIATE_TEST_SUITE_P(Tunnels, ProxyWs, ::testing::Values(TunnelOffloadMode::kOff, TunnelOffloadMode::kSockmap),
                         [](const auto& info) { return info.param == TunnelOffloadMode::kOff ? "Off" : "Sockmap"; });

}  // namespace
}  // namespace hv::proxy::test
