// spawn(): starts a program the way the supervisor needs it, and reports the
// exact step that failed.
//
// Uses clone3(CLONE_PIDFD) so the parent tracks the child by pidfd from birth
// (no pid-reuse race); on x86-64 with CLONE_VM|CLONE_VFORK like posix_spawn,
// so no page tables are copied and the caller sleeps until the exec. Everything the child needs (argv, envp, paths) is built
// before the clone; between clone and exec the child only makes system calls,
// never allocates or locks, and on failure writes {step, errno, index} to a
// CLOEXEC pipe and _exit(127)s. The parent reads that pipe: EOF means exec
// succeeded.
// May be called from any thread; blocks only until the child execs or fails.
//
// Sandbox (both optional): with `mounts` the child is cloned into a new mount
// namespace (CLONE_NEWNS) and applies the plan while still root (mount_ns.h),
// or with `mountNs` joins one prepared earlier (setns, no mount of its own);
// with `seccomp` it installs the filter as its very last step before execve
// (seccomp.h).
#pragma once

#include <sys/types.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace hv::os {

class MountPlan;
class SeccompProgram;

struct SpawnRequest {
  std::string path;                  // absolute path of the executable
  std::vector<std::string> argv;     // argv[0] included
  std::vector<std::string> envp;     // "K=V", the complete environment
  std::string cwd;                   // chdir target; empty = don't chdir
  int stdinFd = -1;                  // -1 = /dev/null
  int stdoutFd = -1;                 // -1 = /dev/null
  int stderrFd = -1;                 // -1 = /dev/null
  // Credentials to drop to (only applied when they differ from the caller's).
  // When either one really changes, setgroups(groups) runs first (an empty
  // list clears the caller's supplementary groups), then setgid, then setuid.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::vector<gid_t> groups;         // supplementary groups (with gid/uid)
  bool newSession = true;            // setsid(): its own process group
  bool noNewPrivs = true;            // PR_SET_NO_NEW_PRIVS
  int rlimitNofile = 0;              // 0 = inherit; else soft = hard = this
  // Cgroups the child is in before it runs anything (cgroup.h RunCgroup).
  // cgroupFd: a v2 cgroup directory, entered by clone3(CLONE_INTO_CGROUP);
  // when the kernel refuses that (EBUSY, EOPNOTSUPP, or too old: EINVAL,
  // E2BIG) the child writes its pid to that cgroup's cgroup.procs instead.
  // joinCgroupFds: open cgroup.procs files (v1) the child writes "0" to —
  // itself — first thing, while still root.
  int cgroupFd = -1;                 // -1 = stay in the caller's v2 cgroup
  std::vector<int> joinCgroupFds;
  // Both must outlive the call. A filter requires noNewPrivs (the kernel
  // refuses one without it to a process lacking CAP_SYS_ADMIN, seccomp(2)).
  // Private mounts need a root caller: otherwise clone3 fails with EPERM
  // (ask probePrivateMounts() first).
  const SeccompProgram* seccomp = nullptr;  // nullptr = no syscall filter
  // Landlock (landlock.h): the program may connect only to abstract unix
  // sockets of its own process tree. Requires noNewPrivs.
  bool scopeAbstractUnix = false;
  const MountPlan* mounts = nullptr;        // nullptr = the caller's mount namespace
  // Or: a mount namespace to join (setns, CLONE_NEWNS), e.g. the account's
  // that MountNamespace::make() prepared; the child's first step, while
  // still root. Excludes `mounts`. -1 = none.
  int mountNs = -1;
};

// How the child entered SpawnRequest::cgroupFd.
enum class CgroupEntry {
  kNone,             // no cgroupFd asked for
  kCloneIntoCgroup,  // born there: clone3(CLONE_INTO_CGROUP)
  kProcsFile,        // the kernel refused that; the child wrote cgroup.procs
};

struct Child {
  pid_t pid = -1;
  UniqueFd pidfd;                    // O_CLOEXEC, pollable: readable when it exits
  CgroupEntry cgroupEntry = CgroupEntry::kNone;
};

// On failure, Error.step names the step ("pipe", "clone3", "cgroup", "mount",
// "setns", "dup2", "chdir", "setsid", "setgroups", "setgid", "setuid", "prctl",
// "setrlimit", "landlock", "seccomp", "exec", "unshare": a descriptor table of its own) and Error.sysErrno its errno; the message
// reads e.g. "exec /home/a/srv.sh failed: Permission denied" or "mount
// read-only bind of /usr failed: ...". Code kInvalidArgument when exec or
// chdir fail with ENOENT/EACCES/ENOEXEC/ENOTDIR (a bad path in the request),
// kUnavailable when private mounts are refused (clone3 EPERM: not root),
// kInternal otherwise.
Result<Child> spawn(const SpawnRequest& request);

// Sets aside blocks × 8 contiguous descriptor numbers (each holding /dev/null)
// so that spawn() can share its descriptor table with the child (CLONE_FILES)
// instead of copying it: the caller binds what the child needs into a free
// block, and the child's first system call takes a table of its own holding
// only the reserved numbers (close_range(CLOSE_RANGE_UNSHARE)). With a
// thousand instances the daemon holds ~3,000 descriptors, and copying them at
// clone3 and closing them at execve was ~6 % of a cold start's CPU. Call
// early, before the process opens many descriptors (the numbers below the
// block are copied too, then closed); once per process, later calls do
// nothing. Spawns that find every block lent, and every spawn before this
// call or off x86-64, copy the table as before. Blocks: 1 to 64.
Status reserveSpawnSlots(int blocks);

// For mechanism probes (seccomp.h, mount_ns.h): runs fn(arg, report) in a
// clone3 child — in a new mount namespace if newMountNs — and returns the
// two ints fn left in `report` once the child has exited. fn runs under the
// child rules above (system calls only, no allocation, no locks).
using ProbeFn = void (*)(const void* arg, int report[2]);
Result<std::array<int, 2>> runInChild(ProbeFn fn, const void* arg, bool newMountNs);

// The same in a new mount namespace that outlives the child: when fn reports
// success (report[0] == 0), `ns` receives a descriptor of that namespace
// (/proc/PID/ns/mnt, opened before the child is killed), which keeps it and
// its mounts alive for later setns(2) (SpawnRequest::mountNs).
Result<std::array<int, 2>> runInNewMountNs(ProbeFn fn, const void* arg, UniqueFd& ns);

}  // namespace hv::os
