// Cgroups on the real host: needs root. Every test works under its own root
// ("hv-test-<pid>-<n>") and the fixture destroys it, processes included,
// even when an assertion fails.
#include "os/cgroup.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "os/net.h"
#include "os/process.h"
#include "os/spawn.h"
#include "os/test_helpers.h"

namespace hv::os {
namespace {

using testing::ChildReaper;
using testing::kWaitMs;
using testing::makePipe;
using testing::Pipe;
using testing::readAll;
using testing::readLine;
using testing::waitExit;

SpawnRequest shellIn(const RunCgroup& run, const std::string& script) {
  SpawnRequest req;
  req.path = "/bin/sh";
  req.argv = {"sh", "-c", script};
  req.envp = {"PATH=/usr/bin:/bin"};
  req.cgroupFd = run.v2DirFd();
  req.joinCgroupFds = run.procsFds();
  return req;
}

// Waits, bounded, for the run to empty: on cgroup.events notifications where
// there is a v2 tree (poll(2) reports POLLPRI when "populated" changes).
bool waitEmpty(const RunCgroup& run, int timeoutMs = kWaitMs) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (!run.isEmpty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    struct pollfd pfd {run.watchFd().value_or(-1), POLLPRI, 0};
    ::poll(&pfd, 1, static_cast<int>(std::min<long>(left.count(), 100)));
  }
  return true;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string slurp(const std::string& path) {
  std::string text;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[256];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  return text;
}

// True if the process is gone or a zombie (killed, not yet reaped by init).
bool deadOrZombie(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  return stat.empty() || (paren != std::string::npos && stat.substr(paren + 2, 1) == "Z");
}

class CgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "managing cgroups needs root";
    Result<std::vector<CgroupMount>> mounts = readCgroupMounts();
    if (!mounts || classify(*mounts) == CgroupLayout::kNone) GTEST_SKIP() << "no cgroup filesystem mounted";
    static int counter = 0;
    name_ = "hv-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    Result<Cgroups> cgroups = Cgroups::open(name_);
    ASSERT_TRUE(cgroups) << cgroups.error().message;
    cgroups_.emplace(std::move(*cgroups));
    ASSERT_TRUE(cgroups_->usable());
  }

  void TearDown() override {
    if (!cgroups_) return;
    std::string root = cgroups_->rootPath();
    Status ok = cgroups_->destroy();
    EXPECT_TRUE(ok) << ok.error().message;
    EXPECT_FALSE(exists(root)) << root;
  }

  bool enforced(const std::string& mechanism) const {
    for (const MechanismReport& row : cgroups_->mechanisms()) {
      if (row.name == mechanism) return row.enforced;
    }
    return false;
  }

  std::string detail(const std::string& mechanism) const {
    for (const MechanismReport& row : cgroups_->mechanisms()) {
      if (row.name == mechanism) return row.detail;
    }
    return {};
  }
  // The mechanism is enforced through a v1 hierarchy (hybrid or legacy host).
  bool viaV1(const std::string& mechanism) const { return enforced(mechanism) && detail(mechanism).starts_with("v1 "); }

  Result<RunCgroup> run(uint64_t id, CgroupLimits limits = {}) { return cgroups_->createRun("web", id, limits); }

  std::string name_;
  std::optional<Cgroups> cgroups_;
};

TEST_F(CgroupTest, DetectsTheLayoutAndReportsEveryMechanism) {
  Result<std::vector<CgroupMount>> mounts = readCgroupMounts();
  ASSERT_TRUE(mounts);
  EXPECT_EQ(cgroups_->layout(), classify(*mounts));
  std::vector<std::string> names;
  for (const MechanismReport& row : cgroups_->mechanisms()) {
    std::printf("  %-18s %-9s %s\n", row.name.c_str(), row.enforced ? "enforced" : "DEGRADED", row.detail.c_str());
    names.push_back(row.name);
  }
  for (const char* name : {"cgroups", "cgroup tree (v2)", "memory limit", "process limit", "cpu limit",
                           "cpu accounting", "kill whole tree", "join before exec", "cgroup migrations"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
  EXPECT_TRUE(enforced("cgroups"));
  EXPECT_TRUE(enforced("join before exec"));
  // Informational: never DEGRADED, and it says whether favordynmods is on.
  EXPECT_TRUE(enforced("cgroup migrations"));
  bool favoring = false;
  for (const CgroupMount& m : *mounts) favoring |= m.favorDynmods;
  EXPECT_TRUE(detail("cgroup migrations").starts_with(favoring ? "favordynmods on" : "favordynmods off"))
      << detail("cgroup migrations");
}

TEST_F(CgroupTest, CreateRunWritesEveryLimit) {
  Result<RunCgroup> r = run(1, CgroupLimits{64 << 20, 5, 20});
  ASSERT_TRUE(r) << r.error().message;
  bool memory = false, pids = false, cpu = false;
  for (const std::string& dir : r->paths()) {
    EXPECT_TRUE(dir.ends_with("/" + name_ + "/web/run-1")) << dir;
    if (exists(dir + "/memory.max")) memory = slurp(dir + "/memory.max") == "67108864\n";
    if (exists(dir + "/memory.limit_in_bytes")) memory = slurp(dir + "/memory.limit_in_bytes") == "67108864\n";
    if (exists(dir + "/pids.max")) pids = slurp(dir + "/pids.max") == "5\n";
    if (exists(dir + "/cpu.max")) cpu = slurp(dir + "/cpu.max") == "20000 100000\n";
    if (exists(dir + "/cpu.cfs_quota_us")) {
      cpu = slurp(dir + "/cpu.cfs_quota_us") == "20000\n" && slurp(dir + "/cpu.cfs_period_us") == "100000\n";
    }
  }
  EXPECT_EQ(memory, enforced("memory limit"));
  EXPECT_EQ(pids, enforced("process limit"));
  EXPECT_EQ(cpu, enforced("cpu limit"));
}

TEST_F(CgroupTest, SpawnedChildIsInTheRunInEveryHierarchy) {
  Result<RunCgroup> r = run(1);
  ASSERT_TRUE(r) << r.error().message;
  Pipe out = makePipe();
  SpawnRequest req = shellIn(*r, "cat /proc/self/cgroup");
  req.stdoutFd = out.write.get();
  Result<Child> child = spawn(req);
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  out.write.reset();
  std::vector<CgroupMembership> lines = parseProcCgroup(readAll(out.read.get()));
  EXPECT_EQ(child->cgroupEntry, r->v2DirFd() >= 0 ? CgroupEntry::kCloneIntoCgroup : CgroupEntry::kNone);
  Result<std::vector<CgroupMount>> mounts = readCgroupMounts();
  ASSERT_TRUE(mounts);
  std::vector<std::string> childDirs;
  for (const CgroupMount& mount : *mounts) {
    const CgroupMembership* line = membershipFor(mount, lines);
    if (auto dir = line ? cgroupDir(mount, line->path) : std::nullopt) childDirs.push_back(*dir);
  }
  for (const std::string& dir : r->paths()) {
    EXPECT_NE(std::find(childDirs.begin(), childDirs.end(), dir), childDirs.end()) << dir;
  }
}

TEST_F(CgroupTest, KillAllEndsADoubleForkedDaemonAndFreesItsPort) {
  Result<RunCgroup> r = run(1);
  ASSERT_TRUE(r) << r.error().message;
  Pipe out = makePipe();
  // The daemon leaves the session and process group and outlives its parent.
  SpawnRequest req = shellIn(*r,
                             "(setsid python3 -c 'import os, socket, time\n"
                             "s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen()\n"
                             "print(os.getpid(), s.getsockname()[1], flush=True); time.sleep(60)' &); exit 0");
  req.stdoutFd = out.write.get();
  Result<Child> child = spawn(req);
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  out.write.reset();
  int daemon = 0, port = 0;
  ASSERT_EQ(std::sscanf(readLine(out.read.get()).c_str(), "%d %d", &daemon, &port), 2);
  ASSERT_TRUE(waitExit(child->pidfd.get())) << "the parent shell exits at once";
  EXPECT_NE(::getsid(daemon), child->pid);
  EXPECT_TRUE(tcpPortInUse(static_cast<uint16_t>(port)));
  EXPECT_FALSE(r->isEmpty());

  Status killed = r->killAll();
  ASSERT_TRUE(killed) << killed.error().message;
  ASSERT_TRUE(waitEmpty(*r));
  EXPECT_TRUE(deadOrZombie(daemon));
  EXPECT_FALSE(tcpPortInUse(static_cast<uint16_t>(port)));
}

TEST_F(CgroupTest, KillEachProcessEndsTheTreeWithoutCgroupKill) {
  Result<RunCgroup> r = run(1);
  ASSERT_TRUE(r) << r.error().message;
  Pipe out = makePipe();
  SpawnRequest req = shellIn(*r, "sleep 60 & (setsid sleep 60 &); echo up; wait");
  req.stdoutFd = out.write.get();
  Result<Child> child = spawn(req);
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  out.write.reset();
  ASSERT_EQ(readLine(out.read.get()), "up");
  Status killed = r->killEachProcess();
  ASSERT_TRUE(killed) << killed.error().message;
  EXPECT_TRUE(waitEmpty(*r));
  std::optional<ExitStatus> status = waitExit(child->pidfd.get());
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->code, SIGKILL);
}

TEST_F(CgroupTest, ExceedingTheMemoryLimitIsAnOomKill) {
  if (!enforced("memory limit")) GTEST_SKIP() << "no memory controller on this host";
  Result<RunCgroup> r = run(1, CgroupLimits{.memoryBytes = 32 << 20});
  ASSERT_TRUE(r) << r.error().message;
  SpawnRequest req = shellIn(*r, "exec python3 -c \"b = bytearray(b'x') * (200 << 20)\"");
  Result<Child> child = spawn(req);
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  std::optional<ExitStatus> status = waitExit(child->pidfd.get());
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->code, SIGKILL);
  Result<CgroupStats> stats = r->stats();
  ASSERT_TRUE(stats) << stats.error().message;
  ASSERT_TRUE(stats->oomKills);
  EXPECT_GE(*stats->oomKills, 1u);
}

TEST_F(CgroupTest, ForkBeyondThePidsLimitFailsWithEagain) {
  if (!enforced("process limit")) GTEST_SKIP() << "no pids controller on this host";
  Result<RunCgroup> r = run(1, CgroupLimits{.maxPids = 5});
  ASSERT_TRUE(r) << r.error().message;
  Pipe out = makePipe();
  SpawnRequest req = shellIn(*r,
                             "exec python3 -c 'import errno, os, time\n"
                             "n = 0\n"
                             "try:\n"
                             "    while n < 50:\n"
                             "        if os.fork() == 0:\n"
                             "            time.sleep(60); os._exit(0)\n"
                             "        n += 1\n"
                             "    print(\"unlimited\", n)\n"
                             "except OSError as e:\n"
                             "    print(errno.errorcode[e.errno], n)'");
  req.stdoutFd = out.write.get();
  Result<Child> child = spawn(req);
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  out.write.reset();
  EXPECT_EQ(readLine(out.read.get()), "EAGAIN 4");  // python itself is the fifth
  Result<CgroupStats> stats = r->stats();
  ASSERT_TRUE(stats && stats->pidsCurrent);
  EXPECT_EQ(*stats->pidsCurrent, 5u);
  ASSERT_TRUE(r->killAll());
  EXPECT_TRUE(waitEmpty(*r));
}

TEST_F(CgroupTest, ANewRunAfterKillAllIsNotKilled) {
  Result<RunCgroup> first = run(1);
  ASSERT_TRUE(first) << first.error().message;
  Result<Child> victim = spawn(shellIn(*first, "exec sleep 60"));
  ASSERT_TRUE(victim) << victim.error().message;
  ChildReaper victimReaper(victim->pidfd.get());
  ASSERT_TRUE(first->killAll());
  ASSERT_TRUE(waitEmpty(*first));
  ASSERT_TRUE(waitExit(victim->pidfd.get()));

  // Run 2 is a new cgroup; run 1 again is the killed one, made afresh.
  for (uint64_t id : {2, 1}) {
    Result<RunCgroup> next = run(id);
    ASSERT_TRUE(next) << next.error().message;
    Pipe out = makePipe();
    SpawnRequest req = shellIn(*next, "echo up; exec sleep 60");
    req.stdoutFd = out.write.get();
    Result<Child> child = spawn(req);
    ASSERT_TRUE(child) << child.error().message;
    ChildReaper reaper(child->pidfd.get());
    out.write.reset();
    EXPECT_EQ(readLine(out.read.get()), "up") << "run " << id << " was killed at birth";
    Result<std::optional<ExitStatus>> status = reap(child->pidfd.get());
    ASSERT_TRUE(status);
    EXPECT_FALSE(status->has_value()) << "run " << id << " is still running";
    ASSERT_TRUE(next->killAll());
    ASSERT_TRUE(waitEmpty(*next));
    ASSERT_TRUE(next->remove());
  }
}

// Adoption finds whichever hierarchies the run joined: all of them with
// limits, only the v2 tree (on a hybrid host) without.
TEST_F(CgroupTest, AdoptFindsTheRunOfARunningChild) {
  for (CgroupLimits limits : {CgroupLimits{64 << 20, 50, 50}, CgroupLimits{}}) {
    Result<RunCgroup> r = run(limits.memoryBytes > 0 ? 7 : 8, limits);
    ASSERT_TRUE(r) << r.error().message;
    Result<Child> child = spawn(shellIn(*r, "exec sleep 60"));
    ASSERT_TRUE(child) << child.error().message;
    ChildReaper reaper(child->pidfd.get());
    Result<RunCgroup> adopted = RunCgroup::adopt(child->pid, *cgroups_);
    ASSERT_TRUE(adopted) << adopted.error().message;
    EXPECT_EQ(adopted->paths(), r->paths());
    EXPECT_FALSE(adopted->isEmpty());
    if (viaV1("memory limit")) {
      Result<CgroupStats> stats = adopted->stats();
      ASSERT_TRUE(stats) << stats.error().message;
      EXPECT_EQ(stats->oomKills.has_value(), limits.memoryBytes > 0) << "the memory cgroup only with a limit";
    }
    ASSERT_TRUE(adopted->killAll());
    EXPECT_TRUE(waitEmpty(*r));
  }

  Result<RunCgroup> self = RunCgroup::adopt(::getpid(), *cgroups_);
  ASSERT_FALSE(self);
  EXPECT_EQ(self.error().code, Errc::kNotFound);
}

TEST_F(CgroupTest, RemoveDeletesEveryDirectoryOnceEmpty) {
  Result<RunCgroup> r = run(1);
  ASSERT_TRUE(r) << r.error().message;
  Result<Child> child = spawn(shellIn(*r, "exec sleep 60"));
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  Status busy = r->remove();
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, Errc::kConflict);
  ASSERT_TRUE(r->killAll());
  ASSERT_TRUE(waitEmpty(*r));
  ASSERT_TRUE(r->remove());
  for (const std::string& dir : r->paths()) EXPECT_FALSE(exists(dir)) << dir;
  EXPECT_TRUE(r->isEmpty());
}

// What the supervisor does after every spawn: the run keeps working by path.
TEST_F(CgroupTest, AReleasedRunStillReportsKillsAndRemoves) {
  Result<RunCgroup> r = run(1);
  ASSERT_TRUE(r) << r.error().message;
  Result<Child> child = spawn(shellIn(*r, "exec sleep 60"));
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  r->releaseSpawnFds();
  EXPECT_EQ(r->v2DirFd(), -1);
  EXPECT_TRUE(r->procsFds().empty());
  EXPECT_FALSE(r->watchFd()) << "no descriptor is kept per run";
  EXPECT_FALSE(r->isEmpty());
  Result<CgroupStats> stats = r->stats();
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_TRUE(stats->cpuNanos || stats->memoryBytes || stats->pidsCurrent);
  ASSERT_TRUE(r->killAll());
  ASSERT_TRUE(waitEmpty(*r));
  ASSERT_TRUE(r->remove());
  for (const std::string& dir : r->paths()) EXPECT_FALSE(exists(dir)) << dir;
}

TEST_F(CgroupTest, RemoveEmptyRunsKeepsTheLiveOnes) {
  Result<RunCgroup> live = run(1);
  Result<RunCgroup> ended = run(2);
  ASSERT_TRUE(live && ended);
  Result<Child> child = spawn(shellIn(*live, "exec sleep 60"));
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  EXPECT_EQ(cgroups_->removeEmptyRuns(), 1u);
  for (const std::string& dir : ended->paths()) EXPECT_FALSE(exists(dir)) << dir;
  for (const std::string& dir : live->paths()) EXPECT_TRUE(exists(dir)) << dir;
}

TEST_F(CgroupTest, StatsCountTheCpuOfABusyLoop) {
  Result<RunCgroup> r = run(1);
  ASSERT_TRUE(r) << r.error().message;
  SpawnRequest req = shellIn(*r,
                             "exec python3 -c 'import time\n"
                             "t = time.process_time()\n"
                             "while time.process_time() - t < 0.3: pass'");
  Result<Child> child = spawn(req);
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  ASSERT_TRUE(waitExit(child->pidfd.get()));
  Result<CgroupStats> stats = r->stats();
  ASSERT_TRUE(stats) << stats.error().message;
  ASSERT_TRUE(stats->cpuNanos);
  EXPECT_GE(*stats->cpuNanos, 250'000'000u);
  EXPECT_EQ(stats->rssBytes, 0u) << "no process left";
  if (enforced("memory limit") && !viaV1("memory limit")) {
    EXPECT_TRUE(stats->memoryBytes && stats->oomKills);
  }
  if (enforced("process limit") && !viaV1("process limit")) {
    EXPECT_EQ(stats->pidsCurrent, 0u);
  }
}

// The v1 hierarchies a run is in, by controller ("memory", "pids", "cpu").
std::vector<std::string> v1ControllersOf(const RunCgroup& r) {
  std::vector<std::string> out;
  Result<std::vector<CgroupMount>> mounts = readCgroupMounts();
  if (!mounts) return out;
  for (const std::string& dir : r.paths()) {
    for (const CgroupMount& m : *mounts) {
      if (!m.v2 && dir.starts_with(m.mountPoint + "/")) out.insert(out.end(), m.controllers.begin(), m.controllers.end());
    }
  }
  return out;
}

bool has(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// Joining a v1 hierarchy is a migration (cgroup.procs) that waits for an RCU
// grace period: a run without limits is only in its v2 cgroup, born there.
TEST_F(CgroupTest, ARunWithoutLimitsJoinsNoV1Hierarchy) {
  Result<RunCgroup> r = run(1);
  ASSERT_TRUE(r) << r.error().message;
  if (r->v2DirFd() < 0) GTEST_SKIP() << "no cgroup v2 tree: every run joins v1 hierarchies";
  std::vector<std::string> v1 = v1ControllersOf(*r);
  for (const char* c : {"memory", "pids"}) EXPECT_FALSE(has(v1, c)) << c;
  if (!has(v1, "cpuacct") && !has(v1, "freezer")) {
    EXPECT_FALSE(has(v1, "cpu"));
  }
  if (v1.empty()) {
    EXPECT_TRUE(r->procsFds().empty());
  }

  Pipe out = makePipe();
  SpawnRequest req = shellIn(*r, "cat /proc/self/cgroup");
  req.stdoutFd = out.write.get();
  Result<Child> child = spawn(req);
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  out.write.reset();
  std::string lines = readAll(out.read.get());
  EXPECT_NE(lines.find("/web/run-1\n"), std::string::npos) << lines;  // the v2 line
  for (const CgroupMembership& line : parseProcCgroup(lines)) {
    if (has(line.controllers, "memory") || has(line.controllers, "pids")) {
      EXPECT_FALSE(line.path.ends_with("/run-1")) << line.path;
    }
  }
}

// With a memory limit (only) the run joins the memory hierarchy where that
// is v1, and no other v1 one; the OOM count comes from there.
TEST_F(CgroupTest, ARunWithAMemoryLimitJoinsOnlyTheMemoryHierarchy) {
  if (!viaV1("memory limit")) GTEST_SKIP() << "the memory limit is not a v1 hierarchy here";
  Result<RunCgroup> r = run(1, CgroupLimits{.memoryBytes = 64 << 20});
  ASSERT_TRUE(r) << r.error().message;
  std::vector<std::string> v1 = v1ControllersOf(*r);
  EXPECT_TRUE(has(v1, "memory"));
  if (viaV1("process limit")) {
    EXPECT_FALSE(has(v1, "pids"));
  }
  EXPECT_EQ(r->procsFds().size(), r->paths().size() - (r->v2DirFd() >= 0 ? 1 : 0));
  Result<CgroupStats> stats = r->stats();
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->oomKills, 0u);
  EXPECT_TRUE(stats->memoryBytes);
}

// Without a memory cgroup the anonymous memory is summed from /proc/PID/statm.
TEST_F(CgroupTest, RssIsReportedWithoutAMemoryCgroup) {
  Result<RunCgroup> r = run(1);
  ASSERT_TRUE(r) << r.error().message;
  Pipe out = makePipe();
  SpawnRequest req = shellIn(*r,
                             "exec python3 -c 'import sys, time\n"
                             "b = b\"x\" * (24 << 20)\n"
                             "print(\"up\", flush=True); time.sleep(60)'");
  req.stdoutFd = out.write.get();
  Result<Child> child = spawn(req);
  ASSERT_TRUE(child) << child.error().message;
  ChildReaper reaper(child->pidfd.get());
  out.write.reset();
  ASSERT_EQ(readLine(out.read.get()), "up");
  Result<CgroupStats> stats = r->stats();
  ASSERT_TRUE(stats) << stats.error().message;
  ASSERT_TRUE(stats->rssBytes);
  EXPECT_GE(*stats->rssBytes, uint64_t{24} << 20);
  EXPECT_LT(*stats->rssBytes, uint64_t{200} << 20);
  if (viaV1("memory limit")) {
    EXPECT_FALSE(stats->oomKills) << "no memory cgroup, no OOM count";
    EXPECT_FALSE(stats->memoryBytes);
  }
  ASSERT_TRUE(r->killAll());
  EXPECT_TRUE(waitEmpty(*r));
}

// A v2 cgroup in the "domain invalid" state refuses CLONE_INTO_CGROUP with
// EOPNOTSUPP; spawn then falls back to cgroup.procs, which the kernel refuses
// too: the error names the "cgroup" step, not clone3.
TEST_F(CgroupTest, RefusedCloneIntoCgroupFallsBackToCgroupProcs) {
  Result<RunCgroup> r = run(1);
  ASSERT_TRUE(r) << r.error().message;
  if (r->v2DirFd() < 0) GTEST_SKIP() << "no cgroup v2 tree";
  Result<CgroupDir> parent = CgroupDir::make(cgroups_->rootPath() + "/mixed");
  ASSERT_TRUE(parent);
  Result<CgroupDir> threaded = CgroupDir::make(parent->path() + "/threaded");
  Result<CgroupDir> invalid = CgroupDir::make(parent->path() + "/invalid");
  ASSERT_TRUE(threaded && invalid);
  ASSERT_TRUE(threaded->write("cgroup.type", "threaded"));
  ASSERT_TRUE(invalid->read("cgroup.type").value_or("").starts_with("domain invalid"));
  SpawnRequest req = shellIn(*r, "exit 0");
  req.cgroupFd = invalid->fd();
  Result<Child> child = spawn(req);
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().step, "cgroup");
  EXPECT_EQ(child.error().sysErrno, EOPNOTSUPP);
}

TEST(CgroupSpawn, AFailedJoinIsReportedAsTheCgroupStep) {
  UniqueFd readOnly(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  SpawnRequest req;
  req.path = "/bin/true";
  req.argv = {"true"};
  req.joinCgroupFds = {readOnly.get()};
  Result<Child> child = spawn(req);
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().step, "cgroup");
  EXPECT_EQ(child.error().sysErrno, EBADF);
  EXPECT_EQ(child.error().message, "cgroup join failed: Bad file descriptor");
}

}  // namespace
}  // namespace hv::os
