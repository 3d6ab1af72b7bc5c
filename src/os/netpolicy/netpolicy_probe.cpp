// The start-up probe: proves each hook by having a child in a policed cgroup
// try what the policy forbids, on loopback only (port 9, "discard", so a
// hook that lets something through harms nothing). Between clone3 and
// _exit the child only makes system calls on memory prepared before.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>

#include "base/scope_exit.h"
#include "base/unique_fd.h"
#include "os/cgroup_dir.h"
#include "os/process.h"
#include "os/netpolicy/netpolicy.h"
#include "os/netpolicy/netpolicy_internal.h"

namespace hv::os::netpolicy {
namespace {

constexpr uint16_t kAssignedPort = 1;  // the probe policy's listen port
constexpr uint16_t kTargetPort = 9;    // where the child connects and sends
constexpr uint64_t kClonePidfd = 0x1000;  // CLONE_PIDFD

using Report = ProbeReport;

struct Addresses {
  sockaddr_in any4{}, lo4{};
  sockaddr_in6 any6{}, lo6{}, mapped6{};
};

Addresses addresses() {
  Addresses a;
  a.any4.sin_family = a.lo4.sin_family = AF_INET;
  a.lo4.sin_port = htons(kTargetPort);
  a.lo4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.any6.sin6_family = a.lo6.sin6_family = a.mapped6.sin6_family = AF_INET6;
  a.lo6.sin6_port = a.mapped6.sin6_port = htons(kTargetPort);
  a.lo6.sin6_addr = in6addr_loopback;
  ::inet_pton(AF_INET6, "::ffff:127.0.0.1", &a.mapped6.sin6_addr);
  return a;
}

int openSocket(int family, int type) {
  int s = ::socket(family, type | SOCK_CLOEXEC, 0);
  if (s < 0 && errno == EAFNOSUPPORT) errno = 0;
  return s;
}

// Each returns 0 when the kernel let it through, else the errno.
template <class Addr>
int tryOp(int family, int type, const Addr& addr, int op) {
  int s = openSocket(family, type);
  if (s < 0) return errno == 0 ? kNoFamily : errno;
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr);
  if (op == 1) {
    // Blocking, bounded: a refusal by reset (nftables) arrives after connect()
    // would have returned EINPROGRESS; a drop shows as EINPROGRESS after 1 s.
    struct timeval limit {1, 0};
    ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  }
  int rc = op == 0   ? ::bind(s, sa, sizeof addr)
           : op == 1 ? ::connect(s, sa, sizeof addr)
                     : static_cast<int>(::sendto(s, "x", 1, 0, sa, sizeof addr));
  int err = rc < 0 ? errno : 0;
  ::close(s);
  return err;
}

// `closeFds`: the parent's ends of the pipes, which the child must not hold.
[[noreturn]] void runProbeChild(const Addresses& a, int procsFd, int64_t uid, int reportFd, int holdFd,
                               const int (&closeFds)[2]) {
  for (int fd : closeFds) ::close(fd);
  Report r;
  if (procsFd >= 0 && ::write(procsFd, "0", 1) != 1) {
    r.enterErrno = errno;
  } else if (uid >= 0 && (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, uid, uid, uid) != 0 ||
                          ::syscall(SYS_setresuid, uid, uid, uid) != 0)) {
    r.enterErrno = errno;
  } else {
    r.result[kTryBind4] = tryOp(AF_INET, SOCK_STREAM, a.any4, 0);
    r.result[kTryBind6] = tryOp(AF_INET6, SOCK_STREAM, a.any6, 0);
    r.result[kTryConnect4] = tryOp(AF_INET, SOCK_STREAM, a.lo4, 1);
    r.result[kTryConnect6] = tryOp(AF_INET6, SOCK_STREAM, a.lo6, 1);
    r.result[kTryConnectMapped] = tryOp(AF_INET6, SOCK_STREAM, a.mapped6, 1);
    r.result[kTrySend4] = tryOp(AF_INET, SOCK_DGRAM, a.lo4, 2);
    r.result[kTrySend6] = tryOp(AF_INET6, SOCK_DGRAM, a.lo6, 2);
    r.result[kTrySendMapped] = tryOp(AF_INET6, SOCK_DGRAM, a.mapped6, 2);
    // listen() without bind(): the kernel picks the port (inet_autobind).
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in bound{};
    socklen_t len = sizeof bound;
    if (s < 0 || ::listen(s, 1) != 0 || ::getsockname(s, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
      r.result[kTryListen] = errno;
    } else {
      r.listenPort = ntohs(bound.sin_port);
    }
  }
  (void)!::write(reportFd, &r, sizeof r);
  char c;
  (void)!::read(holdFd, &c, 1);  // until the parent is done connecting
  ::_exit(0);
}

std::string seen(int result) {
  if (result == 0) return "it succeeded";
  return "it failed with " + errnoName(result) + ", not EPERM";
}

ProbeOutcome judge(std::initializer_list<int> results, const char* blocked) {
  bool noFamily = true;
  for (int r : results) {
    if (r != kNoFamily) noFamily = false;
    if (r != kNoFamily && r != EPERM) return {false, std::string("probe: ") + blocked + ", yet " + seen(r)};
  }
  if (noFamily) return {true, "IPv6 is not available on this host"};
  return {true, std::string("probe: ") + blocked + " fails with EPERM"};
}

// Connects from here (no policy) to the child's autobound listener: the
// ingress program must drop the SYN and count it. Bounded: 1 s.
}  // namespace

ProbeOutcome judgeIngress(const Enforcer& policy, uint64_t id, uint16_t port) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!s || (::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS)) {
    return {false, "probe: could not connect to the test listener: " + errnoName(errno)};
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < deadline) {
    Result<BlockedCounts> counts = policy.blocked(id);
    if (counts && counts->ingress > 0) return {true, "probe: a SYN to a listener on an unassigned port is dropped"};
    struct pollfd pfd {s.get(), POLLOUT, 0};
    if (::poll(&pfd, 1, 10) == 1) {
      // A reset (nftables' reject) is counted before it reaches us.
      if (Result<BlockedCounts> now = policy.blocked(id); now && now->ingress > 0) {
        return {true, "probe: a SYN to a listener on an unassigned port is refused"};
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      return {false, "probe: a listener on an unassigned port got " +
                         (err == 0 ? std::string("a connection") : "the connection answered with " + errnoName(err))};
    }
  }
  return {false, "probe: no drop was counted within 1 s"};
}

namespace {

void removeProbeCgroup(const std::string& path) {
  // A reaped child may take a moment to leave; bounded retry on EBUSY.
  for (int i = 0; i < 100 && ::rmdir(path.c_str()) != 0 && errno == EBUSY; ++i) {
    struct pollfd none {-1, 0, 0};
    ::poll(&none, 1, 10);
  }
}

}  // namespace

Status runProbe(int procsFd, int64_t uid, const std::function<void(const ProbeReport&)>& judge) {
  int reportPipe[2], holdPipe[2];
  if (::pipe2(reportPipe, O_CLOEXEC) != 0) return failErrno("pipe", errno);
  UniqueFd reportRead(reportPipe[0]), reportWrite(reportPipe[1]);
  if (::pipe2(holdPipe, O_CLOEXEC) != 0) return failErrno("pipe", errno);
  UniqueFd holdRead(holdPipe[0]), holdWrite(holdPipe[1]);
  const Addresses addrs = addresses();

  int pidfd = -1;
  uint64_t args[11] = {};  // struct clone_args, clone3(2): flags, pidfd, ..., exit_signal
  args[0] = kClonePidfd;
  args[1] = reinterpret_cast<uint64_t>(&pidfd);
  args[4] = SIGCHLD;
  long pid = ::syscall(SYS_clone3, args, sizeof args);
  if (pid < 0) return failErrno("clone3", errno);
  if (pid == 0) runProbeChild(addrs, procsFd, uid, reportWrite.get(), holdRead.get(), {reportRead.get(), holdWrite.get()});
  UniqueFd child(pidfd);
  reportWrite.reset();
  holdRead.reset();
  ScopeExit reap([&] {
    holdWrite.reset();  // the child's read returns: it exits
    struct pollfd pfd {child.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 2000) != 1) (void)sendSignal(child.get(), SIGKILL);
    siginfo_t info{};
    ::waitid(P_PIDFD, static_cast<id_t>(child.get()), &info, WEXITED);
  });

  Report r;
  struct pollfd pfd {reportRead.get(), POLLIN, 0};
  // Six connects of at most 1 s each if something drops instead of refusing.
  if (::poll(&pfd, 1, 8000) != 1 || ::read(reportRead.get(), &r, sizeof r) != static_cast<ssize_t>(sizeof r)) {
    return fail(Errc::kInternal, "the probe child did not report within 8 s");
  }
  if (r.enterErrno != 0) return failErrno(procsFd >= 0 ? "joining the probe cgroup" : "becoming the probe user", r.enterErrno);
  judge(r);
  return {};
}

std::array<ProbeOutcome, kHookCount> probeHooks(NetPolicy& policy, const std::string& root) {
  std::array<ProbeOutcome, kHookCount> out;
  auto failAll = [&out](const std::string& why) {
    for (ProbeOutcome& o : out) o = {false, "attached, but the probe could not run: " + why};
    return out;
  };
  const std::string path = root + "/.netpolicy-probe";
  removeProbeCgroup(path);  // left by a daemon that died while probing
  Result<CgroupDir> dir = CgroupDir::make(path);
  if (!dir) return failAll(dir.error().message);
  ScopeExit removeDir([&] { removeProbeCgroup(path); });
  Result<uint64_t> id = cgroupIdOf(path);
  if (!id) return failAll(id.error().message);
  if (Status ok = policy.set(*id, InstancePolicy{kAssignedPort, {}}); !ok) return failAll(ok.error().message);
  ScopeExit clearPolicy([&] { (void)policy.clear(*id); });
  Result<UniqueFd> procs = dir->openFile("cgroup.procs", O_WRONLY);
  if (!procs) return failAll(procs.error().message);
  Status ran = runProbe(procs->get(), -1, [&](const ProbeReport& r) {
    out[kBind4] = judge({r.result[kTryBind4]}, "bind() to an unassigned port");
    out[kBind6] = judge({r.result[kTryBind6]}, "bind() to an unassigned port");
    out[kConnect4] = judge({r.result[kTryConnect4]}, "connect() to unlisted 127.0.0.1");
    out[kConnect6] = judge({r.result[kTryConnect6], r.result[kTryConnectMapped]},
                           "connect() to unlisted ::1 and ::ffff:127.0.0.1");
    out[kSendmsg4] = judge({r.result[kTrySend4]}, "sendto() unlisted 127.0.0.1");
    out[kSendmsg6] = judge({r.result[kTrySend6], r.result[kTrySendMapped]}, "sendto() unlisted ::1 and ::ffff:127.0.0.1");
    if (r.listenPort == 0) {
      out[kIngress] = {false, "probe: listen() without bind() failed: " + errnoName(r.result[kTryListen])};
    } else {
      out[kIngress] = judgeIngress(policy, *id, r.listenPort);
    }
  });
  if (!ran) return failAll(ran.error().message);
  return out;
}

void removeProbeDir(const std::string& path) { removeProbeCgroup(path); }

}  // namespace hv::os::netpolicy
