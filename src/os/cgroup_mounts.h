// Where the cgroup hierarchies are: which ones are mounted, where
// (/proc/self/mountinfo, proc(5)), and which cgroup a process sits in within
// each (/proc/PID/cgroup, cgroups(7)). Never assumes fixed paths: hosts differ
// (pure v2 under systemd, hybrid with v2 at /sys/fs/cgroup/unified, v1 only).
// Pure parsing plus two readers; no state, thread-safe.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace hv::os {

enum class CgroupLayout {
  kUnified,  // only cgroup2 (with its controllers)
  kHybrid,   // cgroup2 beside v1 controller hierarchies
  kLegacy,   // v1 hierarchies only
  kNone,     // no cgroup filesystem mounted
};

// "unified", "hybrid", "legacy", "none".
std::string_view layoutName(CgroupLayout layout);

struct CgroupMount {
  std::string mountPoint;                // "/sys/fs/cgroup/memory"
  std::string root;                      // the cgroup shown at the mount's top ("/" mostly)
  bool v2 = false;
  std::vector<std::string> controllers;  // v1: "memory", "cpu", ...; empty for v2 and name=
  // Super option "favordynmods" (Linux 6.0+, or CONFIG_CGROUP_FAVOR_DYNMODS):
  // the kernel keeps cgroup_threadgroup_rwsem in its slow-reader mode, so a
  // migration (a write to cgroup.procs) no longer waits for an RCU grace
  // period, at some cost to fork and exit. The rwsem is global: one
  // hierarchy with it speeds up migrations in all.
  bool favorDynmods = false;
};

struct CgroupMembership {
  int hierarchyId = 0;                   // 0 is the v2 hierarchy
  std::vector<std::string> controllers;  // v1 controllers of that line ("cpu", "cpuacct")
  std::string path;                      // "/process_api/abc", relative to the cgroup namespace
};

// The cgroup and cgroup2 entries of a mountinfo text, unescaped (\040 ...).
// When one mount point appears twice, the later (covering) mount wins.
std::vector<CgroupMount> parseMountinfo(std::string_view text);

// The lines of a /proc/PID/cgroup text ("ID:CONTROLLERS:PATH").
std::vector<CgroupMembership> parseProcCgroup(std::string_view text);

// A v1 hierarchy with at least one controller next to cgroup2 makes hybrid;
// v1 named hierarchies alone (name=systemd) do not count.
CgroupLayout classify(const std::vector<CgroupMount>& mounts);

// The membership line that belongs to `mount` (same v2-ness, same v1
// controller set), or nullptr.
const CgroupMembership* membershipFor(const CgroupMount& mount, const std::vector<CgroupMembership>& lines);

// The directory of cgroup `path` under `mount` (mount point + the part of
// path below the mount's root); nullopt when the mount does not show it.
std::optional<std::string> cgroupDir(const CgroupMount& mount, std::string_view path);

// parseMountinfo(/proc/self/mountinfo), keeping only mount points whose
// statfs(2) f_type really is CGROUP2_SUPER_MAGIC / CGROUP_SUPER_MAGIC (a mount
// hidden by a later one on a parent directory is dropped).
Result<std::vector<CgroupMount>> readCgroupMounts();

// parseProcCgroup(/proc/PID/cgroup); pid 0 = this process. kNotFound if the
// process is gone.
Result<std::vector<CgroupMembership>> readMembership(pid_t pid);

}  // namespace hv::os
