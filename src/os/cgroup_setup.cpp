// Cgroups::open(): finds the hierarchies, creates the daemon's root in each,
// and probes every mechanism by really trying it (cgroups(7); the v2 rules
// are in the kernel's Documentation/admin-guide/cgroup-v2.rst).
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <string_view>

#include "os/cgroup.h"
#include "os/spawn.h"

namespace hv::os {
namespace {

using R = CgroupRole;

// The v2 controllers we use, and the role each one fills.
struct V2Controller {
  std::string_view name;
  unsigned role;
  std::string_view probeFile;
};
constexpr V2Controller kV2Controllers[] = {
    {"memory", R::kMemory, "memory.max"}, {"pids", R::kPids, "pids.max"}, {"cpu", R::kCpu, "cpu.max"}};

// The v1 controller that fills a role, and the file that proves it works
// (rewritten when writable limits are needed, else just looked for).
struct V1Controller {
  unsigned role;
  std::string_view name;
  std::string_view probeFile;
  bool write;
};
constexpr V1Controller kV1Controllers[] = {
    {R::kMemory, "memory", "memory.limit_in_bytes", true},
    {R::kPids, "pids", "pids.max", true},
    {R::kCpu, "cpu", "cpu.cfs_quota_us", true},
    {R::kCpuStat, "cpuacct", "cpuacct.usage", false},
    {R::kFreezer, "freezer", "freezer.state", false},
};

constexpr unsigned kRoles[] = {R::kTree, R::kMemory, R::kPids, R::kCpu, R::kCpuStat, R::kFreezer};

constexpr int kRoleCount = static_cast<int>(std::size(kRoles));

// A migration faster than this did not wait for an RCU grace period (~10-30 ms).
constexpr int kCheapMigrationMicros = 3000;

int roleIndex(unsigned role) {
  for (int i = 0; i < kRoleCount; ++i) {
    if (kRoles[i] == role) return i;
  }
  return 0;
}

// What an errno from cgroupfs means for the operator.
std::string_view meaning(int err) {
  switch (err) {
    case EBUSY: return "the cgroup holds processes, so it cannot hand controllers to children (cgroups(7) "
                       "\"no internal processes\"; under systemd set Delegate=yes)";
    case ENOENT: return "the controller is not available in this cgroup";
    case EACCES:
    case EPERM: return "no permission to manage this cgroup (not root, or not delegated)";
    case EROFS: return "cgroupfs is mounted read-only (a container without cgroup delegation)";
    case EOPNOTSUPP: return "the cgroup is threaded or in an invalid state";
    default: return "unexpected";
  }
}

std::string explain(const Error& error) {
  if (error.sysErrno == 0) return error.message;
  return error.message + " (" + errnoName(error.sysErrno) + "): " + std::string(meaning(error.sysErrno));
}

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find_first_of(" \n", pos);
    if (end == std::string_view::npos) end = text.size();
    if (end > pos) out.emplace_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

bool contains(const std::vector<std::string>& list, std::string_view word) {
  return std::find(list.begin(), list.end(), word) != list.end();
}

// Proves a v1 controller works in our root: rewrites a limit file when we
// will write limits there, else just looks for its stats file.
Status probeV1(const CgroupDir& root, const V1Controller& c) {
  if (c.write) return root.rewrite(c.probeFile);
  if (root.has(c.probeFile)) return {};
  return failErrno("find " + root.path() + "/" + std::string(c.probeFile), ENOENT);
}

// In a clone3 child (system calls only): moves itself into the cgroup whose
// cgroup.procs is *arg and reports {errno or 0, microseconds the write took}.
void migrateSelf(const void* arg, int report[2]) {
  const int fd = *static_cast<const int*>(arg);
  struct timespec a {}, b {};
  ::clock_gettime(CLOCK_MONOTONIC, &a);
  const bool ok = ::write(fd, "0", 1) == 1;
  report[0] = ok ? 0 : errno;
  ::clock_gettime(CLOCK_MONOTONIC, &b);
  report[1] = static_cast<int>((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000);
}

// What one migration into a v1 cgroup costs here: a child writes itself into
// "<root>/probe.migration" (a name no instance can have) and times it. One
// sample, so another migration just before can make it look cheap.
std::string probeMigration(const CgroupDir& root, int* micros) {
  const std::string dir = root.path() + "/probe.migration";
  Result<CgroupDir> probe = CgroupDir::make(dir);
  if (!probe) return "probe: " + probe.error().message;
  std::string out;
  Result<UniqueFd> procs = probe->openFile("cgroup.procs", O_WRONLY);
  if (procs) {
    const int fd = procs->get();
    Result<std::array<int, 2>> r = runInChild(migrateSelf, &fd, false);
    if (!r) out = "probe: " + r.error().message;
    else if ((*r)[0] != 0) out = "probe: write " + dir + "/cgroup.procs failed (" + errnoName((*r)[0]) + ")";
    else {
      *micros = (*r)[1];
      out = "a probe migration into " + dir + " took " + std::to_string((*r)[1] / 1000) + "." +
            std::to_string((*r)[1] % 1000 / 100) + " ms";
    }
  } else {
    out = "probe: " + procs.error().message;
  }
  (void)probe->remove();  // the child has exited and was reaped
  return out;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// "cgroup2 /sys/fs/cgroup/unified; v1 cpu, memory, pids, ..." (named
// hierarchies left out).
std::string mountList(const std::vector<CgroupMount>& mounts) {
  std::string v2;
  std::vector<std::string> v1;
  for (const CgroupMount& m : mounts) {
    if (m.v2) v2 = "cgroup2 at " + m.mountPoint;
    for (const std::string& c : m.controllers) v1.push_back(c);
  }
  if (v2.empty() && v1.empty()) return "no cgroup filesystem mounted";
  if (v1.empty()) return v2;
  return v2 + (v2.empty() ? "" : "; ") + "v1 controllers " + joined(v1);
}

}  // namespace

// Working state of open(): per role, how it is covered or why not.
struct Cgroups::Setup {
  std::string rootName;
  std::vector<CgroupMount> mounts;
  std::vector<CgroupMembership> self;
  unsigned covered = 0;
  std::string via[kRoleCount];  // how each role is enforced
  std::string why[kRoleCount];  // or why not
  std::string movedTo;  // the leaf this process moved into, if it had to
  std::string migrationProbe;  // what one v1 migration cost at start
  int migrationMicros = -1;    // the same in µs, -1 = not measured

  void cover(unsigned role, std::string how) {
    covered |= role;
    via[roleIndex(role)] = std::move(how);
  }
  void note(unsigned role, std::string reason) {
    std::string& w = why[roleIndex(role)];
    w += (w.empty() ? "" : "; ") + std::move(reason);
  }
  // This process's directory in `mount`'s hierarchy.
  Result<std::string> ownDir(const CgroupMount& mount) const {
    const CgroupMembership* line = membershipFor(mount, self);
    if (line == nullptr) return fail(Errc::kNotFound, "this process has no cgroup in " + mount.mountPoint);
    std::optional<std::string> dir = cgroupDir(mount, line->path);
    if (!dir) return fail(Errc::kNotFound, "this process's cgroup " + line->path + " is outside " + mount.mountPoint);
    return *dir;
  }
};

Result<Cgroups> Cgroups::open(std::string rootName) {
  if (!isPlainCgroupName(rootName)) return fail(Errc::kInvalidArgument, "bad cgroup root name '" + rootName + "'");
  Result<std::vector<CgroupMount>> mounts = readCgroupMounts();
  if (!mounts) return std::unexpected(mounts.error());
  Result<std::vector<CgroupMembership>> self = readMembership(0);
  if (!self) return std::unexpected(self.error());
  Cgroups cgroups;
  cgroups.layout_ = classify(*mounts);
  Setup setup;
  setup.rootName = std::move(rootName);
  setup.mounts = std::move(*mounts);
  setup.self = std::move(*self);
  cgroups.setupV2(setup);
  cgroups.setupV1(setup);
  // Probed in a v1 hierarchy we join for limits; not the cpu one if there is
  // another (a real-time daemon's child may not enter a v1 cpu cgroup that
  // has no cpu.rt_runtime_us: EINVAL).
  const Hierarchy* probeIn = nullptr;
  for (const Hierarchy& h : cgroups.hierarchies_) {
    if (h.mount.v2 || &h == &cgroups.hierarchies_.front()) continue;
    if (probeIn == nullptr || (probeIn->roles & R::kCpu) != 0) probeIn = &h;
  }
  if (probeIn != nullptr) setup.migrationProbe = probeMigration(probeIn->root, &setup.migrationMicros);
  cgroups.describe(setup);
  return cgroups;
}

// Enables our controllers in this process's own v2 cgroup, so that the root
// we create below it gets them. If the own cgroup holds processes (EBUSY) and
// is not the hierarchy's root, this process moves into "<rootName>-daemon"
// beside our root and tries again.
std::vector<std::string> Cgroups::enableInOwn(const CgroupDir& own, Setup& s) {
  Result<std::string> offeredText = own.read("cgroup.controllers");
  std::vector<std::string> offered = offeredText ? words(*offeredText) : std::vector<std::string>{};
  std::vector<std::string> enabled;
  for (const V2Controller& c : kV2Controllers) {
    if (!contains(offered, c.name)) {
      s.note(c.role, "v2: " + own.path() + "/cgroup.controllers does not offer " + std::string(c.name));
      continue;
    }
    std::string plus = "+" + std::string(c.name);
    Status ok = own.write("cgroup.subtree_control", plus);
    if (!ok && ok.error().sysErrno == EBUSY && s.movedTo.empty()) {
      Result<CgroupDir> leaf = CgroupDir::make(own.path() + "/" + s.rootName + "-daemon");
      if (leaf && leaf->write("cgroup.procs", "0")) {
        s.movedTo = leaf->path();
        ok = own.write("cgroup.subtree_control", plus);
      }
    }
    if (ok) {
      enabled.emplace_back(c.name);
    } else {
      s.note(c.role, "v2: " + explain(ok.error()));
    }
  }
  return enabled;
}

void Cgroups::setupV2(Setup& s) {
  auto mount = std::find_if(s.mounts.begin(), s.mounts.end(), [](const CgroupMount& m) { return m.v2; });
  if (mount == s.mounts.end()) return s.note(R::kTree, "no cgroup2 filesystem is mounted");
  Result<std::string> ownPath = s.ownDir(*mount);
  Result<CgroupDir> own = ownPath ? CgroupDir::open(*ownPath) : std::unexpected(ownPath.error());
  if (!own) return s.note(R::kTree, explain(own.error()));
  std::vector<std::string> enabled = enableInOwn(*own, s);
  Result<CgroupDir> root = CgroupDir::make(own->path() + "/" + s.rootName);
  if (!root) return s.note(R::kTree, explain(root.error()));

  unsigned roles = R::kTree;
  s.cover(R::kTree, "v2 " + root->path());
  if (root->has("cpu.stat")) {
    roles |= R::kCpuStat;
    s.cover(R::kCpuStat, "v2 cpu.stat usage_usec");
  }
  if (root->has("cgroup.freeze")) roles |= R::kFreezer;
  for (const V2Controller& c : kV2Controllers) {
    if (!contains(enabled, c.name)) continue;
    Status ok = root->rewrite(c.probeFile);
    if (ok) ok = root->write("cgroup.subtree_control", "+" + std::string(c.name));
    if (!ok) {
      s.note(c.role, "v2: " + explain(ok.error()));
      continue;
    }
    roles |= c.role;
    v2Controllers_.emplace_back(c.name);
    s.cover(c.role, "v2 " + std::string(c.probeFile) + " under " + root->path());
  }
  hierarchies_.push_back(Hierarchy{*mount, roles, std::move(*root)});
}

// v1 hierarchies for the roles v2 could not fill. The freezer is only needed
// when the v2 tree offers neither cgroup.kill nor cgroup.freeze.
void Cgroups::setupV1(Setup& s) {
  bool v2Kills = !hierarchies_.empty() && (hierarchies_[0].root.has("cgroup.kill") ||
                                           (hierarchies_[0].roles & R::kFreezer) != 0);
  unsigned needed = 0;
  for (const V1Controller& c : kV1Controllers) {
    if ((s.covered & c.role) == 0 && !(c.role == R::kFreezer && v2Kills)) needed |= c.role;
  }
  for (const CgroupMount& mount : s.mounts) {
    unsigned wanted = 0;
    for (const V1Controller& c : kV1Controllers) {
      if ((needed & c.role) != 0 && !mount.v2 && contains(mount.controllers, c.name)) wanted |= c.role;
    }
    if (wanted != 0) setupV1Mount(mount, wanted, s);
  }
  for (const V1Controller& c : kV1Controllers) {
    if ((needed & ~s.covered & c.role) != 0 && s.why[roleIndex(c.role)].find("v1:") == std::string::npos) {
      s.note(c.role, "v1: no " + std::string(c.name) + " hierarchy is mounted");
    }
  }
}

void Cgroups::setupV1Mount(const CgroupMount& mount, unsigned wanted, Setup& s) {
  Result<std::string> ownPath = s.ownDir(mount);
  Result<CgroupDir> root = ownPath ? CgroupDir::make(*ownPath + "/" + s.rootName) : std::unexpected(ownPath.error());
  unsigned roles = 0;
  for (const V1Controller& c : kV1Controllers) {
    if ((wanted & c.role) == 0) continue;
    Status ok = root ? probeV1(*root, c) : Status(std::unexpected(root.error()));
    if (!ok) {
      s.note(c.role, "v1: " + explain(ok.error()));
      continue;
    }
    roles |= c.role;
    s.cover(c.role, "v1 " + std::string(c.probeFile) + " under " + root->path());
  }
  if (!root) return;
  if ((roles & R::kMemory) != 0) {
    // Without memsw the limit holds RAM only and the rest could go to swap.
    memsw_ = root->has("memory.memsw.limit_in_bytes") && root->rewrite("memory.memsw.limit_in_bytes");
    if (memsw_) s.via[roleIndex(R::kMemory)] += " (+ memory.memsw.limit_in_bytes: no swap beyond it)";
  }
  if (roles != 0) {
    hierarchies_.push_back(Hierarchy{mount, roles, std::move(*root)});
  } else {
    (void)root->remove();
  }
}

void Cgroups::describe(const Setup& s) {
  auto row = [&](std::string name, unsigned role) {
    int i = roleIndex(role);
    bool on = (s.covered & role) != 0;
    mechanisms_.push_back(MechanismReport{std::move(name), on, on ? s.via[i] : s.why[i]});
  };
  mechanisms_.push_back(MechanismReport{"cgroups", usable(), std::string(layoutName(layout_)) + ": " + mountList(s.mounts)});
  row("cgroup tree (v2)", R::kTree);
  if (!s.movedTo.empty()) mechanisms_.back().detail += "; this process moved into " + s.movedTo;
  row("memory limit", R::kMemory);
  row("process limit", R::kPids);
  row("cpu limit", R::kCpu);
  row("cpu accounting", R::kCpuStat);
  mechanisms_.push_back(describeKill());
  mechanisms_.push_back(describeJoin());
  mechanisms_.push_back(describeMigration(s));
}

// Informational (always "enforced"): what joining a v1 hierarchy costs a
// start. A write to cgroup.procs takes cgroup_threadgroup_rwsem for writing;
// unless some hierarchy is mounted with favordynmods, that first waits for
// an RCU grace period (percpu_down_write -> rcu_sync_enter), ~15 ms on our
// hosts. CLONE_INTO_CGROUP needs no migration.
MechanismReport Cgroups::describeMigration(const Setup& s) const {
  MechanismReport r{"cgroup migrations", true, ""};
  std::vector<std::string> favoring;
  for (const CgroupMount& m : s.mounts) {
    if (m.favorDynmods) favoring.push_back(m.mountPoint);
  }
  std::vector<std::string> v1;
  for (const Hierarchy& h : hierarchies_) {
    if (!h.mount.v2 && &h != &hierarchies_.front()) v1.push_back(h.mount.mountPoint);
  }
  const bool noTree = !hierarchies_.empty() && !hierarchies_.front().mount.v2;
  std::string cost;  // what joining v1 costs, from the probe when there was one
  if (s.migrationMicros >= 0 && s.migrationMicros < kCheapMigrationMicros) {
    cost = "costs no RCU grace period here (" + s.migrationProbe +
           (favoring.empty() ? "; Linux 6.18 keeps favordynmods' per-threadgroup locking until reboot once it was "
                               "ever on, or another migration had just run)"
                             : ")");
  } else {
    cost = "waits ~one RCU grace period (~15 ms)" + (s.migrationProbe.empty() ? "" : " (" + s.migrationProbe + ")");
  }
  const std::string mode = favoring.empty() ? "favordynmods off" : "favordynmods on (" + joined(favoring) + ")";
  if (noTree) {
    r.detail = mode + ", no cgroup2 tree: every start joins " + hierarchies_.front().mount.mountPoint +
               " through cgroup.procs, which " + cost;
  } else if (v1.empty()) {
    r.detail = mode + "; no v1 hierarchy to join: runs are born in their cgroup (CLONE_INTO_CGROUP), no migration";
  } else {
    r.detail = mode + ": a start of an instance with a limit in " + joined(v1) + " joins it through cgroup.procs, which " +
               cost + "; starts without such limits are born in their v2 cgroup and never wait";
    if (favoring.empty()) {
      r.detail += " (host-wide fix, the admin's choice: mount -o remount,favordynmods on the cgroup2 mount, as "
                  "systemd >= 254 does)";
    }
  }
  return r;
}

MechanismReport Cgroups::describeKill() const {
  MechanismReport r{"kill whole tree", true, ""};
  const Hierarchy* freezer = nullptr;
  for (const Hierarchy& h : hierarchies_) {
    if ((h.roles & R::kFreezer) != 0) freezer = &h;
  }
  if (!hierarchies_.empty() && hierarchies_[0].mount.v2 && hierarchies_[0].root.has("cgroup.kill")) {
    r.detail = "v2 cgroup.kill: one write kills every process of a run, daemonized or not";
  } else if (freezer != nullptr) {
    r.detail = std::string(freezer->mount.v2 ? "v2 cgroup.freeze" : "v1 freezer") +
               ", SIGKILL each process in cgroup.procs, thaw, until empty";
  } else if (usable()) {
    r.enforced = false;
    r.detail = "no cgroup.kill and no freezer: each process in cgroup.procs gets SIGKILL until none is left; "
               "a process forking in a tight loop can outrun it";
  } else {
    r.enforced = false;
    r.detail = "no cgroups: only the process group can be killed, and a daemon that called setsid() escapes it";
  }
  return r;
}

MechanismReport Cgroups::describeJoin() const {
  MechanismReport r{"join before exec", usable(), ""};
  if (!usable()) {
    r.detail = "no usable cgroup hierarchy: runs are tracked by process group only";
    return r;
  }
  std::vector<std::string> v1;
  for (const Hierarchy& h : hierarchies_) {
    if (h.mount.v2) {
      r.detail = "clone3(CLONE_INTO_CGROUP) into the v2 run cgroup (cgroup.procs where the kernel refuses it)";
    } else {
      v1.push_back(h.mount.mountPoint);
    }
  }
  if (!v1.empty()) {
    r.detail += std::string(r.detail.empty() ? "" : "; ") + "the child writes itself into cgroup.procs under " +
                joined(v1) + " before exec";
  }
  return r;
}

}  // namespace hv::os
