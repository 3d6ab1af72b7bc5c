// Cgroups: making, finding and removing run cgroups. Setup is in
// cgroup_setup.cpp, a run's kill/stats in run_cgroup.cpp.
#include "os/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string_view>

namespace hv::os {
namespace {

using R = CgroupRole;
using Clock = std::chrono::steady_clock;

constexpr auto kDestroyDeadline = std::chrono::seconds(5);

void pause(std::chrono::milliseconds ms) {
  struct timespec ts {0, static_cast<long>(std::chrono::nanoseconds(ms).count())};
  ::nanosleep(&ts, nullptr);
}

// A directory that did not exist before: a leftover of the same name is
// removed first, since a cgroup that saw cgroup.kill poisons later
// CLONE_INTO_CGROUP children (see cgroup.h).
Result<CgroupDir> makeFresh(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0) {
    if (errno != EEXIST) return failErrno("mkdir " + path, errno);
    if (::rmdir(path.c_str()) != 0) {
      if (errno == EBUSY) return fail(Errc::kConflict, "run cgroup " + path + " already holds processes");
      return failErrno("rmdir " + path, errno);
    }
    if (::mkdir(path.c_str(), 0755) != 0) return failErrno("mkdir " + path, errno);
  }
  return CgroupDir::open(path);
}

// The names of the subdirectories of `dir` (child cgroups); empty if it
// cannot be read.
std::vector<std::string> childCgroups(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (e->d_type == DT_DIR && name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(d);
  return names;
}

// SIGKILLs what is in `dir` (pids read just now from cgroup.procs), then
// removes its subdirectories and itself, retrying while the killed exit.
Status killAndRemoveTree(const std::string& dir, Clock::time_point deadline) {
  for (const std::string& child : childCgroups(dir)) {
    if (auto ok = killAndRemoveTree(dir + "/" + child, deadline); !ok) return ok;
  }
  Result<CgroupDir> cg = CgroupDir::open(dir);
  if (!cg) return cg.error().code == Errc::kNotFound ? Status() : Status(std::unexpected(cg.error()));
  for (;;) {
    if (auto pids = cg->procs()) {
      for (pid_t pid : *pids) ::kill(pid, SIGKILL);
    }
    Status removed = cg->remove();
    if (removed || Clock::now() > deadline) return removed;
    pause(std::chrono::milliseconds(5));
  }
}

}  // namespace

const std::string& Cgroups::rootPath() const {
  static const std::string kNone;
  return hierarchies_.empty() ? kNone : hierarchies_[0].root.path();
}

Result<RunCgroup> Cgroups::createRun(const std::string& instance, uint64_t runId, const CgroupLimits& limits) const {
  if (!isPlainCgroupName(instance)) {
    return fail(Errc::kInvalidArgument, "bad instance name for a cgroup: '" + instance + "'");
  }
  if (!usable()) return fail(Errc::kUnavailable, "no usable cgroup hierarchy");
  unsigned roles = R::kTree | R::kCpuStat | R::kFreezer;  // what every run needs
  if (limits.memoryBytes > 0) roles |= R::kMemory;
  if (limits.maxPids > 0) roles |= R::kPids;
  if (limits.cpuPercent > 0) roles |= R::kCpu;
  std::vector<const Hierarchy*> in;
  for (const Hierarchy& h : hierarchies_) {
    if (&h == &hierarchies_.front() || (h.roles & roles) != 0) in.push_back(&h);
  }
  Result<RunCgroup> run = openRun(instance + "/run-" + std::to_string(runId), true, in);
  if (!run) return run;
  if (auto ok = run->applyLimits(limits, memsw_); !ok) {
    (void)run->remove();
    return std::unexpected(ok.error());
  }
  return run;
}

// The instance's directory; on v2 it hands our controllers down to its runs.
Status Cgroups::makeInstanceDir(const Hierarchy& h, const std::string& instance) const {
  Result<CgroupDir> dir = CgroupDir::make(h.root.path() + "/" + instance);
  if (!dir) return std::unexpected(dir.error());
  for (const std::string& c : h.mount.v2 ? v2Controllers_ : std::vector<std::string>{}) {
    if (auto ok = dir->write("cgroup.subtree_control", "+" + c); !ok) return ok;
  }
  return {};
}

// The run "<instance>/run-N" below the root of each hierarchy in `in`: made
// fresh (with the instance directory, which passes the v2 controllers down),
// or opened as it is for adoption.
Result<RunCgroup> Cgroups::openRun(const std::string& relative, bool create,
                                   const std::vector<const Hierarchy*>& in) const {
  std::vector<RunCgroup::Node> nodes;
  auto undo = [&](Error error) {
    if (create) {
      for (const auto& n : nodes) (void)n.dir.remove();
    }
    return std::unexpected(std::move(error));
  };
  size_t slash = relative.find('/');
  for (const Hierarchy* h : in) {
    std::string path = h->root.path() + "/" + relative;
    if (create) {
      if (auto ok = makeInstanceDir(*h, relative.substr(0, slash)); !ok) return undo(ok.error());
    }
    Result<CgroupDir> dir = create ? makeFresh(path) : CgroupDir::open(path);
    if (!dir) return undo(dir.error());
    nodes.push_back(RunCgroup::Node{h->mount.v2, h->roles, std::move(*dir)});
  }
  Result<RunCgroup> run = RunCgroup::make(std::move(nodes));
  if (!run && create) {
    for (const Hierarchy* h : in) ::rmdir((h->root.path() + "/" + relative).c_str());
  }
  return run;
}

Result<RunCgroup> Cgroups::adopt(pid_t pid) const {
  if (!usable()) return fail(Errc::kUnavailable, "no usable cgroup hierarchy");
  Result<std::vector<CgroupMembership>> lines = readMembership(pid);
  if (!lines) return std::unexpected(lines.error());
  const Hierarchy& primary = hierarchies_[0];
  const CgroupMembership* line = membershipFor(primary.mount, *lines);
  std::optional<std::string> dir = line ? cgroupDir(primary.mount, line->path) : std::nullopt;
  std::string prefix = primary.root.path() + "/";
  std::string relative = dir && dir->starts_with(prefix) ? dir->substr(prefix.size()) : "";
  size_t slash = relative.find('/');
  bool twoLevels = slash != std::string::npos && slash > 0 && relative.find('/', slash + 1) == std::string::npos &&
                   relative.substr(slash + 1).starts_with("run-");
  if (!twoLevels) {
    return fail(Errc::kNotFound, "process " + std::to_string(pid) + " is not in a run cgroup under " +
                                     primary.root.path() + " (it is in " + (line ? line->path : "no cgroup") + ")");
  }
  // The other hierarchies the run joined (for its limits): where the process
  // sits in the same "<instance>/run-N".
  std::vector<const Hierarchy*> in{&primary};
  for (const Hierarchy& h : hierarchies_) {
    if (&h == &primary) continue;
    const CgroupMembership* l = membershipFor(h.mount, *lines);
    if (l != nullptr && cgroupDir(h.mount, l->path) == h.root.path() + "/" + relative) in.push_back(&h);
  }
  return openRun(relative, false, in);
}

size_t Cgroups::removeEmptyRuns() const {
  size_t removed = 0;
  for (const Hierarchy& h : hierarchies_) {
    for (const std::string& instance : childCgroups(h.root.path())) {
      for (const std::string& run : childCgroups(h.root.path() + "/" + instance)) {
        bool gone = run.starts_with("run-") && ::rmdir((h.root.path() + "/" + instance + "/" + run).c_str()) == 0;
        if (gone && &h == &hierarchies_.front()) ++removed;  // count runs, not directories
      }
    }
  }
  return removed;
}

Status Cgroups::destroy() const {
  Clock::time_point deadline = Clock::now() + kDestroyDeadline;
  Status result;
  for (const Hierarchy& h : hierarchies_) {
    if (h.mount.v2 && h.root.has("cgroup.kill")) (void)h.root.write("cgroup.kill", "1");
    if (auto ok = killAndRemoveTree(h.root.path(), deadline); !ok && result) result = ok;
  }
  return result;
}

Status Cgroups::removeInstance(const std::string& instance) const {
  if (!isPlainCgroupName(instance))
    return fail(Errc::kInvalidArgument, "bad instance name for a cgroup: '" + instance + "'");
  for (const Hierarchy& h : hierarchies_) {
    const std::string dir = h.root.path() + "/" + instance;
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT)
      return failErrno("rmdir " + dir, errno, errno == EBUSY || errno == ENOTEMPTY ? Errc::kConflict : Errc::kInternal);
  }
  return {};
}

// ---- RunCgroup: construction and the simple accessors ---------------------

Result<RunCgroup> RunCgroup::make(std::vector<Node> nodes) {
  RunCgroup run;
  run.nodes_ = std::move(nodes);
  for (const Node& n : run.nodes_) {
    if (n.v2) {
      Result<UniqueFd> events = n.dir.openFile("cgroup.events", O_RDONLY);
      if (!events) return std::unexpected(events.error());
      run.eventsFd_ = std::move(*events);
      continue;
    }
    Result<UniqueFd> procs = n.dir.openFile("cgroup.procs", O_WRONLY);
    if (!procs) return std::unexpected(procs.error());
    run.procsFds_.push_back(procs->get());
    run.procsOwned_.push_back(std::move(*procs));
  }
  return run;
}

void RunCgroup::releaseSpawnFds() {
  procsFds_.clear();
  procsOwned_.clear();
  eventsFd_.reset();
  for (Node& n : nodes_) n.dir.release();
}

Result<RunCgroup> RunCgroup::adopt(pid_t pid, const Cgroups& cgroups) { return cgroups.adopt(pid); }

const RunCgroup::Node* RunCgroup::node(unsigned role) const {
  for (const Node& n : nodes_) {
    if ((n.roles & role) != 0) return &n;
  }
  return nullptr;
}

int RunCgroup::v2DirFd() const {
  const Node* tree = node(R::kTree);
  return tree ? tree->dir.fd() : -1;
}

std::optional<int> RunCgroup::watchFd() const {
  if (!eventsFd_) return std::nullopt;
  return eventsFd_.get();
}

const std::string& RunCgroup::path() const {
  static const std::string kNone;
  return nodes_.empty() ? kNone : nodes_.front().dir.path();
}

std::vector<std::string> RunCgroup::paths() const {
  std::vector<std::string> out;
  for (const Node& n : nodes_) out.push_back(n.dir.path());
  return out;
}

Status RunCgroup::remove() const {
  Status result;
  for (const Node& n : nodes_) {
    if (auto ok = n.dir.remove(); !ok && result) result = ok;
  }
  return result;
}

}  // namespace hv::os
