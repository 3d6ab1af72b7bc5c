// Loopback tests of TLS termination: SNI certificates, https and wss through
// the proxy, certificate reload that keeps open connections.
#include <gtest/gtest.h>

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "proxy/test_support.h"

namespace hv::proxy::test {
namespace {

using boost::system::error_code;

// A wss:// client (Beast over asio::ssl) with every wait bounded.
class WssClient {
 public:
  WssClient() : ctx_(asio::ssl::context::tls_client), ws_(io_, ctx_) {
    ctx_.set_verify_mode(asio::ssl::verify_none);
    ws_.read_message_max(8 << 20);
  }
  bool connect(const std::string& address, const std::string& host, const std::string& target) {
    const size_t colon = address.rfind(':');
    const tcp::endpoint ep(asio::ip::make_address(address.substr(0, colon)), std::stoi(address.substr(colon + 1)));
    SSL_set_tlsext_host_name(ws_.next_layer().native_handle(), host.c_str());
    return await([&](auto done) { beast::get_lowest_layer(ws_).async_connect(ep, done); }) &&
           await([&](auto done) { ws_.next_layer().async_handshake(asio::ssl::stream_base::client, done); }) &&
           await([&](auto done) { ws_.async_handshake(host, target, done); });
  }
  bool send(const std::string& message, bool binary) {
    ws_.binary(binary);
    return await([&](auto done) { ws_.async_write(asio::buffer(message), [done](error_code ec, size_t) { done(ec); }); });
  }
  std::optional<std::string> receive() {
    buffer_.clear();
    if (!await([&](auto done) { ws_.async_read(buffer_, [done](error_code ec, size_t) { done(ec); }); }))
      return std::nullopt;
    return beast::buffers_to_string(buffer_.data());
  }

 private:
  template <class Start>
  bool await(Start start) {
    bool finished = false;
    error_code result;
    start([&](error_code ec) { result = ec, finished = true; });
    if (!runUntil(io_, [&] { return finished; })) {
      beast::get_lowest_layer(ws_).cancel();
      runUntil(io_, [&] { return finished; }, 1s);
      return false;
    }
    return !result;
  }

  asio::io_context io_;
  asio::ssl::context ctx_;
  websocket::stream<asio::ssl::stream<tcp::socket>> ws_;
  beast::flat_buffer buffer_;
};

class ProxyTls : public ::testing::Test {
 protected:
  void SetUp() override {
    certificates = {makeCertificate(dir.path(), "a", "a.test", "a.test"),
                    makeCertificate(dir.path(), "b", "b.test", "B.test"),
                    makeCertificate(dir.path(), "wild", "wildcard", "*.wild.test"),
                    makeCertificate(dir.path(), "default", "default.test", "")};
    Limits limits;
    limits.handshakeTimeout = 300ms;
    proxy = startProxy(limits, 2, "127.0.0.1:0", certificates);
    ASSERT_TRUE(proxy);
    ASSERT_FALSE(proxy->tlsBoundAddress().empty());
    ASSERT_TRUE(proxy->setRoutes({routeTo("/", {backend.port()})}));
  }
  std::string commonName(const std::string& sni) {
    TlsClient c;
    return c.connect(proxy->tlsBoundAddress(), sni) ? c.peerCommonName() : "<no handshake>";
  }

  TempDir dir;
  std::vector<Certificate> certificates;
  TestBackend backend;
  std::unique_ptr<Proxy> proxy;
};

TEST_F(ProxyTls, SniChoosesTheCertificate) {
  EXPECT_EQ(commonName("a.test"), "a.test");
  EXPECT_EQ(commonName("b.test"), "b.test");
  EXPECT_EQ(commonName("A.TEST"), "a.test");
  EXPECT_EQ(commonName("x.wild.test"), "wildcard");
  EXPECT_EQ(commonName("unknown.test"), "default.test");
  EXPECT_EQ(commonName(""), "default.test");
}

TEST_F(ProxyTls, HttpsIsProxiedAndMarkedAsSuch) {
  TlsClient c;
  ASSERT_TRUE(c.connect(proxy->tlsBoundAddress(), "a.test"));
  for (int i = 0; i < 3; ++i) {  // keep-alive over TLS
    auto r = c.get("/p" + std::to_string(i), "a.test");
    ASSERT_TRUE(r);
    EXPECT_EQ(echoed(r->body(), "target"), "/p" + std::to_string(i));
    EXPECT_EQ(echoed(r->body(), "header:x-forwarded-proto"), "https");
  }
  auto big = c.get("/size/2000000", "a.test");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->body().size(), 2000000u);
}

TEST_F(ProxyTls, WssEchoesThroughTheTunnel) {
  WssClient ws;
  ASSERT_TRUE(ws.connect(proxy->tlsBoundAddress(), "a.test", "/ws/"));
  for (size_t size : {size_t(0), size_t(5), size_t(70000), size_t(1) << 20}) {
    const std::string message(size, 'w');
    ASSERT_TRUE(ws.send(message, size % 2 == 1));
    auto back = ws.receive();
    ASSERT_TRUE(back) << size;
    EXPECT_EQ(back->size(), size);
    EXPECT_EQ(*back, message);
  }
  EXPECT_EQ(proxy->stats().tunnelsOpen, 1u);
  EXPECT_EQ(proxy->stats().tunnelsTlsTakeover, 1u);  // TLS 1.3: carried on by tls_records, not the SSL
}

TEST_F(ProxyTls, ReloadSwapsCertificatesAndKeepsOpenConnections) {
  TlsClient before;
  ASSERT_TRUE(before.connect(proxy->tlsBoundAddress(), "a.test"));
  ASSERT_TRUE(before.get("/", "a.test"));
  WssClient ws;
  ASSERT_TRUE(ws.connect(proxy->tlsBoundAddress(), "a.test", "/ws/"));

  ASSERT_TRUE(proxy->reloadCertificates({makeCertificate(dir.path(), "a2", "a2.test", "a.test"), certificates[3]}));
  EXPECT_EQ(commonName("a.test"), "a2.test");
  EXPECT_EQ(commonName("b.test"), "default.test");  // b is gone from the new set

  EXPECT_EQ(before.peerCommonName(), "a.test");
  auto r = before.get("/after-reload", "a.test");
  ASSERT_TRUE(r);
  EXPECT_EQ(echoed(r->body(), "target"), "/after-reload");
  ASSERT_TRUE(ws.send("still open", false));
  EXPECT_EQ(ws.receive(), "still open");
  EXPECT_EQ(proxy->stats().tunnelsTlsTakeover, 1u);  // an SNI-chosen context took over too
}

TEST_F(ProxyTls, FailedReloadKeepsTheOldCertificates) {
  const auto bad = proxy->reloadCertificates({Certificate{"a.test", dir.path() + "/missing.crt", dir.path() + "/a.key"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("missing.crt"), std::string::npos) << bad.error().message;
  const auto mismatched = proxy->reloadCertificates({Certificate{"a.test", certificates[0].certFile, certificates[1].keyFile}});
  ASSERT_FALSE(mismatched);
  EXPECT_EQ(commonName("a.test"), "a.test");
}

TEST_F(ProxyTls, SilentClientIsDroppedAfterTheHandshakeTimeout) {
  Client c;
  ASSERT_TRUE(c.connect(proxy->tlsBoundAddress()));
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closedWithin(3s));
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 250ms);

  Client plain;  // plain HTTP on the TLS port is not a handshake
  ASSERT_TRUE(plain.connect(proxy->tlsBoundAddress()));
  ASSERT_TRUE(plain.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_TRUE(plain.closedWithin(3s));
  EXPECT_EQ(backend.requests(), 0);
}

}  // namespace
}  // namespace hv::proxy::test
