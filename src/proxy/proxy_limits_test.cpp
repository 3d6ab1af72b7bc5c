// Loopback tests of the proxy's defences: smuggling patterns, size and count
// limits, timeouts, the per-client connection limit.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>

#include "proxy/client_limiter.h"
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

// The highest descriptor number this process has open.
int highestOpenFd() {
  int highest = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
    highest = std::max(highest, std::stoi(e.path().filename().string()));
  return highest;
}

// Attack: a flood of connections took the proxy to EMFILE, and the failed
// upstream connect marked a healthy instance as failed (ejected) for everyone.
TEST_F(ProxyLimits, OutOfDescriptorsIs503AndLeavesTheUpstreamHealthy) {
  proxy = startProxy();
  ASSERT_TRUE(proxy);
  ASSERT_TRUE(proxy->setRoutes({routeTo("/", {backend.port()}, "app.test")}));
  Client c;
  ASSERT_TRUE(c.connect(proxy->boundAddress()));
  auto accepted = c.get("/", "other.test");  // a 404 that keeps the connection: the proxy holds its fd now
  ASSERT_TRUE(accepted);
  ASSERT_EQ(accepted->result_int(), 404);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(highestOpenFd() + 1);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  std::vector<int> fillers;  // every free number below the limit, so no socket() can succeed
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
  Request req{http::verb::post, "/", 11};  // not retried elsewhere: one connect attempt only
  req.set(http::field::host, "app.test");
  auto r = c.request(req);
  for (int fd : fillers) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503) << r->body();
  EXPECT_EQ(proxy->stats().upstreamFailures, 0u) << "a local shortage was counted against the upstream";
  Client again;
  ASSERT_TRUE(again.connect(proxy->boundAddress()));
  auto after = again.get("/", "app.test");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->result_int(), 200) << "the upstream was ejected";
}

// Attack: the per-client cap counted each IPv6 /128 on its own, and a client
// owns a whole /64. And nothing capped all clients together.
TEST(ClientLimiterRules, AnIpv6SlashSixtyFourIsOneClientAndTheTotalIsCapped) {
  ClientLimiter limiter(2, 5);
  const auto v6 = [](const char* a) { return clientKey(boost::asio::ip::make_address(a)); };
  EXPECT_TRUE(limiter.acquire(v6("2001:db8:1:2::1")));
  EXPECT_TRUE(limiter.acquire(v6("2001:db8:1:2::2")));
  EXPECT_FALSE(limiter.acquire(v6("2001:db8:1:2:ffff::3"))) << "a third address of the same /64";
  EXPECT_TRUE(limiter.acquire(v6("2001:db8:1:3::1")));  // the next /64 is someone else
  EXPECT_TRUE(limiter.acquire(v6("10.0.0.1")));
  EXPECT_TRUE(limiter.acquire(v6("10.0.0.2")));  // IPv4 stays per address
  EXPECT_FALSE(limiter.acquire(v6("10.0.0.3"))) << "over the total of 5";
  limiter.release(v6("10.0.0.2"));
  EXPECT_TRUE(limiter.acquire(v6("10.0.0.3")));
  // Access rules still see the whole address.
  EXPECT_NE(addressKey(boost::asio::ip::make_address("2001:db8::1")),
            addressKey(boost::asio::ip::make_address("2001:db8::2")));
}

TEST(ClientLimiterRules, TheDefaultTotalFollowsTheDescriptorLimit) {
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  ClientLimiter limiter(256);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 512) {
    EXPECT_EQ(limiter.maxTotal(), (rl.rlim_cur - 256) / 2);
  }
  EXPECT_GT(limiter.maxTotal(), 0u);
}

}  // namespace
}  // namespace hv::proxy::test
