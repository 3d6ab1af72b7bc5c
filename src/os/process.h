// Process helpers around pidfds: signalling, reaping, and identity checks.
// Thread-safe (each call is a system call on fds the caller owns).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

#include "base/result.h"
#include "base/unique_fd.h"

namespace hv::os {

struct ExitStatus {
  bool signaled = false;  // killed by a signal
  int code = 0;           // exit code, or the signal number when signaled
  bool coreDumped = false;
};

// pidfd_send_signal(2): never hits a recycled pid. kNotFound (ESRCH) when
// the process is already gone and reaped.
Status sendSignal(int pidfd, int sig);

// waitid(P_PIDFD, WEXITED|WNOHANG): the exit status if the child has exited
// (and reaps it), std::nullopt if it is still running. For a process that is
// not our child (re-adopted with openPidfd) the status is unknowable: once it
// has exited this returns ExitStatus{signaled = false, code = -1}.
Result<std::optional<ExitStatus>> reap(int pidfd);

// True when our child has exited and is not reaped yet (a zombie: its pid,
// and the process group id it leads, cannot be reused until reap()).
// waitid(WNOWAIT) leaves it a zombie.
bool exitedUnreaped(int pidfd);

// pidfd_open(2) for an existing pid (re-adoption after a daemon restart);
// kNotFound if there is no such process.
Result<UniqueFd> openPidfd(pid_t pid);

// Field 22 of /proc/PID/stat (start time in clock ticks since boot), used
// with the pid to recognise the same process; nullopt if it is gone.
std::optional<uint64_t> processStartTime(pid_t pid);

// Sends `sig` to a whole process group (ESRCH is not an error).
// pgid <= 1 is refused (kInvalidArgument).
Status signalProcessGroup(pid_t pgid, int sig);

// Kills a whole process group with SIGKILL (ESRCH is not an error).
// pgid <= 1 is refused (kInvalidArgument): kill(-1) would hit everything.
Status killProcessGroup(pid_t pgid);

}  // namespace hv::os
