// Loopback tests of the kernel tunnel offload (BPF sockmap) that the
// parameterized ws tests (proxy_ws_test.cpp) do not cover: byte-exact echo up
// to 4 MiB, half-close in each direction with megabytes still in flight,
// a reset, 1,000 concurrent tunnels, the BPF maps left empty, and the
// fallback when the kernel refuses (an unprivileged process).
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"
#include "proxy/test_support.h"

namespace hv::proxy::test {
namespace {

constexpr std::string_view kRawUpgrade =
    "GET /raw/ HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// A blocking-style loopback socket whose every wait is bounded by `limit` (poll).
class Raw {
 public:
  explicit Raw(int fd = -1) : fd_(fd) {}
  bool connect(const std::string& address) {
    const uint16_t port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
    fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS)
      return false;
    return wait(POLLOUT);
  }
  bool writeAll(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) bytes.remove_prefix(static_cast<size_t>(n));
      else if (n < 0 && errno == EAGAIN) {
        if (!wait(POLLOUT)) return false;
      } else return false;
    }
    return true;
  }
  // Reads until `n` bytes or EOF / error / the limit.
  std::string read(size_t n, bool* eof = nullptr) {
    std::string out;
    if (eof) *eof = false;
    char buffer[65536];
    while (out.size() < n) {
      const ssize_t got = ::recv(fd_.get(), buffer, std::min(sizeof buffer, n - out.size()), MSG_DONTWAIT);
      if (got > 0) out.append(buffer, static_cast<size_t>(got));
      else if (got == 0) {
        if (eof) *eof = true;
        break;
      } else if (errno != EAGAIN || !wait(POLLIN)) break;
    }
    return out;
  }
  std::string readUntilEof(bool* eof) { return read(size_t(1) << 40, eof); }
  // The response head (through the blank line); bytes after it stay unread.
  std::string readHead() {
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 16384) {
      std::string c = read(1);
      if (c.empty()) break;
      head += c;
    }
    return head;
  }
  void shutdownSend() { ::shutdown(fd_.get(), SHUT_WR); }
  void reset() {  // close with RST
    linger l{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    fd_.reset();
  }
  int fd() const { return fd_.get(); }

 private:
  bool wait(short events) {
    pollfd p{fd_.get(), events, 0};
    return ::poll(&p, 1, static_cast<int>(limit_.count())) == 1;
  }
  UniqueFd fd_;
  std::chrono::milliseconds limit_ = 10s;
};

std::string pattern(size_t size, unsigned seed) {
  std::string s(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 16);
  }
  return s;
}

// A backend that accepts one connection and runs `script` on it (its own thread).
class ScriptedBackend {
 public:
  explicit ScriptedBackend(std::function<void(Raw&)> script) {
    listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    EXPECT_EQ(::listen(listener_.get(), 4), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, script = std::move(script)] {
      pollfd p{listener_.get(), POLLIN, 0};
      if (::poll(&p, 1, 10'000) != 1) return;
      Raw conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      script(conn);
    });
  }
  ~ScriptedBackend() { thread_.join(); }
  uint16_t port() const { return port_; }

 private:
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::thread thread_;
};

class ProxyOffload : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the sockmap offload needs root";
  }
  void start(uint16_t rawPort, Limits limits = {}) {
    proxy = startProxy(limits, 1, "", {}, TunnelOffloadMode::kSockmap);
    ASSERT_TRUE(proxy);
    ASSERT_EQ(proxy->tunnelOffloadStatus(), "sockmap");
    ASSERT_TRUE(proxy->setRoutes({routeTo("/raw/", {rawPort})}));
  }
  // Connects, upgrades, and reads the 101 head (and the raw backend's "welcome\n").
  bool open(Raw& c, bool welcome = true) {
    if (!c.connect(proxy->boundAddress()) || !c.writeAll(kRawUpgrade)) return false;
    const std::string head = c.readHead();
    if (head.rfind("HTTP/1.1 101", 0) != 0) return false;
    return !welcome || c.read(8) == "welcome\n";
  }
  void expectAllClosed() {
    EXPECT_TRUE(eventually([&] { return proxy->stats().tunnelsOpen == 0; }, 10s)) << proxy->stats().tunnelsOpen;
    EXPECT_TRUE(eventually([&] { return proxy->offloadMapEntries() == 0; })) << proxy->offloadMapEntries();
  }

  TestBackend raw{"raw", TestBackend::Mode::kRawUpgrade};
  std::unique_ptr<Proxy> proxy;
};

TEST_F(ProxyOffload, EchoesEveryByteInOrderUpTo4MiB) {
  start(raw.port());
  Raw c;
  ASSERT_TRUE(open(c));
  // The 101 is sent during the hand-off, just before the tunnel is counted.
  EXPECT_TRUE(eventually([&] { return proxy->stats().tunnelsOffloaded == 1; }));
  unsigned seed = 1;
  for (size_t size : {size_t(1), size_t(100), size_t(4096), size_t(65536), size_t(1) << 20, size_t(4) << 20}) {
    const std::string sent = pattern(size, seed++);
    std::thread writer([&] { EXPECT_TRUE(c.writeAll(sent)); });
    const std::string back = c.read(size);
    writer.join();
    ASSERT_EQ(back.size(), size);
    EXPECT_TRUE(back == sent) << size;
  }
  // The verdict's counters reach the proxy's byte stats (at close at the latest).
  c.shutdownSend();
  bool eof = false;
  EXPECT_EQ(c.readUntilEof(&eof), "bye\n");
  EXPECT_TRUE(eof);
  expectAllClosed();
  EXPECT_GE(proxy->stats().tunnelBytesIn, (size_t(5) << 20));
  EXPECT_GE(proxy->stats().tunnelBytesOut, (size_t(5) << 20));
}

// 8 MiB then a FIN at once: most of it is still in the proxy's psock queue
// when the FIN arrives; the backend must get all of it before its EOF.
TEST_F(ProxyOffload, ClientHalfCloseWithDataInFlightArrivesAfterAllTheData) {
  start(raw.port());
  Raw c;
  ASSERT_TRUE(open(c));
  const std::string sent = pattern(8 << 20, 7);
  std::thread writer([&] {
    EXPECT_TRUE(c.writeAll(sent));
    c.shutdownSend();
  });
  bool eof = false;
  const std::string back = c.readUntilEof(&eof);
  writer.join();
  EXPECT_TRUE(eof);
  ASSERT_EQ(back.size(), sent.size() + 4);
  EXPECT_TRUE(back.compare(0, sent.size(), sent) == 0);
  EXPECT_EQ(back.substr(sent.size()), "bye\n");
  expectAllClosed();
}

// The upstream sends 8 MiB and shuts its side at once; the client must read
// all of it, then EOF, and can still talk to the upstream afterwards.
TEST_F(ProxyOffload, UpstreamHalfCloseWithDataInFlightKeepsTheOtherDirection) {
  const std::string blob = pattern(8 << 20, 9);
  std::string heard;
  bool heardEof = false;
  ScriptedBackend backend([&](Raw& conn) {
    if (conn.readHead().empty()) return;
    if (!conn.writeAll("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
      return;
    if (conn.read(2) != "go") return;
    if (!conn.writeAll(blob)) return;
    conn.shutdownSend();
    heard = conn.readUntilEof(&heardEof);
  });
  start(backend.port());
  Raw c;
  ASSERT_TRUE(open(c, false));
  // The client may see the 101 before the proxy's loop has handed the tunnel
  // to the kernel (under load); the 8 MiB must be in flight after the handoff.
  ASSERT_TRUE(eventually([&] { return proxy->stats().tunnelsOffloaded == 1; }));
  ASSERT_TRUE(c.writeAll("go"));
  bool eof = false;
  const std::string got = c.readUntilEof(&eof);
  EXPECT_TRUE(eof);
  ASSERT_EQ(got.size(), blob.size());
  EXPECT_TRUE(got == blob);
  ASSERT_TRUE(c.writeAll("still-open"));
  c.shutdownSend();
  EXPECT_TRUE(eventually([&] { return proxy->stats().tunnelsOpen == 0; }, 10s));
  // Joined by the backend's destructor below: read its record after.
  expectAllClosed();
  EXPECT_EQ(proxy->stats().tunnelsOffloaded, 1u);
  ASSERT_TRUE(eventually([&] { return heardEof; }, 10s));
  EXPECT_EQ(heard, "still-open");
}

TEST_F(ProxyOffload, AResetOnOneSideClosesBoth) {
  start(raw.port());
  Raw c;
  ASSERT_TRUE(open(c));
  ASSERT_TRUE(c.writeAll("x"));
  ASSERT_EQ(c.read(1), "x");
  c.reset();
  expectAllClosed();
}

TEST_F(ProxyOffload, AThousandConcurrentTunnels) {
  Limits limits;
  limits.maxConnsPerClient = 4000;
  start(raw.port(), limits);
  constexpr int kTunnels = 1000;
  std::vector<Raw> clients(kTunnels);
  for (auto& c : clients) {
    ASSERT_TRUE(c.connect(proxy->boundAddress()));
    ASSERT_TRUE(c.writeAll(kRawUpgrade));
  }
  for (auto& c : clients) {
    ASSERT_EQ(c.readHead().rfind("HTTP/1.1 101", 0), 0u);
    ASSERT_EQ(c.read(8), "welcome\n");
  }
  // The 101 is sent during the hand-off, just before the tunnel is counted.
  EXPECT_TRUE(eventually([&] { return proxy->stats().tunnelsOffloaded == size_t(kTunnels); }));
  EXPECT_EQ(proxy->stats().tunnelsOpen, size_t(kTunnels));
  EXPECT_EQ(proxy->offloadMapEntries(), size_t(3 * 2 * kTunnels));  // socks, targets, peers; two sockets each
  for (int i = 0; i < kTunnels; ++i) ASSERT_TRUE(clients[i].writeAll(fmt::format("message {:04}|", i)));
  for (int i = 0; i < kTunnels; ++i) ASSERT_EQ(clients[i].read(13), fmt::format("message {:04}|", i));
  clients.clear();  // closes them all
  expectAllClosed();
}

// Without the capabilities BPF needs, "auto" keeps tunnels in user space and
// "sockmap" refuses to start, saying why. Run in a child that drops root.
TEST_F(ProxyOffload, UnprivilegedAutoFallsBackAndSockmapFailsClearly) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(10);
    ProxyConfig config;
    config.listen = "127.0.0.1:0";
    config.threads = 1;
    config.tunnelOffload = TunnelOffloadMode::kSockmap;
    auto refused = Proxy::start(config);
    if (refused) _exit(11);
    if (refused.error().message.find("tunnel_offload = \"sockmap\"") == std::string::npos) _exit(12);
    config.tunnelOffload = TunnelOffloadMode::kAuto;
    auto fallback = Proxy::start(config);
    if (!fallback) _exit(13);
    if ((*fallback)->tunnelOffloadStatus().rfind("user space (", 0) != 0) _exit(14);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child step that failed: " << WEXITSTATUS(status);
}

}  // namespace
}  // namespace hv::proxy::test
