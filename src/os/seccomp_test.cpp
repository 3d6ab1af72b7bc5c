#include "os/seccomp.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include "os/spawn.h"
#include "os/test_helpers.h"

namespace hv::os {
namespace {

using testing::ChildReaper;
using testing::makePipe;
using testing::Pipe;
using testing::readAll;
using testing::waitExit;

const SeccompProgram& denyList() {
  static const SeccompProgram program = [] {
    auto built = buildDenyListFilter();
    if (!built) {
      ADD_FAILURE() << built.error().message;
      std::abort();
    }
    return std::move(*built);
  }();
  return program;
}

constexpr uid_t kNobody = 65534;

// Runs `python3 -c code` (optionally filtered, optionally as nobody) and
// returns its stdout+stderr once it has exited.
std::string runPython(const std::string& code, bool filtered, bool asNobody) {
  SpawnRequest req;
  req.path = "/usr/bin/python3";
  req.argv = {"python3", "-c", code};
  req.envp = {"PATH=/usr/bin:/bin"};
  if (filtered) req.seccomp = &denyList();
  if (asNobody) req.uid = req.gid = kNobody;
  Pipe out = makePipe();
  req.stdoutFd = req.stderrFd = out.write.get();
  Result<Child> child = spawn(req);
  if (!child) return "spawn: " + child.error().message;
  ChildReaper reaper(child->pidfd.get());
  out.write.reset();
  std::string text = readAll(out.read.get());
  EXPECT_TRUE(waitExit(child->pidfd.get()));
  return text;
}

// A python prelude: call(r) names the errno of a failed ctypes call.
const std::string kPrelude = R"(
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def call(r):
    return 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()]
def sock(*args):
    try:
        socket.socket(*args).close()
        return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
)";

// Each row: label -> python expression giving 'ok' or an errno name.
std::map<std::string, std::string> runTable(const std::map<std::string, std::string>& rows, bool filtered,
                                            bool asNobody) {
  std::string code = kPrelude;
  for (const auto& [label, expr] : rows) code += "print('" + label + "=' + " + expr + ", flush=True)\n";
  std::istringstream lines(runPython(code, filtered, asNobody));
  std::map<std::string, std::string> results;
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find('=');
    results[line.substr(0, eq)] = eq == std::string::npos ? line : line.substr(eq + 1);
  }
  return results;
}

bool isRoot() { return ::geteuid() == 0; }

TEST(Seccomp, BuildsARawBpfProgramThatSurvivesAMove) {
  auto built = buildDenyListFilter();
  ASSERT_TRUE(built) << built.error().message;
  EXPECT_GT(built->instructionCount(), 50u);
  EXPECT_EQ(built->prog()->len, built->instructionCount());
  const sock_filter* first = built->prog()->filter;
  SeccompProgram moved(std::move(*built));
  EXPECT_EQ(moved.prog()->filter, first);
  EXPECT_EQ(moved.prog()->len, moved.instructionCount());
}

TEST(Seccomp, NeedsNoNewPrivs) {
  SpawnRequest req;
  req.path = "/bin/true";
  req.argv = {"true"};
  req.noNewPrivs = false;
  req.seccomp = &denyList();
  Result<Child> child = spawn(req);
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().code, Errc::kInvalidArgument);
}

TEST(Seccomp, DeniesDangerousCallsEvenToRoot) {
  if (!isRoot()) GTEST_SKIP() << "the control run needs root";
  std::string dir = std::filesystem::current_path().string() + "/hv_seccomp_mnt." + std::to_string(::getpid());
  std::error_code ec;
  ASSERT_TRUE(std::filesystem::create_directory(dir, ec)) << dir;
  const std::string clone = std::to_string(SYS_clone), clone3 = std::to_string(SYS_clone3);
  const std::map<std::string, std::string> rows = {
      {"userns", "call(libc.unshare(0x10000000))"},
      {"netns", "call(libc.unshare(0x40000000))"},
      {"mountns", "call(libc.unshare(0x20000))"},
      {"clone_newnet", "call(libc.syscall(" + clone + ", 0x40000000 | 17, 0, 0, 0, 0) or os._exit(0))"},
      {"clone3", "call(libc.syscall(" + clone3 + ", None, 0))"},
      {"io_uring", "call(libc.syscall(" + std::to_string(SYS_io_uring_setup) + ", 1, None))"},
      {"setns", "call(libc.setns(os.open('/proc/self/ns/net', os.O_RDONLY), 0))"},
      {"raw4", "sock(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)"},
      {"raw4_cloexec", "sock(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.IPPROTO_ICMP)"},
      {"raw6", "sock(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)"},
      {"packet", "sock(socket.AF_PACKET, socket.SOCK_RAW, 0)"},
      {"netlink_diag", "sock(socket.AF_NETLINK, socket.SOCK_RAW, 4)"},
      {"mount", "call(libc.mount(b'none', b'" + dir + "', b'tmpfs', 0, None))"},
      {"bpf", "call(libc.syscall(" + std::to_string(SYS_bpf) + ", 5, None, 0))"},
      {"perf", "call(libc.syscall(" + std::to_string(SYS_perf_event_open) + ", None, 0, -1, -1, 0))"},
      {"keyctl", "call(libc.syscall(" + std::to_string(SYS_keyctl) + ", 0, -3, 0))"},
      {"personality", "call(libc.personality(0x0040000))"},
      {"module", "call(libc.syscall(" + std::to_string(SYS_delete_module) + ", b'hv_none', 0))"},
  };
  auto filtered = runTable(rows, true, false);
  auto unfiltered = runTable(rows, false, false);
  while (::umount2(dir.c_str(), MNT_DETACH) == 0) {  // the unfiltered control mounted it (a broken filter too)
  }
  std::filesystem::remove(dir, ec);
  for (const auto& [label, expr] : rows) {
    bool fallback = label == "clone3" || label == "io_uring";  // ENOSYS: the caller falls back
    EXPECT_EQ(filtered[label], fallback ? "ENOSYS" : "EPERM") << label;
  }
  // The controls: root without the filter is let through (or fails otherwise).
  for (const char* label : {"userns", "raw4", "raw6", "packet", "mount", "netlink_diag", "clone_newnet"}) {
    EXPECT_EQ(unfiltered[label], "ok") << label;
  }
  EXPECT_NE(unfiltered["bpf"], "EPERM");
}

TEST(Seccomp, DeniesANewUserNamespaceToTheAccount) {
  if (!isRoot()) GTEST_SKIP() << "dropping to nobody needs root";
  auto results = runTable({{"userns", "call(libc.unshare(0x10000000))"}}, true, true);
  EXPECT_EQ(results["userns"], "EPERM");
}

TEST(Seccomp, DeniesPtraceOfASibling) {
  if (!isRoot()) GTEST_SKIP() << "dropping to nobody needs root";
  std::string code = kPrelude + R"(
import subprocess
p = subprocess.Popen(['sleep', '30'])
attach = call(libc.ptrace(16, p.pid, None, None))
buf = ctypes.create_string_buffer(8)
iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
vm = call(libc.process_vm_readv(p.pid, iov, 1, iov, 1, 0))
p.kill()
p.wait()
print(attach, vm)
)";
  EXPECT_EQ(runPython(code, true, true), "EPERM EPERM\n");
}

TEST(Seccomp, LetsOrdinaryProgramsWork) {
  if (!isRoot()) GTEST_SKIP() << "dropping to nobody needs root";
  std::string code = kPrelude + R"(
import subprocess, threading
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(('127.0.0.1', 0)); srv.listen()
cli = socket.create_connection(srv.getsockname(), timeout=5)
conn, _ = srv.accept(); cli.sendall(b'x'); assert conn.recv(1) == b'x'
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(('127.0.0.1', 0))
udp.sendto(b'y', udp.getsockname()); assert udp.recv(1) == b'y'
pid = os.fork()
if pid == 0: os._exit(7)
assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
t = threading.Thread(target=lambda: None); t.start(); t.join()
assert subprocess.run(['sh', '-c', 'echo $((1+1))'], capture_output=True).stdout == b'2\n'
assert 'lo' in [name for _, name in socket.if_nameindex()]
assert b'lo' in subprocess.run(['ip', '-o', 'addr'], capture_output=True).stdout
print(sock(socket.AF_UNIX, socket.SOCK_STREAM), sock(socket.AF_NETLINK, socket.SOCK_RAW, 0),
      call(libc.personality(0)))
)";
  EXPECT_EQ(runPython(code, true, true), "ok ok ok\n");
}

// int $0x80 from 64-bit code enters the i386 ABI (AUDIT_ARCH_I386); the
// __X32_SYSCALL_BIT marks the x32 one. Neither may bypass the filter.
long i386Syscall(long nr, long arg) {
  long ret;
  asm volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(arg) : "r8", "r9", "r10", "r11", "memory");
  return ret;
}
constexpr long kI386Unshare = 310, kI386Getpid = 20, kX32Bit = 0x40000000, kX32Unshare = 272;

// arg: the filter to install first, or nullptr.
void compatChild(const void* arg, int report[2]) {
  const auto* filter = static_cast<const SeccompProgram*>(arg);
  if (filter != nullptr && (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || filter->install() != 0)) {
    report[0] = report[1] = -1;
    return;
  }
  report[0] = static_cast<int>(i386Syscall(kI386Unshare, CLONE_NEWUSER));
  report[1] = ::syscall(kX32Bit | kX32Unshare, CLONE_NEWUSER) == 0 ? 0 : errno;
}

void getpidChild(const void*, int report[2]) { report[0] = static_cast<int>(i386Syscall(kI386Getpid, 0)); }

TEST(Seccomp, ThirtyTwoBitAbisCannotBypassIt) {
#if defined(__x86_64__)
  auto probe = runInChild(&getpidChild, nullptr, false);
  if (!probe || (*probe)[0] < 0) GTEST_SKIP() << "no IA-32 emulation in this kernel";
  auto filtered = runInChild(&compatChild, &denyList(), false);
  ASSERT_TRUE(filtered) << filtered.error().message;
  EXPECT_EQ((*filtered)[0], -EPERM);
  EXPECT_NE((*filtered)[1], 0);  // EPERM, or ENOSYS from a kernel without x32
  if (isRoot()) {
    auto unfiltered = runInChild(&compatChild, nullptr, false);
    ASSERT_TRUE(unfiltered);
    EXPECT_EQ((*unfiltered)[0], 0) << "control: the i386 unshare works unfiltered";
  }
#else
  GTEST_SKIP() << "x86_64 only";
#endif
}

TEST(Seccomp, ProbeReportsEnforced) {
  MechanismReport report = probeSeccomp(denyList());
  EXPECT_TRUE(report.enforced) << report.detail;
  EXPECT_EQ(report.name, "syscall filter");
}

// A daemon that is not root still filters its children (no_new_privs).
TEST(Seccomp, ProbeReportsEnforcedForANonRootDaemon) {
  if (!isRoot()) GTEST_SKIP() << "becoming nobody needs root";
  const SeccompProgram& program = denyList();
  pid_t pid = ::fork();  // this test process is single-threaded here
  if (pid == 0) {
    bool dropped = ::setresgid(kNobody, kNobody, kNobody) == 0 && ::setresuid(kNobody, kNobody, kNobody) == 0;
    ::_exit(dropped && probeSeccomp(program).enforced ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  ASSERT_TRUE(pidfd);
  auto status = waitExit(pidfd.get());
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
}

}  // namespace
}  // namespace hv::os
