// Supervisor on the real host (root and cgroups, else skipped): what a run's
// status reports from its cgroups, and how a start that cannot spawn ends. A run without limits is born in its v2
// cgroup only (no v1 migration on hybrid hosts), and still shows its CPU and
// RSS; a memory limit puts it in the memory cgroup, and an OOM kill is named.
// Each test has its own data dir, store, cgroup root and loopback ports, and
// stops and removes everything it started, also when an assertion fails.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>

#include "base/clock.h"
#include "os/cgroup.h"
#include "store/database.h"
#include "supervisor/supervisor.h"

namespace hv::supervisor {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class SupervisorStatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "managing cgroups needs root";
    auto cgroups = os::Cgroups::open("hv-suptest-" + std::to_string(::getpid()) + "-" + std::to_string(++counter_));
    if (!cgroups || !cgroups->usable()) GTEST_SKIP() << "no usable cgroups on this host";
    cgroups_.emplace(std::move(*cgroups));
    char tmpl[] = "/tmp/hv-suptest-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto db = store::Database::open(dir_ + "/hostvisor.db");
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
    store::AccountRecord account;
    account.name = "default";
    account.user = "root";
    account.uid = ::geteuid();
    account.gid = ::getegid();
    account.home = dir_;
    ASSERT_TRUE(db_->insertAccount(account));
    SupervisorOptions options;
    options.logDir = dir_ + "/logs";
    ASSERT_TRUE(fs::create_directory(options.logDir));
    options.portLo = 47100;
    options.portHi = 47199;
    options.cgroups = &*cgroups_;
    // The programs' output goes through a real log keeper (the built binary).
    keeper_.emplace(io_, logkeeper::ClientOptions{dir_ + "/log-keeper.sock", dir_, dir_ + "/log-keeper.log",
                                                  1 << 20, 1, HV_BINARY});
    Status kept = keeper_->start();
    ASSERT_TRUE(kept) << kept.error().message;
    options.output = &*keeper_;
    options.onRoutesChanged = [this] { ++routeCalls_; };
    options_ = options;
    sup_.emplace(io_, *db_, clock_, std::move(options));
    Status loaded = sup_->load();
    ASSERT_TRUE(loaded) << loaded.error().message;
  }

  void TearDown() override {
    if (sup_) {
      bool stopped = false;
      sup_->stopAll([&] { stopped = true; });
      runUntil([&] { return stopped; }, 15s);
      sup_.reset();
    }
    if (keeper_) keeper_->quit();
    if (cgroups_) {
      Status ok = cgroups_->destroy();
      EXPECT_TRUE(ok) << ok.error().message;
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Runs the event loop until `done` holds or the deadline passes.
  template <typename F>
  bool runUntil(F done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io_.restart();
      io_.run_for(20ms);
    }
    return true;
  }

  std::string program(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0755);
    return path;
  }

  Result<InstanceStatus> create(const std::string& name, const std::string& command, int64_t memoryBytes) {
    store::InstanceRecord spec;
    spec.name = name;
    spec.account = "default";
    spec.command = command;
    spec.restart = store::RestartMode::kNever;
    spec.ready = store::ReadyCheck::kStartSecs;
    spec.startSecs = 0;
    spec.memoryBytes = memoryBytes;
    return sup_->create(spec, true);
  }

  // The cgroup of `pid` in the v1 hierarchy of `controller` ("" if none).
  static std::string v1CgroupOf(int pid, const std::string& controller) {
    auto lines = os::readMembership(pid);
    if (!lines) return {};
    for (const auto& line : *lines) {
      for (const auto& c : line.controllers) {
        if (c == controller) return line.path;
      }
    }
    return {};
  }

  static bool memoryIsV1(const os::Cgroups& cgroups) {
    for (const auto& m : cgroups.mechanisms()) {
      if (m.name == "memory limit") return m.enforced && m.detail.starts_with("v1 ");
    }
    return false;
  }

  // Processes whose command line names `program` (e.g. python running it).
  static int processesRunning(const std::string& program) {
    int count = 0;
    for (const auto& entry : fs::directory_iterator("/proc")) {
      std::ifstream in(entry.path() / "cmdline");
      std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (cmdline.find(program) != std::string::npos) ++count;
    }
    return count;
  }

  static inline int counter_ = 0;
  boost::asio::io_context io_;
  SystemClock clock_;
  std::optional<os::Cgroups> cgroups_;
  std::string dir_;
  std::unique_ptr<store::Database> db_;
  std::optional<logkeeper::Client> keeper_;
  std::optional<Supervisor> sup_;
  SupervisorOptions options_;  // what sup_ was made with
  int routeCalls_ = 0;  // onRoutesChanged
};

TEST_F(SupervisorStatsTest, ARunWithoutLimitsShowsCpuAndRssWithoutAMemoryCgroup) {
  const std::string prog = program("hold.py",
                                   "#!/usr/bin/python3\n"
                                   "import time\n"
                                   "b = b'x' * (16 << 20)\n"
                                   "time.sleep(60)\n");
  auto created = create("plain", prog, 0);
  ASSERT_TRUE(created) << created.error().message;
  std::optional<InstanceStatus> last;
  // Stats are cached for a second: poll until python has its 16 MiB.
  const bool seen = runUntil(
      [&] {
        auto s = sup_->get("plain");
        if (s) last = *s;
        return s && s->state == State::kRunning && s->rssBytes && *s->rssBytes >= (16 << 20);
      },
      15s);
  ASSERT_TRUE(last);
  ASSERT_TRUE(seen) << "state " << stateName(last->state) << ", rss " << last->rssBytes.value_or(-1) << ": "
                    << last->reason;
  EXPECT_LT(*last->rssBytes, int64_t{200} << 20);
  ASSERT_TRUE(last->cpuSeconds);
  EXPECT_GE(*last->cpuSeconds, 0.0);
  if (memoryIsV1(*cgroups_)) {
    // Not migrated into the v1 memory hierarchy: no RCU grace period paid.
    EXPECT_EQ(v1CgroupOf(last->pid, "memory").find("/plain/run-"), std::string::npos)
        << v1CgroupOf(last->pid, "memory");
  }
}

// forEachStatus (the list RPC) reuses one snapshot object: a stopped
// instance after a running one must not inherit its pid, times or usage.
TEST_F(SupervisorStatsTest, ForEachStatusMatchesListAndLeavesNothingOfThePreviousInstance) {
  const std::string prog = program("sleep.sh", "#!/bin/sh\nexec sleep 60\n");
  auto running = create("a-running", prog, 0);
  ASSERT_TRUE(running) << running.error().message;
  store::InstanceRecord spec;
  spec.name = "b-stopped";
  spec.account = "default";
  spec.command = prog;
  ASSERT_TRUE(sup_->create(spec, false));
  ASSERT_TRUE(runUntil(
      [&] {
        auto s = sup_->get("a-running");
        return s && s->state == State::kRunning && s->cpuSeconds && s->rssBytes;
      },
      15s));

  std::vector<InstanceStatus> seen;
  sup_->forEachStatus([&](const InstanceStatus& s) { seen.push_back(s); });
  const std::vector<InstanceStatus> listed = sup_->list();
  ASSERT_EQ(seen.size(), 2u);
  ASSERT_EQ(listed.size(), 2u);
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].spec.name, listed[i].spec.name);
    EXPECT_EQ(seen[i].spec.port, listed[i].spec.port);
    EXPECT_EQ(seen[i].state, listed[i].state);
    EXPECT_EQ(seen[i].pid, listed[i].pid);
    EXPECT_EQ(seen[i].startedAt, listed[i].startedAt);
    EXPECT_EQ(seen[i].cpuSeconds.has_value(), listed[i].cpuSeconds.has_value());
    EXPECT_EQ(seen[i].rssBytes.has_value(), listed[i].rssBytes.has_value());
  }
  EXPECT_EQ(seen[0].spec.name, "a-running");
  EXPECT_GT(seen[0].pid, 0);
  const InstanceStatus& stopped = seen[1];
  EXPECT_EQ(stopped.spec.name, "b-stopped");
  EXPECT_EQ(stopped.state, State::kStopped);
  EXPECT_EQ(stopped.pid, 0);
  EXPECT_EQ(stopped.startedAt, 0);
  EXPECT_EQ(stopped.uptimeSeconds, 0);
  EXPECT_FALSE(stopped.cpuSeconds);
  EXPECT_FALSE(stopped.rssBytes);
  EXPECT_FALSE(stopped.lastExit);
  EXPECT_EQ(stopped.output.writtenBytes, 0u);
}

// Route publication is cheap and selective: instances without a route never
// call onRoutesChanged (a mass start of them republishes nothing), a routed
// one does on create and on each state change, and routeViews() holds only
// the routed ones, with their current state.
TEST_F(SupervisorStatsTest, OnlyInstancesWithARouteAskForARoutePublication) {
  const std::string prog = program("sleep.sh", "#!/bin/sh\nexec sleep 60\n");
  ASSERT_TRUE(create("plain", prog, 0));
  ASSERT_TRUE(runUntil([&] { return sup_->get("plain").value().state == State::kRunning; }, 15s));
  EXPECT_EQ(routeCalls_, 0);
  EXPECT_TRUE(sup_->routeViews().empty());

  store::InstanceRecord spec;
  spec.name = "web";
  spec.account = "default";
  spec.command = prog;
  spec.route = "/web/";
  spec.stripPrefix = true;
  spec.access = {"deny all"};
  spec.startSecs = 0;
  auto web = sup_->create(spec, true);
  ASSERT_TRUE(web) << web.error().message;
  ASSERT_TRUE(runUntil([&] { return sup_->get("web").value().state == State::kRunning; }, 15s));
  EXPECT_GE(routeCalls_, 2);  // created, then running (starting too, with the pool)
  auto views = sup_->routeViews();
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].name, "web");
  EXPECT_EQ(views[0].route, "/web/");
  EXPECT_EQ(views[0].port, web->spec.port);
  EXPECT_TRUE(views[0].stripPrefix);
  EXPECT_EQ(views[0].access, std::vector<std::string>{"deny all"});
  EXPECT_EQ(views[0].state, State::kRunning);

  const int before = routeCalls_;
  bool stopped = false;
  sup_->stop("plain", [&](Result<InstanceStatus>) { stopped = true; });
  ASSERT_TRUE(runUntil([&] { return stopped; }, 15s));
  EXPECT_EQ(routeCalls_, before);
  EXPECT_TRUE(sup_->anyActive());
  stopped = false;
  sup_->stop("web", [&](Result<InstanceStatus>) { stopped = true; });
  ASSERT_TRUE(runUntil([&] { return stopped; }, 15s));
  EXPECT_GT(routeCalls_, before);
  EXPECT_EQ(sup_->routeViews().at(0).state, State::kStopped);
  EXPECT_FALSE(sup_->anyActive());
}

// A crash restart execs the new process before the daemon writes its lines
// (the keeper flush and the event log are off that path), yet the log reads
// in order: the program's last words, then our exit line, then the new run's
// "started" line.
TEST_F(SupervisorStatsTest, ACrashRestartLogsTheLastWordsBeforeTheExitLineAndThatBeforeTheNewStart) {
  const std::string marker = dir_ + "/second-run";
  const std::string prog = program("once.sh", "#!/bin/sh\n"
                                              "if [ -e " + marker + " ]; then exec sleep 60; fi\n"
                                              "touch " + marker + "\n"
                                              "echo first-run-last-words\n"
                                              "exit 3\n");
  store::InstanceRecord spec;
  spec.name = "crashy";
  spec.account = "default";
  spec.command = prog;
  spec.restart = store::RestartMode::kAlways;
  spec.startSecs = 0;
  ASSERT_TRUE(sup_->create(spec, true));
  const std::string log = sup_->logs().pathOf("crashy");
  auto text = [&] {
    std::ifstream in(log);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto countOf = [](const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
    return n;
  };
  ASSERT_TRUE(runUntil(
      [&] {
        auto s = sup_->get("crashy");
        return s && s->state == State::kRunning && s->restarts == 1 && s->pid > 0 &&
               countOf(text(), "started pid") == 2;
      },
      15s))
      << text();
  const std::string all = text();
  const size_t words = all.find("first-run-last-words");
  const size_t exitLine = all.find("exited with code 3; restarting");
  const size_t secondStart = all.find("started pid", all.find("started pid") + 1);
  ASSERT_NE(words, std::string::npos) << all;
  ASSERT_NE(exitLine, std::string::npos) << all;
  EXPECT_LT(words, exitLine) << all;
  EXPECT_LT(exitLine, secondStart) << all;
  EXPECT_EQ(::kill(sup_->get("crashy").value().pid, 0), 0);
}

// A boot (load) starts every wanted instance through the pool, a few at a
// time; one stopped by a request before its turn stays stopped.
TEST_F(SupervisorStatsTest, ABootStartsEveryWantedInstanceOnceAndHonoursAStopBeforeItsTurn) {
  const std::string prog = program("sleep.sh", "#!/bin/sh\nexec sleep 60\n");
  constexpr int kCount = 10;
  auto nameOf = [](int i) { return "boot" + std::to_string(i); };
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(create(nameOf(i), prog, 0));
  ASSERT_TRUE(runUntil(
      [&] {
        for (int i = 0; i < kCount; ++i)
          if (sup_->get(nameOf(i)).value().state != State::kRunning) return false;
        return true;
      },
      20s));
  bool stopped = false;
  sup_->stopAll([&] { stopped = true; });  // keeps `wanted`, as a daemon shutdown does
  ASSERT_TRUE(runUntil([&] { return stopped; }, 15s));
  sup_.reset();

  sup_.emplace(io_, *db_, clock_, options_);
  ASSERT_TRUE(sup_->load());
  const std::string last = nameOf(kCount - 1);  // queued behind the first few
  bool lastStopped = false;
  sup_->stop(last, [&](Result<InstanceStatus> s) { lastStopped = s && s->state == State::kStopped; });
  EXPECT_TRUE(lastStopped);
  ASSERT_TRUE(runUntil(
      [&] {
        for (int i = 0; i + 1 < kCount; ++i)
          if (sup_->get(nameOf(i)).value().state != State::kRunning) return false;
        return true;
      },
      20s));
  std::set<int> pids;
  for (int i = 0; i + 1 < kCount; ++i) {
    const int pid = sup_->get(nameOf(i)).value().pid;
    EXPECT_EQ(::kill(pid, 0), 0) << pid;
    pids.insert(pid);
  }
  EXPECT_EQ(pids.size(), static_cast<size_t>(kCount - 1));
  io_.restart();
  io_.poll();  // nothing left queued would start it now
  auto still = sup_->get(last).value();
  EXPECT_EQ(still.state, State::kStopped);
  EXPECT_EQ(still.pid, 0);
  EXPECT_FALSE(still.spec.wanted);
}

TEST_F(SupervisorStatsTest, AMemoryLimitJoinsTheMemoryCgroupAndAnOomKillIsNamed) {
  const std::string prog = program("hog.py",
                                   "#!/usr/bin/python3\n"
                                   "import sys, time\n"
                                   "print('up', flush=True)\n"
                                   "time.sleep(0.3)\n"
                                   "b = b'x' * (300 << 20)\n"
                                   "time.sleep(60)\n");
  auto created = create("hog", prog, 48 << 20);
  ASSERT_TRUE(created) << created.error().message;
  int pid = 0;  // the spawn finishes off the control thread
  ASSERT_TRUE(runUntil([&] { return (pid = sup_->get("hog").value().pid) > 0; }, 10s));
  if (memoryIsV1(*cgroups_)) {
    EXPECT_NE(v1CgroupOf(pid, "memory").find("/hog/run-"), std::string::npos) << v1CgroupOf(pid, "memory");
  }
  std::optional<InstanceStatus> last;
  const bool ended = runUntil(
      [&] {
        auto s = sup_->get("hog");
        if (s) last = *s;
        return s && s->lastExit && s->state != State::kRunning && s->state != State::kStarting;
      },
      20s);
  ASSERT_TRUE(last);
  ASSERT_TRUE(ended) << "state " << stateName(last->state) << ": " << last->reason;
  EXPECT_NE(last->reason.find("out of memory"), std::string::npos) << last->reason;
}

// A spawn that keeps failing with a passing error (here setrlimit: an open
// files cap above fs.nr_open, EPERM even for root) with start_secs 0 and
// restart always used to respawn on the same stack until it overflowed and
// the daemon died; now it backs off and ends fatal as a crash loop.
TEST_F(SupervisorStatsTest, ASpawnThatKeepsFailingEndsFatalInsteadOfRecursing) {
  auto account = db_->findAccount("default");
  ASSERT_TRUE(account && *account);
  store::AccountRecord a = **account;
  a.maxOpenFiles = 1 << 30;
  ASSERT_TRUE(db_->updateAccount(a));
  const std::string prog = program("idle.sh", "#!/bin/sh\nexec sleep 60\n");
  store::InstanceRecord spec;
  spec.name = "failing";
  spec.account = "default";
  spec.command = prog;
  spec.restart = store::RestartMode::kAlways;
  spec.ready = store::ReadyCheck::kStartSecs;
  spec.startSecs = 0;
  (void)sup_->create(spec, true);
  std::optional<InstanceStatus> last;
  const bool fatal = runUntil(
      [&] {
        auto s = sup_->get("failing");
        if (s) last = *s;
        return s && s->state == State::kFatal;
      },
      20s);
  ASSERT_TRUE(last);
  ASSERT_TRUE(fatal) << "state " << stateName(last->state) << ": " << last->reason;
  EXPECT_NE(last->reason.find("crash loop"), std::string::npos) << last->reason;
  EXPECT_EQ(last->pid, 0);
}

// Spawns run on worker threads (SpawnPool). A stop that comes while one is in
// flight ends with the new child killed and the instance stopped; none is
// left running that nobody supervises.
TEST_F(SupervisorStatsTest, AStopWhileTheSpawnIsInFlightKillsTheNewChild) {
  const std::string prog = program("idle.py", "#!/usr/bin/python3\nimport time\ntime.sleep(60)\n");
  auto created = create("early", prog, 0);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->state, State::kStarting);
  std::optional<Result<InstanceStatus>> stopped;
  sup_->stop("early", [&](Result<InstanceStatus> r) { stopped = std::move(r); });  // before the loop ran
  ASSERT_TRUE(runUntil([&] { return stopped.has_value(); }, 15s));
  ASSERT_TRUE(*stopped) << stopped->error().message;
  EXPECT_EQ((*stopped)->state, State::kStopped);
  EXPECT_EQ((*stopped)->pid, 0);
  EXPECT_FALSE(sup_->anyProcess());
  EXPECT_TRUE(runUntil([&] { return processesRunning(prog) == 0; }, 5s));
  // And it starts again normally.
  ASSERT_TRUE(sup_->start("early"));
  EXPECT_TRUE(runUntil([&] { return sup_->get("early").value().state == State::kRunning; }, 10s));
}

TEST_F(SupervisorStatsTest, ARemoveWhileTheSpawnIsInFlightLeavesNoProcess) {
  const std::string prog = program("idle.py", "#!/usr/bin/python3\nimport time\ntime.sleep(60)\n");
  ASSERT_TRUE(create("gone", prog, 0));
  std::optional<Status> removed;
  sup_->remove("gone", [&](Status s) { removed = std::move(s); });
  ASSERT_TRUE(runUntil([&] { return removed.has_value(); }, 15s));
  ASSERT_TRUE(*removed) << removed->error().message;
  EXPECT_FALSE(sup_->has("gone"));
  EXPECT_TRUE(runUntil([&] { return processesRunning(prog) == 0; }, 5s));
}

// Many starts at once (as at boot or a bulk create): each gets its own
// process, and all of them run.
TEST_F(SupervisorStatsTest, ConcurrentStartsEachGetTheirOwnRunningProcess) {
  const std::string prog = program("idle.py", "#!/usr/bin/python3\nimport time\ntime.sleep(60)\n");
  constexpr int kCount = 12;
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(create("many" + std::to_string(i), prog, 0));
  ASSERT_TRUE(runUntil(
      [&] {
        for (int i = 0; i < kCount; ++i) {
          if (sup_->get("many" + std::to_string(i)).value().state != State::kRunning) return false;
        }
        return true;
      },
      20s));
  std::set<int> pids;
  for (int i = 0; i < kCount; ++i) {
    const int pid = sup_->get("many" + std::to_string(i)).value().pid;
    EXPECT_GT(pid, 0);
    EXPECT_EQ(::kill(pid, 0), 0) << pid;
    pids.insert(pid);
  }
  EXPECT_EQ(pids.size(), static_cast<size_t>(kCount));
}

// The daemon going away while a spawn is in flight (its outcome never
// delivered) kills that child rather than leaving it unrecorded: the next
// daemon would start another one.
TEST_F(SupervisorStatsTest, ASupervisorDestroyedWithASpawnInFlightLeavesNoProcess) {
  const std::string prog = program("idle.py", "#!/usr/bin/python3\nimport time\ntime.sleep(60)\n");
  ASSERT_TRUE(create("orphan", prog, 0));
  sup_.reset();  // the loop never ran: the outcome is queued or still coming
  io_.restart();
  io_.poll();
  EXPECT_TRUE(runUntil([&] { return processesRunning(prog) == 0; }, 5s));
}

}  // namespace
}  // namespace hv::supervisor
