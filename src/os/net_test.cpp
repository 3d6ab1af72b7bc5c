#include "os/net.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "base/unique_fd.h"

namespace hv::os {
namespace {

// A socket bound to 127.0.0.1 on a port the kernel picks; listening if asked.
struct BoundSocket {
  UniqueFd fd;
  uint16_t port = 0;
};

BoundSocket bindLoopback(bool listen) {
  BoundSocket s;
  s.fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (!s.fd || ::bind(s.fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) return {};
  if (listen && ::listen(s.fd.get(), 4) != 0) return {};
  if (::getsockname(s.fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return {};
  s.port = ntohs(addr.sin_port);
  return s;
}

TEST(Net, PortIsInUseWhileListeningAndFreeAfterClose) {
  BoundSocket listener = bindLoopback(true);
  ASSERT_NE(listener.port, 0);
  EXPECT_TRUE(tcpPortInUse(listener.port));
  listener.fd.reset();
  EXPECT_FALSE(tcpPortInUse(listener.port));
}

TEST(Net, PortHeldByAnIpv6ListenerIsInUse) {
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) GTEST_SKIP() << "no IPv6 here";
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  socklen_t len = sizeof addr;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) GTEST_SKIP() << "no ::1 here";
  ASSERT_EQ(::listen(fd.get(), 4), 0);
  ASSERT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  EXPECT_TRUE(tcpPortInUse(ntohs(addr.sin6_port)));
}

TEST(Net, PortAcceptsWhileListeningAndNotAfterClose) {
  BoundSocket listener = bindLoopback(true);
  ASSERT_NE(listener.port, 0);
  EXPECT_TRUE(tcpPortAccepts(listener.port, 2000));
  listener.fd.reset();
  EXPECT_FALSE(tcpPortAccepts(listener.port, 2000));
}

TEST(Net, BoundButNotListeningPortRefusesConnections) {
  BoundSocket bound = bindLoopback(false);
  ASSERT_NE(bound.port, 0);
  EXPECT_FALSE(tcpPortAccepts(bound.port, 2000));
}

}  // namespace
}  // namespace hv::os
