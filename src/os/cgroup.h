// Cgroups and RunCgroup: one fresh cgroup per instance run, with its limits,
// entered before exec, killed as a whole tree, and read for CPU/memory stats.
//
// Cgroups owns the daemon's subtree "<own cgroup>/<rootName>" in every
// hierarchy it uses: the cgroup2 tree (membership, cgroup.kill, the attach
// point for BPF) and, for controllers the v2 tree does not offer (hybrid
// hosts), the v1 memory / pids / cpu (/ cpuacct, freezer) hierarchies. Each
// mechanism is probed by really trying it and listed in mechanisms(), enforced
// or degraded with the errno and what it means (for the daemon's start-up
// table and `hostvisor doctor`).
//
// A run lives in "<root>/<instance>/run-<runId>". It must be fresh: after
// cgroup.kill, clone3(CLONE_INTO_CGROUP) into the same cgroup SIGKILLs the new
// child at once on the kernels we run on (the fork path compares the parent's
// cgroup kill_seq with the target's, kernel/cgroup/cgroup.c cgroup_post_fork),
// so a killed run cgroup is never reused; remove() it and create the next.
// Spawning: pass v2DirFd() as SpawnRequest::cgroupFd and procsFds() as
// SpawnRequest::joinCgroupFds.
//
// Not thread-safe: call a Cgroups from one thread (the supervisor's). A
// RunCgroup is a value owning its fds; const methods only read cgroupfs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "os/cgroup_dir.h"
#include "os/cgroup_mounts.h"

namespace hv::os {

// One row of the start-up / doctor table.
struct MechanismReport {
  std::string name;     // "memory limit", "kill whole tree", ...
  bool enforced = false;
  std::string detail;   // how it is enforced, or why not (errno and meaning)
};

// 0 = no limit, for each field.
struct CgroupLimits {
  uint64_t memoryBytes = 0;  // v2 memory.max (+ memory.oom.group) / v1 memory.limit_in_bytes
  uint64_t maxPids = 0;      // pids.max: fork() fails with EAGAIN beyond it
  uint32_t cpuPercent = 0;   // of one core: 150 = 1.5 cores; period 100 ms, quota percent * 1 ms
};

// Each field is nullopt when no hierarchy in use provides it.
struct CgroupStats {
  std::optional<uint64_t> cpuNanos;     // v2 cpu.stat usage_usec * 1000 / v1 cpuacct.usage
  std::optional<uint64_t> memoryBytes;  // charged memory, page cache included (the limit's measure)
  std::optional<uint64_t> rssBytes;     // anonymous memory: v2 memory.stat anon / v1 total_rss
  std::optional<uint64_t> oomKills;     // v2 memory.events oom_kill / v1 memory.oom_control oom_kill
  std::optional<uint64_t> pidsCurrent;  // pids.current
};

class Cgroups;

class RunCgroup {
 public:
  RunCgroup(RunCgroup&&) = default;
  RunCgroup& operator=(RunCgroup&&) = default;

  // The run's cgroup of a process started before a daemon restart, from
  // /proc/PID/cgroup: the run in the first hierarchy, plus every other
  // hierarchy where the process sits in the same run (those the run joined
  // for its limits). kNotFound if the process is gone or not in a run of
  // `cgroups`.
  static Result<RunCgroup> adopt(pid_t pid, const Cgroups& cgroups);

  // The v2 directory (O_RDONLY|O_DIRECTORY|O_CLOEXEC) for clone3's
  // CLONE_INTO_CGROUP; -1 without a v2 tree.
  int v2DirFd() const;
  // O_WRONLY|O_CLOEXEC cgroup.procs of each v1 hierarchy the child must join
  // by writing "0" itself (CLONE_INTO_CGROUP only covers v2).
  const std::vector<int>& procsFds() const { return procsFds_; }
  // Once the child is in: closes every descriptor the run holds (the
  // directories, cgroup.procs files and cgroup.events); the run keeps working
  // by path, and watchFd() is nullopt from then on. Each descriptor the daemon
  // keeps per run is copied by every later clone3 and closed again at its
  // exec (do_close_on_exec: ~12 % of a cold start's CPU with 1,000 runs).
  void releaseSpawnFds();

  // Kills every process in the run, however it forked or daemonized. With v2
  // cgroup.kill one write does it; else killEachProcess(). Afterwards the
  // cgroup must not receive new processes (see the quirk above). Returns
  // once the signals are sent; wait for isEmpty() / watchFd().
  Status killAll() const;
  // The fallback of killAll(): freeze (v2 cgroup.freeze or v1 freezer), SIGKILL
  // each pid in cgroup.procs, thaw, and repeat until empty (bounded, 2 s).
  // Without a freezer a process that forks faster than we kill can outrun it.
  Status killEachProcess() const;

  // True once no process is left (a removed cgroup is empty); false also
  // when cgroupfs cannot be read.
  bool isEmpty() const;
  // v2 cgroup.events, pollable: POLLPRI when "populated" changes; then call
  // isEmpty(). nullopt without a v2 tree or after releaseSpawnFds().
  std::optional<int> watchFd() const;

  // Without a memory hierarchy in the run (no memory limit on a hybrid
  // host) rssBytes is the sum of RssAnon ((resident - shared) pages of
  // /proc/PID/statm) over the run's processes, and memoryBytes and oomKills
  // stay nullopt: an OOM kill is only seen with a memory limit.
  Result<CgroupStats> stats() const;

  // rmdir in every hierarchy; kConflict while processes remain.
  Status remove() const;

  // The v2 directory if any, else the first v1 one (for display and logs).
  const std::string& path() const;
  // Its directory in every hierarchy, v2 first.
  std::vector<std::string> paths() const;

 private:
  friend class Cgroups;
  struct Node {
    bool v2 = false;
    unsigned roles = 0;  // CgroupRole bits
    CgroupDir dir;
  };
  RunCgroup() = default;
  static Result<RunCgroup> make(std::vector<Node> nodes);
  const Node* node(unsigned role) const;
  Status applyLimits(const CgroupLimits& limits, bool memsw) const;
  Status freeze(bool on) const;
  void waitFrozen() const;
  Result<std::vector<pid_t>> allProcs() const;
  Status addMemoryStats(const Node& n, CgroupStats& stats) const;

  std::vector<Node> nodes_;
  std::vector<UniqueFd> procsOwned_;
  std::vector<int> procsFds_;
  UniqueFd eventsFd_;  // v2 cgroup.events
};

class Cgroups {
 public:
  Cgroups(Cgroups&&) = default;
  Cgroups& operator=(Cgroups&&) = default;

  // Detects the layout, creates "<own cgroup>/<rootName>" in each usable
  // hierarchy (an existing one is reused, for re-adoption), enables v2
  // controllers top-down (moving this process into "<own>/<rootName>-daemon"
  // when its cgroup must become a non-leaf, cgroups(7) "no internal
  // processes") and probes every mechanism. Fails only when /proc cannot be
  // read or rootName is not a plain name; a host without cgroups yields an
  // object with usable() false and every mechanism degraded.
  static Result<Cgroups> open(std::string rootName);

  CgroupLayout layout() const { return layout_; }
  const std::vector<MechanismReport>& mechanisms() const { return mechanisms_; }
  bool usable() const { return !hierarchies_.empty(); }
  // "<own v2 cgroup>/<rootName>" (or the first v1 one): the BPF attach point.
  const std::string& rootPath() const;

  // A fresh "<root>/<instance>/run-<runId>" with `limits` applied. An empty
  // leftover of that name is removed and made again (a cgroup that saw
  // cgroup.kill poisons CLONE_INTO_CGROUP); kConflict if it holds processes;
  // kUnavailable when !usable(). `instance` must be a plain name.
  // The run is made in the first hierarchy (the v2 tree where there is one),
  // in those that fill a role every run needs (v1 cpuacct or freezer when v2
  // lacks them), and in a v1 memory / pids / cpu hierarchy only when `limits`
  // sets that limit: joining a v1 hierarchy is a migration through
  // cgroup.procs, which waits for an RCU grace period (~15 ms) unless the
  // host mounts cgroups with favordynmods (see the "cgroup migrations" row).
  // A run without such limits is born in its v2 cgroup and never migrates.
  Result<RunCgroup> createRun(const std::string& instance, uint64_t runId, const CgroupLimits& limits) const;

  // Removes every run cgroup left empty (by runs that ended while the daemon
  // was down); returns how many runs went. Call at start-up, before the first
  // createRun(): a run made but not yet spawned into is empty too.
  size_t removeEmptyRuns() const;

  // Kills every process below the root and removes the whole subtree in every
  // hierarchy (tests, uninstall). Bounded: kConflict if something stays.
  Status destroy() const;

  // Removes "<root>/<instance>" in every hierarchy once its runs are gone
  // (instance deleted). kConflict while a run cgroup remains.
  Status removeInstance(const std::string& instance) const;

 private:
  friend class RunCgroup;
  struct Hierarchy {
    CgroupMount mount;
    unsigned roles = 0;  // CgroupRole bits
    CgroupDir root;
  };
  struct Setup;
  Cgroups() = default;
  void setupV2(Setup& setup);
  void setupV1(Setup& setup);
  void setupV1Mount(const CgroupMount& mount, unsigned wanted, Setup& setup);
  std::vector<std::string> enableInOwn(const CgroupDir& own, Setup& setup);
  void describe(const Setup& setup);
  MechanismReport describeKill() const;
  MechanismReport describeJoin() const;
  MechanismReport describeMigration(const Setup& setup) const;
  Status makeInstanceDir(const Hierarchy& h, const std::string& instance) const;
  Result<RunCgroup> openRun(const std::string& relative, bool create,
                            const std::vector<const Hierarchy*>& in) const;
  Result<RunCgroup> adopt(pid_t pid) const;

  CgroupLayout layout_ = CgroupLayout::kNone;
  std::vector<Hierarchy> hierarchies_;
  std::vector<std::string> v2Controllers_;  // enabled for children of the v2 root
  bool memsw_ = false;                      // v1 memory.memsw.limit_in_bytes is writable
  std::vector<MechanismReport> mechanisms_;
};

}  // namespace hv::os
