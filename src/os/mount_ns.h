// MountPlan: the file-system view of an account's program, applied in its own
// mount namespace (mount_namespaces(7)).
//
// The daemon builds a plan with buildMountPlan() — every path resolved, every
// string made — and applies it once per account: MountNamespace::make() runs
// apply() in a child cloned with CLONE_NEWNS (as root: mounting needs
// CAP_SYS_ADMIN) and keeps the namespace by descriptor; each run then joins it
// (SpawnRequest::mountNs, setns). A plan can also be applied per spawn
// (SpawnRequest::mounts: the child clones its own namespace; tests, probes).
// The host network and pid namespaces are kept (a PID-1 program would ignore
// SIGTERM). apply() makes every mount private first (MS_REC|MS_PRIVATE), so
// nothing propagates back to the host, and the namespace and its tmpfs
// instances vanish with the last process in it and the last descriptor of it. Order:
//   1. clone the account's home (open_tree) while it is still reachable;
//   2. recursive read-only, nosuid, nodev binds of the system directories
//      (mount_setattr(2) with AT_RECURSIVE, so submounts such as a
//      container's /etc/hosts are covered; before Linux 5.12 only the top
//      mount is remounted read-only);
//   3. fresh tmpfs (mode 1777, nosuid, nodev) on /tmp, /var/tmp, /dev/shm, /run/lock;
//   4. with hideOtherHomes a tmpfs on the homes root, the account's own home
//      placed back at its path (move_mount(2)), still writable (without it,
//      a home below a read-only directory is read-only);
//   5. an empty read-only tmpfs over each hidden path (the daemon's data dir);
//   6. chdir("/"), so the daemon's working directory is not carried in.
// A path that is missing or a symbolic link when the plan is built is skipped
// (it hides nothing / is covered by its target); one that vanishes before
// spawn makes apply() fail, and spawn (or MountNamespace::make) reports step
// "mount" naming it. Build a plan right before the namespace it is for. Not thread-safe to build;
// read-only once built.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "os/cgroup.h"  // MechanismReport

namespace hv::os {

// /usr /bin /sbin /lib /lib64 /etc /boot /opt
std::vector<std::string> defaultReadOnlyDirs();

struct MountOptions {
  bool privateTmp = true;           // tmpfs on /tmp, /var/tmp, /dev/shm, /run/lock
  uint64_t tmpSizeBytes = 0;        // size= of each (and nr_inodes = size / 8 KiB, at least
                                    // 1,024); 0 = tmpfs's defaults (half of RAM). Pages are
                                    // charged to the writer's memory cgroup, but they stay
                                    // when it is gone: the cap is what bounds them
  std::vector<std::string> readOnly = defaultReadOnlyDirs();
  bool hideOtherHomes = false;      // tmpfs on homesRoot, only `home` put back
  std::string homesRoot = "/home";
  std::string home;                 // the account's home: stays visible and writable
  std::vector<std::string> hidePaths;  // directories, e.g. the daemon's data dir
};

class MountPlan {
 public:
  // Child side (between clone and exec, in the new mount namespace): system
  // calls only, no allocation. Returns 0, or the errno with *failedOp set to
  // the index of the step that failed (size() for the final chdir).
  int apply(int* failedOp) const noexcept;

  size_t size() const { return ops_.size(); }
  // Same steps on the same files: paths, options, and the device and inode
  // each path had when the plan was built (a home deleted and made again is
  // another plan).
  bool operator==(const MountPlan& other) const = default;
  // Step `op` for an error message: "read-only bind of /usr", "tmpfs on /tmp".
  std::string describe(int op) const;
  // The whole plan in one line, for the mechanism table.
  std::string summary() const;
  // A digest of every step (kind, path, options, flags, device, inode): the
  // same plan built again gives the same string, across builds too. For
  // recognizing a namespace made from it after a daemon restart.
  std::string fingerprint() const;

 private:
  friend class MountPlanBuilder;
  enum class Kind { kMakePrivate, kCloneTree, kReadOnly, kTmpfs, kHomesRoot, kMkdir, kPlaceTree, kHide };
  struct Op {
    Kind kind;
    std::string path;
    std::string data;         // tmpfs options
    unsigned long flags = 0;  // MS_* for tmpfs
    uint64_t dev = 0, ino = 0;  // of `path` when built; 0 if it did not exist
    bool operator==(const Op&) const = default;
  };
  static int applyOp(const Op& op, int& tree) noexcept;

  std::vector<Op> ops_;
  uint64_t tmpSizeBytes_ = 0;  // of its tmpfs steps (in their options too), for summary()
};

// kInvalidArgument for a relative path, a NUL byte, a hidden path that is not
// a directory, or (with hideOtherHomes) a home that is not a directory.
Result<MountPlan> buildMountPlan(const MountOptions& options);

// A mount namespace with `plan` applied, kept by a descriptor for spawns to
// join (SpawnRequest::mountNs): one per account, shared by its runs, instead
// of a namespace per run — a run then costs one setns(2) in place of ~25
// mount calls and a copy of the host's mount table. Its tmpfs instances
// (/tmp, /var/tmp, /dev/shm, /run/lock) live while the descriptor or any process in it
// does, so the account's programs share them. The namespace is a snapshot:
// the owner makes a new one when the plan (a path, or a file behind one)
// or the host's mount table changes (MountTableWatch).
class MountNamespace {
 public:
  // A child clones a new mount namespace, applies the plan and stays alive
  // until the namespace is opened. Errors name the failed step like spawn's
  // "mount" step does; kUnavailable when the kernel refuses (not root).
  static Result<MountNamespace> make(MountPlan plan);
  // A namespace that exists already (`fd` from /proc/PID/ns/mnt of a process
  // in it), which the caller has proven was made from `plan`.
  static MountNamespace adopt(MountPlan plan, UniqueFd fd) { return MountNamespace(std::move(plan), std::move(fd)); }
  // Its nsfs inode: what stat of /proc/PID/ns/mnt says for any process in it.
  uint64_t inode() const;

  const MountPlan& plan() const { return plan_; }
  int fd() const { return fd_.get(); }

 private:
  MountNamespace(MountPlan plan, UniqueFd fd) : plan_(std::move(plan)), fd_(std::move(fd)) {}
  MountPlan plan_;
  UniqueFd fd_;
};

// Whether this process's mount table changed (a mount or unmount anywhere in
// its namespace) since the last call: /proc/self/mountinfo polls POLLPRI on
// a change (proc(5)). The first call reports the changes since construction.
// Also true when mountinfo cannot be opened or polled (rebuild rather than
// trust a stale view).
class MountTableWatch {
 public:
  MountTableWatch();
  bool changed();

 private:
  UniqueFd fd_;
};

// Really tries: a child in a new mount namespace applies `plan`. Degraded
// when the kernel refuses the namespace (EPERM: the daemon lacks
// CAP_SYS_ADMIN, i.e. is not root) or a step fails (named).
MechanismReport probePrivateMounts(const MountPlan& plan);

}  // namespace hv::os
