// RunCgroup: limits, killing, emptiness and stats of one run (cgroup.h).
// File formats: Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/*.rst.
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include "os/cgroup.h"

namespace hv::os {
namespace {

using R = CgroupRole;
using Clock = std::chrono::steady_clock;

constexpr auto kKillDeadline = std::chrono::seconds(2);
constexpr auto kFreezeDeadline = std::chrono::milliseconds(500);
constexpr uint64_t kCpuPeriodUs = 100000;  // 100 ms: the kernel's default CFS period

void pause(std::chrono::milliseconds ms) {
  struct timespec ts {0, static_cast<long>(std::chrono::nanoseconds(ms).count())};
  ::nanosleep(&ts, nullptr);
}

// Reads a number out of a control file: the whole file, or one key of it.
Result<std::optional<uint64_t>> number(const CgroupDir& dir, std::string_view file, std::string_view key = {}) {
  Result<std::string> text = dir.read(file);
  if (!text) return std::unexpected(text.error());
  return key.empty() ? plainValue(*text) : keyedValue(*text, key);
}

// RssAnon of one process in bytes: (resident - shared) pages of
// /proc/PID/statm (proc(5): shared = RssFile + RssShmem). 0 once it is gone.
uint64_t anonBytes(pid_t pid) {
  static const uint64_t kPage = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return 0;
  char buf[128];
  ssize_t len = ::read(fd.get(), buf, sizeof buf - 1);
  if (len <= 0) return 0;
  buf[len] = '\0';
  unsigned long long size = 0, resident = 0, shared = 0;
  if (std::sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3 || shared > resident) return 0;
  return (resident - shared) * kPage;
}

}  // namespace

// v2: memory.oom.group makes the OOM killer take the whole run at once rather
// than one process of it; memory.swap.max 0 keeps the run from swapping past
// its limit. v1: memsw (RAM + swap) may only be set at or above
// limit_in_bytes, hence the order. cpu: quota per 100 ms period.
Status RunCgroup::applyLimits(const CgroupLimits& limits, bool memsw) const {
  const Node* mem = node(R::kMemory);
  if (limits.memoryBytes > 0 && mem != nullptr) {
    std::string bytes = std::to_string(limits.memoryBytes);
    if (mem->v2) {
      if (auto ok = mem->dir.write("memory.max", bytes); !ok) return ok;
      if (auto ok = mem->dir.write("memory.oom.group", "1"); !ok) return ok;
      if (mem->dir.has("memory.swap.max")) {
        if (auto ok = mem->dir.write("memory.swap.max", "0"); !ok) return ok;
      }
    } else {
      if (auto ok = mem->dir.write("memory.limit_in_bytes", bytes); !ok) return ok;
      if (memsw) {
        if (auto ok = mem->dir.write("memory.memsw.limit_in_bytes", bytes); !ok) return ok;
      }
    }
  }
  const Node* pids = node(R::kPids);
  if (limits.maxPids > 0 && pids != nullptr) {
    if (auto ok = pids->dir.write("pids.max", std::to_string(limits.maxPids)); !ok) return ok;
  }
  const Node* cpu = node(R::kCpu);
  if (limits.cpuPercent > 0 && cpu != nullptr) {
    uint64_t quotaUs = uint64_t{limits.cpuPercent} * kCpuPeriodUs / 100;
    if (cpu->v2) return cpu->dir.write("cpu.max", std::to_string(quotaUs) + " " + std::to_string(kCpuPeriodUs));
    if (auto ok = cpu->dir.write("cpu.cfs_period_us", std::to_string(kCpuPeriodUs)); !ok) return ok;
    return cpu->dir.write("cpu.cfs_quota_us", std::to_string(quotaUs));
  }
  return {};
}

// cgroup.kill (Linux 5.14) signals every process of the subtree, and the
// kernel also kills a child that a process is forking at that moment.
Status RunCgroup::killAll() const {
  const Node* tree = node(R::kTree);
  if (tree != nullptr && tree->dir.has("cgroup.kill")) return tree->dir.write("cgroup.kill", "1");
  return killEachProcess();
}

Status RunCgroup::killEachProcess() const {
  bool frozen = freeze(true).has_value();
  if (frozen) waitFrozen();
  Clock::time_point deadline = Clock::now() + kKillDeadline;
  for (;;) {
    Result<std::vector<pid_t>> pids = allProcs();
    // Each pid was in the cgroup an instant ago (and cannot exit while
    // frozen), so it is still that process: no pidfd needed.
    if (pids) {
      for (pid_t pid : *pids) ::kill(pid, SIGKILL);
    }
    if (frozen) frozen = !freeze(false).has_value();  // the killed die once thawed
    if (!pids) return std::unexpected(pids.error());
    if (pids->empty()) return {};
    if (Clock::now() > deadline) {
      return fail(Errc::kUnavailable, std::to_string(pids->size()) + " processes still in " + path() +
                                          " after SIGKILL for 2 s");
    }
    pause(std::chrono::milliseconds(2));
  }
}

Status RunCgroup::freeze(bool on) const {
  const Node* n = node(R::kFreezer);
  if (n == nullptr) return fail(Errc::kUnavailable, "no freezer");
  if (n->v2) return n->dir.write("cgroup.freeze", on ? "1" : "0");
  return n->dir.write("freezer.state", on ? "FROZEN" : "THAWED");
}

// Freezing is asynchronous: v2 cgroup.events says "frozen 1", v1
// freezer.state moves from FREEZING to FROZEN. Bounded; killing a partly
// frozen group still works, only less surely in one pass.
void RunCgroup::waitFrozen() const {
  const Node* n = node(R::kFreezer);
  Clock::time_point deadline = Clock::now() + kFreezeDeadline;
  while (n != nullptr && Clock::now() < deadline) {
    Result<std::string> text = n->dir.read(n->v2 ? "cgroup.events" : "freezer.state");
    if (!text) return;
    if (n->v2 ? keyedValue(*text, "frozen") == 1u : text->starts_with("FROZEN")) return;
    pause(std::chrono::milliseconds(1));
  }
}

Result<std::vector<pid_t>> RunCgroup::allProcs() const {
  std::vector<pid_t> all;
  for (const Node& n : nodes_) {
    Result<std::vector<pid_t>> pids = n.dir.procs();
    if (!pids) {
      if (pids.error().code == Errc::kNotFound) continue;  // removed
      return std::unexpected(pids.error());
    }
    for (pid_t pid : *pids) {
      if (std::find(all.begin(), all.end(), pid) == all.end()) all.push_back(pid);
    }
  }
  return all;
}

// v2 "populated" covers the subtree and ignores zombies; in v1 the
// cgroup.procs of each hierarchy must be empty.
bool RunCgroup::isEmpty() const {
  for (const Node& n : nodes_) {
    if (n.v2) {
      std::string text;
      if (eventsFd_) {
        char buf[256];
        ssize_t len = ::pread(eventsFd_.get(), buf, sizeof buf - 1, 0);
        if (len < 0) {
          if (errno == ENODEV || errno == ENOENT) continue;  // the cgroup was removed
          return false;
        }
        text.assign(buf, static_cast<size_t>(len));
      } else {  // released: by path
        Result<std::string> read = n.dir.read("cgroup.events");
        if (!read) {
          if (read.error().code == Errc::kNotFound || read.error().sysErrno == ENODEV) continue;
          return false;
        }
        text = std::move(*read);
      }
      if (keyedValue(text, "populated") != 0u) return false;
      continue;
    }
    Result<std::vector<pid_t>> pids = n.dir.procs();
    if (!pids) {
      if (pids.error().code == Errc::kNotFound || pids.error().sysErrno == ENODEV) continue;
      return false;
    }
    if (!pids->empty()) return false;
  }
  return true;
}

Result<CgroupStats> RunCgroup::stats() const {
  CgroupStats stats;
  if (const Node* n = node(R::kCpuStat)) {
    auto cpu = n->v2 ? number(n->dir, "cpu.stat", "usage_usec") : number(n->dir, "cpuacct.usage");
    if (!cpu) return std::unexpected(cpu.error());
    if (*cpu) stats.cpuNanos = n->v2 ? **cpu * 1000 : **cpu;
  }
  if (const Node* n = node(R::kMemory)) {
    if (auto ok = addMemoryStats(*n, stats); !ok) return std::unexpected(ok.error());
  } else if (!nodes_.empty()) {
    // No memory cgroup (a run without a memory limit on a hybrid host).
    Result<std::vector<pid_t>> pids = nodes_.front().dir.procs();
    if (!pids && pids.error().code != Errc::kNotFound && pids.error().sysErrno != ENODEV) {
      return std::unexpected(pids.error());
    }
    uint64_t sum = 0;
    for (pid_t pid : pids.value_or(std::vector<pid_t>{})) sum += anonBytes(pid);
    stats.rssBytes = sum;
  }
  if (const Node* n = node(R::kPids)) {
    auto pids = number(n->dir, "pids.current");
    if (!pids) return std::unexpected(pids.error());
    stats.pidsCurrent = *pids;
  }
  return stats;
}

Status RunCgroup::addMemoryStats(const Node& n, CgroupStats& stats) const {
  auto current = n.v2 ? number(n.dir, "memory.current") : number(n.dir, "memory.usage_in_bytes");
  auto rss = n.v2 ? number(n.dir, "memory.stat", "anon") : number(n.dir, "memory.stat", "total_rss");
  auto ooms = n.v2 ? number(n.dir, "memory.events", "oom_kill") : number(n.dir, "memory.oom_control", "oom_kill");
  for (const auto* r : {&current, &rss, &ooms}) {
    if (!*r) return std::unexpected(r->error());
  }
  stats.memoryBytes = *current;
  stats.rssBytes = *rss;
  stats.oomKills = *ooms;
  return {};
}

}  // namespace hv::os
