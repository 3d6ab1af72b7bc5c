#include "os/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>

#include "base/unique_fd.h"

namespace hv::os {
namespace {

enum class BindProbe { kFree, kInUse, kNoFamily };

// Binds (never listens) a throwaway socket to the wildcard address of `family`.
// SO_REUSEADDR lets TIME_WAIT leftovers through but, on Linux, not a socket in
// LISTEN state on any address of that port (socket(7)).
BindProbe probeBind(int family, uint16_t port) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    // No IPv6 in this kernel: nothing can listen there.
    if (family == AF_INET6 && errno == EAFNOSUPPORT) return BindProbe::kNoFamily;
    return BindProbe::kInUse;  // cannot check (e.g. EMFILE): do not claim it is free
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (family == AF_INET6) {
    // v6 only: the v4 side is probed separately, and a dual-stack bind would
    // fail for a v4 listener and hide which family holds the port.
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    addr.sin6_port = htons(port);
    rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(port);
    rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (rc == 0) return BindProbe::kFree;
  if (errno == EADDRINUSE) return BindProbe::kInUse;
  // IPv6 disabled by sysctl: socket() works but :: is not a local address.
  if (family == AF_INET6 && (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT)) return BindProbe::kNoFamily;
  return BindProbe::kInUse;
}

// Waits for a non-blocking connect to finish; false on timeout or error.
bool awaitConnect(int fd, int timeoutMs) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left < 0) left = 0;
    struct pollfd pfd {fd, POLLOUT, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    // connect(2): after EINPROGRESS, SO_ERROR tells how the connection ended.
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return false;
    return err == 0;
  }
}

}  // namespace

// A probe that cannot run (out of fds, ...) answers "in use": callers pick
// free ports with it and must not pick one they could not check.
bool tcpPortInUse(uint16_t port) {
  if (probeBind(AF_INET, port) == BindProbe::kInUse) return true;
  return probeBind(AF_INET6, port) == BindProbe::kInUse;
}

bool tcpPortAccepts(uint16_t port, int timeoutMs) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return true;
  if (errno != EINPROGRESS && errno != EINTR) return false;
  return awaitConnect(fd.get(), timeoutMs);
}

}  // namespace hv::os
