// Loopback tests of the proxy's defences: smuggling patterns, size and count
// limits, timeouts, the per-client connection limit.
#include <gtest/gtest.h>

#include "proxy/test_support.h"

namespace hv::proxy::test {
namespace {

using namespace std::literals;

class ProxyLimits : public ::testing::Test {
 protected:
  void start(Limits limits = {}) {
    proxy = startProxy(limits);
    ASSERT_TRUE(proxy);
    ASSERT_TRUE(proxy->setRoutes({routeTo("/", {backend.port()})}));
  }
  // Sends raw bytes on a new connection; returns the answer, which must close the connection.
  std::optional<Response> send(std::string_view bytes, bool expectClose = true) {
    Client c;
    if (!c.connect(proxy->boundAddress()) || !c.write(bytes)) return std::nullopt;
    auto r = c.read();
    if (r && expectClose) {
      EXPECT_EQ((*r)[http::field::connection], "close");
      EXPECT_TRUE(c.closedWithin(2s));
    }
    return r;
  }

  TestBackend backend;
  std::unique_ptr<Proxy> proxy;
};

TEST_F(ProxyLimits, SmugglingPatternsAre400AndNeverReachTheBackend) {
  start();
  const std::string_view rows[] = {
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4a\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd",
      "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n\tb\r\nContent-Length: 0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 5\r\nhello\r\n0\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\0b\r\n\r\n"sv,
      "GET / HTTP/1.1\r\nHost: a\r\nX-Cr: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Name: x\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: bad/host\r\n\r\n",
      "GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  for (std::string_view row : rows) {
    auto r = send(row);
    ASSERT_TRUE(r) << row;
    EXPECT_EQ(r->result_int(), 400) << row << "→ " << r->body();
  }
  EXPECT_EQ(backend.requests(), 0);
  EXPECT_EQ(proxy->stats().responses4xx, std::size(rows));
}

TEST_F(ProxyLimits, HeadTooLargeIs431) {
  Limits limits;
  limits.headerBytes = 4096;
  start(limits);
  auto r = send("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(5000, 'b') + "\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 431);
  auto fits = send("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(3000, 'b') + "\r\n\r\n", false);
  ASSERT_TRUE(fits);
  EXPECT_EQ(fits->result_int(), 200);
}

TEST_F(ProxyLimits, TooManyHeaderFieldsIs431) {
  Limits limits;
  limits.headerCount = 20;
  start(limits);
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 20; ++i) head += "X-F" + std::to_string(i) + ": 1\r\n";
  auto r = send(head + "\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 431);
  EXPECT_EQ(backend.requests(), 0);
}

TEST_F(ProxyLimits, BodyTooLargeIs413) {
  Limits limits;
  limits.bodyBytes = 1000;
  start(limits);
  auto declared = send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n");
  ASSERT_TRUE(declared);
  EXPECT_EQ(declared->result_int(), 413);
  const std::string chunk(600, 'c');
  auto chunked = send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" + chunk + "\r\n258\r\n" +
                      chunk + "\r\n0\r\n\r\n");
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->result_int(), 413);
  EXPECT_EQ(backend.requests(), 0);
}

TEST_F(ProxyLimits, SlowHeadIs408) {
  Limits limits;
  limits.headerTimeout = 200ms;
  start(limits);
  Client c;
  ASSERT_TRUE(c.connect(proxy->boundAddress()));
  const auto begin = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.write("GET / HTTP/1.1\r\nHost: a\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 408);
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 150ms);
  EXPECT_TRUE(c.closedWithin(2s));

  Client silent;  // says nothing at all: closed without an answer
  ASSERT_TRUE(silent.connect(proxy->boundAddress()));
  EXPECT_TRUE(silent.closedWithin(2s));
}

TEST_F(ProxyLimits, SlowBodyIs408) {
  Limits limits;
  limits.bodyTimeout = 200ms;
  start(limits);
  auto r = send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 408);
  EXPECT_EQ(backend.requests(), 0);
}

TEST_F(ProxyLimits, IdleKeepAliveConnectionIsClosed) {
  Limits limits;
  limits.keepAliveTimeout = 200ms;
  start(limits);
  Client c;
  ASSERT_TRUE(c.connect(proxy->boundAddress()));
  ASSERT_TRUE(c.get("/"));
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closedWithin(3s));
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 150ms);
}

TEST_F(ProxyLimits, ConnectionsPerClientAreCapped) {
  Limits limits;
  limits.maxConnsPerClient = 2;
  start(limits);
  Client c1, c2;
  ASSERT_TRUE(c1.connect(proxy->boundAddress()));
  ASSERT_TRUE(c2.connect(proxy->boundAddress()));
  ASSERT_TRUE(c1.get("/"));
  ASSERT_TRUE(c2.get("/"));
  Client c3;
  ASSERT_TRUE(c3.connect(proxy->boundAddress()));
  const std::string answer = c3.readUntilClosed();
  EXPECT_TRUE(c3.error() == asio::error::eof || c3.error() == asio::error::connection_reset) << c3.error().message();
  if (!answer.empty()) {
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 429")) << answer;
  }
  EXPECT_EQ(proxy->stats().connectionsRejected, 1u);
  c1.socket().close();
  ASSERT_TRUE(eventually([&] { return proxy->stats().connectionsOpen == 1; }));
  Client c4;
  ASSERT_TRUE(c4.connect(proxy->boundAddress()));
  auto r = c4.get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
}

}  // namespace
}  // namespace hv::proxy::test
