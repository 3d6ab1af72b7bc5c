#include "os/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <charconv>
#include <string>
#include <string_view>

namespace hv::os {
namespace {

ExitStatus toExitStatus(const siginfo_t& info) {
  ExitStatus status;
  switch (info.si_code) {
    case CLD_EXITED:
      status.code = info.si_status;
      break;
    case CLD_DUMPED:
      status.coreDumped = true;
      [[fallthrough]];
    default:  // CLD_KILLED
      status.signaled = true;
      status.code = info.si_status;
      break;
  }
  return status;
}

// A pidfd polls readable once its process has exited (pidfd_open(2)), for any
// process, not only our children.
Result<bool> pidfdExited(int pidfd) {
  struct pollfd pfd {pidfd, POLLIN, 0};
  int n;
  do {
    n = ::poll(&pfd, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return failErrno("poll pidfd", errno);
  return n > 0;
}

// Whole content of a small /proc file; nullopt if it cannot be opened.
std::optional<std::string> readProcFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string out;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;  // ESRCH: the process went away meanwhile
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

Status sendSignal(int pidfd, int sig) {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0) return {};
  int err = errno;
  if (err == ESRCH) return failErrno("pidfd_send_signal", err, Errc::kNotFound);  // already reaped
  return failErrno("pidfd_send_signal", err);
}

// waitid(2) with P_PIDFD reaps only our own children. A pidfd re-opened after a
// daemon restart names a process we did not fork: waitid fails with ECHILD.
// Such a process is reaped by its real parent (init), so its exit status is
// unknown to us: once the pidfd polls readable we report
// ExitStatus{signaled = false, code = -1}.
Result<std::optional<ExitStatus>> reap(int pidfd) {
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    if (info.si_pid == 0) return std::optional<ExitStatus>();  // still running (WNOHANG)
    return std::optional<ExitStatus>(toExitStatus(info));
  }
  int err = errno;
  if (err != ECHILD) return failErrno("waitid", err);
  Result<bool> exited = pidfdExited(pidfd);
  if (!exited) return std::unexpected(exited.error());
  if (!*exited) return std::optional<ExitStatus>();
  return std::optional<ExitStatus>(ExitStatus{false, -1, false});
}

bool exitedUnreaped(int pidfd) {
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG | WNOWAIT);
  } while (rc < 0 && errno == EINTR);
  return rc == 0 && info.si_pid != 0;
}

Result<UniqueFd> openPidfd(pid_t pid) {
  if (pid <= 0) return fail(Errc::kInvalidArgument, "pidfd_open: invalid pid " + std::to_string(pid));
  long fd = ::syscall(SYS_pidfd_open, pid, 0);  // O_CLOEXEC is implied (pidfd_open(2))
  if (fd >= 0) return UniqueFd(static_cast<int>(fd));
  int err = errno;
  if (err == ESRCH) return failErrno("pidfd_open", err, Errc::kNotFound);
  return failErrno("pidfd_open", err);
}

// proc(5): "(2) comm %s — The filename of the executable, in parentheses."
// comm may itself contain spaces and ')', so fields are counted after the
// LAST ')'; the next field is (3) state and starttime is (22).
std::optional<uint64_t> processStartTime(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::optional<std::string> stat = readProcFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return std::nullopt;
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::string_view rest(*stat);
  rest.remove_prefix(close + 1);
  for (int field = 3; field <= 22; ++field) {
    size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) return std::nullopt;
    rest.remove_prefix(start);
    size_t end = std::min(rest.find(' '), rest.size());
    if (field == 22) {
      uint64_t value = 0;
      auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + end, value);
      if (ec != std::errc() || ptr != rest.data() + end) return std::nullopt;
      return value;
    }
    rest.remove_prefix(end);
  }
  return std::nullopt;
}

Status signalProcessGroup(pid_t pgid, int sig) {
  // kill(2): -1 means every process we may signal, 0 our own group: never wanted.
  if (pgid <= 1) return fail(Errc::kInvalidArgument, "signal process group: invalid group " + std::to_string(pgid));
  if (::kill(-pgid, sig) == 0 || errno == ESRCH) return {};
  return failErrno("signal process group " + std::to_string(pgid), errno);
}

Status killProcessGroup(pid_t pgid) { return signalProcessGroup(pgid, SIGKILL); }

}  // namespace hv::os
