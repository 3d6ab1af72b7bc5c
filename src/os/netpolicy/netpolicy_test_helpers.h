// Test-only helpers for the NetPolicy tests: a fixture that owns a cgroup
// root, a NetPolicy and its pins (all removed in TearDown, even after a
// failed assertion), loopback listeners, and an "attacker": python3 run as
// nobody inside a run cgroup, trying socket operations and printing one
// result per operation ("OK", "EPERM", "ECONNREFUSED", "TIMEOUT", ...).
// Loopback only; every wait is bounded; nothing sleeps.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "os/cgroup.h"
#include "os/netpolicy/netpolicy.h"
#include "os/spawn.h"
#include "os/test_helpers.h"

namespace hv::os::netpolicy::testing {

// Operations (each prints one line):
//   tcp H P | udp H P (sendto) | udpc H P (connect+send) | tfo H P (sendto MSG_FASTOPEN)
//   bindtcp H P | bindudp H P | self P (listen on 127.0.0.1:P, connect to it)
//   listen P (P = 0: listen() without bind()) -> "PORT n", then holds until stdin closes
//   udprecv -> "PORT n" for a UDP socket on an ephemeral port, then the first datagram
inline constexpr const char* kAttackerScript = R"PY(
import errno, socket, sys
def fam(h): return socket.AF_INET6 if ":" in h else socket.AF_INET
def tcp(h, p):
    s = socket.socket(fam(h), socket.SOCK_STREAM); s.settimeout(5); s.connect((h, p))
def udp(h, p):
    socket.socket(fam(h), socket.SOCK_DGRAM).sendto(b"x", (h, p))
def udpc(h, p):
    s = socket.socket(fam(h), socket.SOCK_DGRAM); s.connect((h, p)); s.send(b"x")
def tfo(h, p):
    s = socket.socket(fam(h), socket.SOCK_STREAM); s.settimeout(5)
    s.sendto(b"x", socket.MSG_FASTOPEN, (h, p))
def bindtcp(h, p): socket.socket(fam(h), socket.SOCK_STREAM).bind((h, p))
def bindudp(h, p): socket.socket(fam(h), socket.SOCK_DGRAM).bind((h, p))
def self_(p):
    l = socket.socket(); l.bind(("127.0.0.1", p)); l.listen(); tcp("127.0.0.1", p)
def listen(p):
    s = socket.socket()
    if p: s.bind(("127.0.0.1", p))
    s.listen(); print("PORT", s.getsockname()[1], flush=True); sys.stdin.read()
def udprecv():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
    print("PORT", s.getsockname()[1], flush=True); s.settimeout(5); print(s.recv(64).decode(), flush=True)
ops = {"tcp": tcp, "udp": udp, "udpc": udpc, "tfo": tfo, "bindtcp": bindtcp, "bindudp": bindudp,
       "self": self_, "listen": listen, "udprecv": udprecv}
args = sys.argv[1:]
while args:
    f = ops[args.pop(0)]
    n = f.__code__.co_argcount
    params = [int(x) if x.isdigit() else x for x in args[:n]]; args = args[n:]
    try:
        f(*params); r = "OK"
    except socket.timeout:
        r = "TIMEOUT"
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    print(r, flush=True)
)PY";

inline constexpr int kNobody = 65534;
// The uid attackers run as. Per-user nft rules (meta skuid) police a uid
// host-wide, so a test of them picks a uid of its own (attackerUid = ...):
// ctest runs other tests' attackers as nobody at the same time.
inline int attackerUid = kNobody;

// A socket listening (TCP) or bound (UDP) on loopback, port chosen by the kernel.
struct Listener {
  UniqueFd fd;
  uint16_t port = 0;
};

inline Listener listenOn(const char* host, int type = SOCK_STREAM) {
  const bool v6 = std::string(host).find(':') != std::string::npos;
  Listener l;
  l.fd.reset(::socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0));
  sockaddr_storage ss{};
  socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    ::inet_pton(AF_INET6, host, &a->sin6_addr);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    ::inet_pton(AF_INET, host, &a->sin_addr);
  }
  auto* sa = reinterpret_cast<sockaddr*>(&ss);
  if (!l.fd || ::bind(l.fd.get(), sa, len) != 0 || (type == SOCK_STREAM && ::listen(l.fd.get(), 16) != 0) ||
      ::getsockname(l.fd.get(), sa, &len) != 0) {
    return {};
  }
  l.port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return l;
}

// A free loopback port (bound, then released): for the assigned port.
inline uint16_t freePort() { return listenOn("127.0.0.1").port; }

inline bool haveIpv6Loopback() { return listenOn("::1").port != 0; }

// python3 running kAttackerScript as nobody, born in `run`.
struct Attacker {
  Child child;
  UniqueFd out;    // its stdout
  UniqueFd input;  // its stdin: close it to end "listen"
  std::string line() { return os::testing::readLine(out.get()); }
};

inline std::optional<Attacker> startAttacker(const RunCgroup& run, const std::vector<std::string>& ops) {
  os::testing::Pipe out = os::testing::makePipe();
  os::testing::Pipe in = os::testing::makePipe();
  SpawnRequest req;
  req.path = HV_PYTHON3;
  req.argv = {"python3", "-c", kAttackerScript};
  req.argv.insert(req.argv.end(), ops.begin(), ops.end());
  req.envp = {"PATH=/usr/bin:/bin"};
  req.stdinFd = in.read.get();
  req.stdoutFd = out.write.get();
  req.uid = attackerUid;
  req.gid = attackerUid;
  req.cgroupFd = run.v2DirFd();
  req.joinCgroupFds = run.procsFds();
  Result<Child> child = spawn(req);
  EXPECT_TRUE(child) << (child ? "" : child.error().message);
  if (!child) return std::nullopt;
  return Attacker{std::move(*child), std::move(out.read), std::move(in.write)};
}

// Runs the operations to the end; one result per operation.
inline std::vector<std::string> attack(const RunCgroup& run, const std::vector<std::string>& ops) {
  std::optional<Attacker> a = startAttacker(run, ops);
  if (!a) return {};
  a->input.reset();
  std::vector<std::string> lines;
  for (std::string l = a->line(); !l.empty(); l = a->line()) lines.push_back(l);
  EXPECT_TRUE(os::testing::waitExit(a->child.pidfd.get()));
  return lines;
}

}  // namespace hv::os::netpolicy::testing

namespace hv::os::netpolicy::testing {

// Each test gets its own cgroup root "np-test-<pid>-<n>" (ctest runs tests
// as parallel processes) and its own pin directory of the same name.
// TearDown kills what is left in the root, removes it, removes the pins, and
// waits (bounded) until the kernel has freed every map and link the test saw.
class NetPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // (Re)opens policy_ like the daemon does at start.
  void openPolicy();
  RunCgroup newRun(const std::string& instance = "web");
  uint64_t idOf(const RunCgroup& run);
  BlockedCounts counts(uint64_t id);
  void set(uint64_t id, const InstancePolicy& p);
  const MechanismReport* mechanism(const std::string& row) const;

  std::string name_;
  std::optional<Cgroups> cgroups_;
  std::optional<NetPolicy> policy_;
  uint64_t runs_ = 0;
  std::vector<uint32_t> mapIds_;   // of the pinned maps, as last opened
  std::vector<uint32_t> linkIds_;  // of the pinned links, as last opened
};

// Polls `done` every 10 ms until it holds or `timeoutMs` passed.
template <class F>
bool waitFor(F done, int timeoutMs = os::testing::kWaitMs) {
  for (int waited = 0; !done(); waited += 10) {
    if (waited >= timeoutMs) return false;
    struct pollfd none {-1, 0, 0};
    ::poll(&none, 1, 10);
  }
  return true;
}

inline AllowEntry entry(const char* cidr, uint16_t port, uint8_t protocol = 0) {
  return AllowEntry{Cidr::parse(cidr).value_or(Cidr{}), port, protocol};
}

inline std::vector<std::string> lines(std::initializer_list<const char*> l) { return {l.begin(), l.end()}; }
inline std::string str(uint16_t port) { return std::to_string(port); }

}  // namespace hv::os::netpolicy::testing
