// The process half of Supervisor: load and re-adoption, start, exit, stop.
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "base/paths.h"
#include "os/process.h"
#include "os/spawn.h"
#include "supervisor/proc_time.h"
#include "supervisor/spawn_plan.h"
#include "supervisor/spawn_pool.h"
#include "supervisor/supervisor_impl.h"
#include "supervisor/validation.h"

namespace hv::supervisor {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// Quick failures in a row after which a restarting instance is worth an alert
// (before it is given up as fatal, at RestartParams::maxQuickFailures).
constexpr int kCrashLoopAlertFailures = 3;

double jitter() {
  static thread_local std::minstd_rand rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// Waits for a killed run cgroup to empty: SIGKILLed processes leave within
// microseconds to milliseconds, so a doubling timer (1 ms … 64 ms, 5 s at
// most) instead of blocking the loop. Owns itself through its timer's handler.
struct EmptyWaiter : std::enable_shared_from_this<EmptyWaiter> {
  explicit EmptyWaiter(asio::io_context& io)
      : timer(io), deadline(std::chrono::steady_clock::now() + std::chrono::seconds(5)) {}

  void check(Millis delay) {
    if (isEmpty()) return done(true);
    if (std::chrono::steady_clock::now() >= deadline) return done(false);
    timer.expires_after(delay);
    timer.async_wait([self = shared_from_this(), delay](error_code ec) {
      if (!ec) self->check(std::min(delay * 2, Millis(64)));
    });
  }

  asio::steady_timer timer;
  std::chrono::steady_clock::time_point deadline;
  std::function<bool()> isEmpty;
  std::function<void(bool empty)> done;
};

std::string signalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

bool isListed(const std::vector<store::AccountRecord>& accounts, const std::string& name) {
  return std::any_of(accounts.begin(), accounts.end(), [&](const auto& a) { return a.name == name; });
}

}  // namespace

Status Supervisor::load() {
  auto rows = db_.listInstances();
  if (!rows) return std::unexpected(rows.error());
  for (auto& row : *rows) {
    ports_.reserve(static_cast<uint16_t>(row.port));
    auto owned = std::make_unique<Instance>(io_);
    owned->serial = nextSerial_++;
    Instance& inst = *owned;
    inst.spec = std::move(row);
    instances_.emplace(inst.spec.name, std::move(owned));
    if (inst.spec.lastPid > 0 && adopt(inst)) continue;
    if (inst.spec.wanted && inst.spec.autostart) bootQueue_.push_back(inst.spec.name);
  }
  dropStaleMountRecords();  // of accounts removed since they were written
  spdlog::info("loaded {} instances, {} to start", instances_.size(), bootQueue_.size());
  startQueued();
  return {};
}

// Boot starts go through the pool (the control thread prepares the next
// runs while the workers clone and exec on both cores), but at most
// kBootInFlight prepared at a time: with all 1000 prepared ahead (each holding
// its cgroup's descriptors until its spawn) every clone and exec walked a
// bigger descriptor table, and the cold start was measured slower (5.9 s
// against 4.3 s one by one on this thread).
void Supervisor::startQueued() {
  constexpr size_t kBootInFlight = 4;
  while (bootInFlight_ < kBootInFlight && !bootQueue_.empty()) {
    Instance* inst = find(bootQueue_.front());
    bootQueue_.pop_front();
    // Started, stopped or removed by a request meanwhile: nothing to do.
    if (!inst || inst->state != State::kStopped || !inst->spec.wanted) continue;
    spawnNow(*inst);
    if (inst->spawning) {
      inst->bootStart = true;
      ++bootInFlight_;
    }
  }
}

bool Supervisor::adopt(Instance& inst) {
  const int pid = inst.spec.lastPid;
  const auto startTime = os::processStartTime(pid);
  auto pidfd = startTime && *startTime == inst.spec.lastPidStartTime
                   ? os::openPidfd(pid)
                   : Result<UniqueFd>(fail(Errc::kNotFound, "gone"));
  if (!pidfd) {
    inst.spec.lastPid = 0;
    inst.spec.lastPidStartTime = 0;
    if (auto s = persist(inst.spec); !s) spdlog::error("instance {}: {}", inst.spec.name, s.error().message);
    logs_.appendEvent(inst.spec.name, fmt::format("pid {} ended while the daemon was down", pid));
    return false;
  }
  inst.run = nextRun_++;
  inst.pid = pid;
  inst.ownChild = false;
  if (options_.cgroups && options_.cgroups->usable()) {
    auto run = os::RunCgroup::adopt(pid, *options_.cgroups);
    if (run) {
      inst.cgroup = std::move(*run);
      inst.cgroup->releaseSpawnFds();
    } else spdlog::warn("instance {}: pid {} is in none of our cgroups: {}", inst.spec.name, pid, run.error().message);
    auto account = db_.findAccount(inst.spec.account);
    if (inst.cgroup && account && *account) {
      if (auto s = policeRun(inst, **account); !s)
        spdlog::error("instance {}: network policy not restored: {}", inst.spec.name, s.error().message);
    }
  }
  inst.pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, pidfd->release());
  inst.startedWall = startTicksToWallSeconds(*startTime);
  inst.startedAt = clock_.now() - std::chrono::seconds(
                                      std::max<int64_t>(0, clock_.wallSeconds() - inst.startedWall));
  watchExit(inst);
  setState(inst, State::kRunning, "re-adopted after a daemon restart");
  logs_.appendEvent(inst.spec.name, fmt::format("re-adopted pid {} after a daemon restart", pid));
  spdlog::info("instance {}: re-adopted pid {}", inst.spec.name, pid);
  return true;
}

Status Supervisor::policeRun(Instance& inst, const store::AccountRecord& account) {
  namespace np = os::netpolicy;
  if (!options_.netPolicy || !options_.netPolicy->enforcing() || !inst.cgroup) return {};
  auto id = np::cgroupIdOf(inst.cgroup->path());
  if (!id) return std::unexpected(id.error());
  const np::RunTarget run{*id, inst.cgroup->v2DirFd() >= 0 ? inst.cgroup->path() : std::string(), account.uid};
  if (auto s = options_.netPolicy->police(run, static_cast<uint16_t>(inst.spec.port), account.name, account.egress); !s)
    return s;
  inst.netId = *id;
  return {};
}

void Supervisor::unpoliceRun(Instance& inst) { unpoliceNetId(inst, std::exchange(inst.netId, 0)); }

void Supervisor::unpoliceNetId(Instance& inst, uint64_t netId) {
  if (netId == 0 || !options_.netPolicy) return;
  if (auto counts = options_.netPolicy->blocked(netId)) inst.blockedBefore += *counts;
  options_.netPolicy->unpolice(netId);
}

Result<InstanceStatus> Supervisor::start(const std::string& name) {
  Instance* inst = find(name);
  if (!inst) return std::unexpected(notFoundError(name));
  if (!inst->spec.wanted) {
    inst->spec.wanted = true;
    if (auto s = persist(inst->spec); !s) {
      inst->spec.wanted = false;
      return std::unexpected(s.error());
    }
  }
  switch (inst->state) {
    case State::kStarting:
    case State::kRunning:
      break;
    case State::kStopping:
      inst->startAfterStop = true;
      break;
    case State::kBackoff:
    case State::kStopped:
    case State::kExited:
    case State::kFatal:
      inst->quickFailures = 0;
      spawnNow(*inst);
      break;
  }
  return snapshot(*inst);
}

void Supervisor::spawnNow(Instance& inst, bool here, const std::function<void()>& logExit) {
  ++inst.timerGen;
  inst.timer.cancel();
  inst.lastOutput.clear();
  const std::string& name = inst.spec.name;
  auto failStart = [&](const Error& e) {
    if (logExit) logExit();
    const std::string reason = e.message.starts_with("spawn failed") ? e.message : "cannot start: " + e.message;
    logs_.appendEvent(name, reason);
    spdlog::warn("instance {}: {}", name, reason);
    setState(inst, State::kFatal, reason);
  };
  if (!options_.refuseStarts.empty()) return failStart(Error::make(Errc::kUnavailable, options_.refuseStarts));
  auto account = db_.findAccount(inst.spec.account);
  if (!account) return failStart(account.error());
  if (!*account) return failStart(Error::make(Errc::kNotFound, "its account no longer exists"));
  if (auto s = validateCommandPlace(inst.spec.command, **account); !s) return failStart(s.error());
  if (!options_.output) return failStart(Error::make(Errc::kUnavailable, "no log keeper"));
  auto output = options_.output->outputFor(name, logs_.pathOf(name));
  if (!output) return failStart(output.error());

  auto job = std::make_unique<SpawnPool::Job>();
  os::SpawnRequest& req = job->request;
  req = planSpawn(inst.spec, **account, (*account)->uid != daemonUid_);
  req.rlimitNofile = (*account)->maxOpenFiles;
  req.seccomp = options_.seccomp;
  req.scopeAbstractUnix = options_.scopeAbstractUnix;
  if (options_.privateMounts) {
    auto ns = mountsFor(**account);
    if (!ns) return failStart(ns.error().context("prepare its private mounts"));
    job->mounts = std::move(*ns);
    req.mountNs = job->mounts->fd();
  }
  // The output pipe stays open while the job is in flight: the keeper
  // client releases it only when the instance is removed, which waits for a
  // stop, which waits for onSpawned.
  req.stdoutFd = *output;
  req.stderrFd = *output;
  std::optional<os::RunCgroup> cgroup;
  if (options_.cgroups && options_.cgroups->usable()) {
    // A fresh cgroup per run: never reuse one that saw cgroup.kill (cgroup.h).
    const auto runId = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    const os::CgroupLimits limits{static_cast<uint64_t>(inst.spec.memoryBytes),
                                  static_cast<uint64_t>(inst.spec.maxProcs),
                                  static_cast<uint32_t>(inst.spec.cpuPercent)};
    auto run = options_.cgroups->createRun(name, runId, limits);
    if (!run) return failStart(run.error().context("create its cgroup"));
    cgroup = std::move(*run);
    req.cgroupFd = cgroup->v2DirFd();
    req.joinCgroupFds = cgroup->procsFds();
  }
  // Kept in the instance while the job is in flight (a stop may kill the
  // cgroup); only onExit resets it, and there is no exit without a pid.
  inst.cgroup = std::move(cgroup);
  if (auto s = policeRun(inst, **account); !s) {
    unpoliceRun(inst);
    if (inst.cgroup) (void)inst.cgroup->remove();
    inst.cgroup.reset();
    return failStart(s.error().context("network policy"));
  }
  inst.run = nextRun_++;
  notifyRoutes(!inst.spec.route.empty());  // the proxy's pooled connections belong to the old run
  inst.spawning = true;
  if (here || inst.state == State::kRunning) {
    // A crash restart: it stays `running` (with no pid, as since its exit)
    // and is spawned right here. Crashes come one at a time and each wants
    // the shortest way to its new exec; handing it to a worker thread was
    // measured slower under CPU contention (the worker's wake-up waits for
    // a core) and would queue it behind a boot's worth of starts.
    if (inst.state != State::kRunning && inst.state != State::kStarting) setState(inst, State::kStarting, "");
    Result<os::Child> child = os::spawn(job->request);
    if (logExit) logExit();
    return onSpawned(name, inst.run, **account, child);
  }
  job->done = [this, name, run = inst.run, account = **account](Result<os::Child>& child) {
    onSpawned(name, run, account, child);
  };
  spawner_->submit(std::move(job));
  if (logExit) logExit();
  if (inst.state != State::kStarting) setState(inst, State::kStarting, "");
}

Result<std::shared_ptr<const os::MountNamespace>> Supervisor::mountsFor(const store::AccountRecord& account) {
  // A plan reflects the file system when it was built (a path missing then
  // is skipped): checked again at most this often, so a burst of starts (boot,
  // a mass create, a crash loop) builds it once, while a later start sees
  // today's tree.
  static constexpr auto kMountPlanMaxAge = std::chrono::seconds(2);
  os::MountOptions view;
  view.home = account.home;
  view.hideOtherHomes = true;
  view.hidePaths = options_.hidePaths;
  view.tmpSizeBytes = options_.tmpSizeBytes;
  // Other accounts' homes, wherever they are (not only under /home).
  auto all = db_.listAccounts();
  if (all) {
    for (const auto& other : *all) {
      const std::string& h = other.home;
      const bool ownOrAbove = h == view.home || view.home.starts_with(h + "/") || h == "/";
      if (!ownOrAbove && !h.empty()) view.hidePaths.push_back(h);
    }
    // A removed account's namespace (and its /tmp) goes with it, its record too.
    std::erase_if(accountMounts_, [&](const auto& entry) {
      if (isListed(*all, entry.first)) return false;
      dropMountRecord(entry.first);
      return true;
    });
  }
  if (mountTable_.changed()) ++mountGeneration_;
  AccountMounts& cached = accountMounts_[account.name];
  const bool sameView = cached.ns && cached.home == view.home && cached.hidePaths == view.hidePaths &&
                        cached.mountGeneration == mountGeneration_;
  const auto now = clock_.now();
  if (sameView && now - cached.checkedAt < kMountPlanMaxAge) return cached.ns;
  auto plan = os::buildMountPlan(view);
  if (!plan) {
    accountMounts_.erase(account.name);
    return std::unexpected(plan.error());
  }
  if (sameView && *plan == cached.ns->plan()) {
    cached.checkedAt = now;
    return cached.ns;
  }
  // The first start of the account since this daemon began: the namespace
  // its adopted instances run in, if it was made from this very plan.
  if (mountsMade_.insert(account.name).second) {
    if (auto again = rejoinMounts(account.name, *plan)) {
      spdlog::info("account {}: rejoined the mount namespace of its running instances", account.name);
      cached = AccountMounts{view.home, std::move(view.hidePaths),
                             std::make_shared<const os::MountNamespace>(std::move(*again)), now, mountGeneration_};
      return cached.ns;
    }
  }
  auto ns = os::MountNamespace::make(std::move(*plan));
  if (!ns) {
    accountMounts_.erase(account.name);
    return std::unexpected(ns.error());
  }
  spdlog::debug("account {}: new mount namespace ({})", account.name, ns->plan().summary());
  recordMounts(account.name, *ns);
  cached = AccountMounts{view.home, std::move(view.hidePaths),
                         std::make_shared<const os::MountNamespace>(std::move(*ns)), now, mountGeneration_};
  return cached.ns;
}

std::optional<os::MountNamespace> Supervisor::rejoinMounts(const std::string& account, const os::MountPlan& plan) {
  if (options_.mountStateDir.empty()) return std::nullopt;
  std::ifstream in(options_.mountStateDir + "/" + account);
  std::string fingerprint;
  uint64_t inode = 0;
  if (!(in >> fingerprint >> inode) || fingerprint != plan.fingerprint()) return std::nullopt;
  for (const auto& [name, owned] : instances_) {
    const Instance& inst = *owned;
    if (inst.spec.account != account || inst.pid <= 0 || inst.ownChild || !inst.pidfd) continue;
    UniqueFd fd(::open(fmt::format("/proc/{}/ns/mnt", inst.pid).c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || st.st_ino != inode) continue;
    // Opened while the adopted process was alive (its pidfd not readable):
    // not a pid reused since.
    struct pollfd p {inst.pidfd->native_handle(), POLLIN, 0};
    if (::poll(&p, 1, 0) != 0) continue;
    return os::MountNamespace::adopt(plan, std::move(fd));
  }
  return std::nullopt;
}

void Supervisor::dropMountRecord(const std::string& account) {
  if (options_.mountStateDir.empty()) return;
  const std::string path = options_.mountStateDir + "/" + account;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) spdlog::warn("{}: {}", path, std::strerror(errno));
}

void Supervisor::dropStaleMountRecords() {
  if (options_.mountStateDir.empty()) return;
  auto accounts = db_.listAccounts();
  std::error_code ec;
  std::filesystem::directory_iterator dir(options_.mountStateDir, ec);
  if (!accounts || ec) return;  // nothing recorded yet, or nothing to compare with
  for (const auto& entry : dir) {
    const std::string name = entry.path().filename().string();
    if (!isListed(*accounts, name)) dropMountRecord(name);
  }
}

void Supervisor::recordMounts(const std::string& account, const os::MountNamespace& ns) {
  if (options_.mountStateDir.empty()) return;
  if (::mkdir(options_.mountStateDir.c_str(), 0700) != 0 && errno != EEXIST)
    return spdlog::warn("mount namespaces not recorded in {}: {}", options_.mountStateDir, std::strerror(errno));
  const std::string text = fmt::format("{} {}\n", ns.plan().fingerprint(), ns.inode());
  if (auto s = writeFileAtomic(options_.mountStateDir + "/" + account, text, 0600); !s)
    spdlog::warn("account {}: mount namespace not recorded: {}", account, s.error().message);
}

void Supervisor::onSpawned(const std::string& name, uint64_t run, const store::AccountRecord& account,
                           Result<os::Child>& child) {
  Instance* found = find(name);
  if (!found || found->run != run || !found->spawning) {
    // Cannot happen while rm waits for the stop, which waits for us; if it
    // ever does, nobody would supervise this child.
    spdlog::error("instance {}: a spawn finished for a run that is gone; killing it", name);
    if (child) discardChild(*child);
    return;
  }
  Instance& inst = *found;
  inst.spawning = false;
  if (std::exchange(inst.bootStart, false)) {
    --bootInFlight_;
    // Posted: the next boot start is prepared after this outcome is taken.
    asio::post(io_, [this] { startQueued(); });
  }
  if (!child) {
    unpoliceRun(inst);
    if (inst.cgroup) (void)inst.cgroup->remove();
    inst.cgroup.reset();
    Error e = child.error();
    if (e.step == "setns") accountMounts_.erase(account.name);  // make the next start a new namespace
    e.message = fmt::format("spawn failed at {}: {}", e.step, e.message);
    const ExitInfo failed{false, 127, Millis(-1)};
    if (inst.state == State::kStopping) {  // stopped meanwhile: it simply did not start
      logs_.appendEvent(name, e.message);
      inst.lastExit = failed;
      return handleExit(inst, failed);
    }
    if (e.code == Errc::kInvalidArgument) {
      // The kernel said what; our own check may say how to fix it.
      if (auto why = validateCommandRunnable(inst.spec.command, account); !why)
        e.message += " (" + why.error().message + ")";
      logs_.appendEvent(name, e.message);
      spdlog::warn("instance {}: {}", name, e.message);
      return setState(inst, State::kFatal, e.message);
    }
    // A passing failure (EAGAIN, ENOMEM): count it as a quick crash, also
    // with start_secs 0 (a negative uptime is always quick), so a spawn
    // that keeps failing ends fatal instead of retrying forever.
    logs_.appendEvent(name, e.message);
    inst.lastExit = failed;
    return handleExit(inst, failed);
  }
  if (inst.cgroup) inst.cgroup->releaseSpawnFds();
  inst.pid = child->pid;
  inst.ownChild = true;
  inst.statsAt = {};
  inst.pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, child->pidfd.release());
  inst.startedAt = clock_.now();
  inst.startedWall = clock_.wallSeconds();
  inst.spec.lastPid = child->pid;
  inst.spec.lastPidStartTime = os::processStartTime(child->pid).value_or(0);
  if (auto s = persist(inst.spec); !s)
    spdlog::error("instance {}: cannot record pid {}: {}", name, child->pid, s.error().message);
  logs_.appendEvent(name, fmt::format("started pid {} on port {}", child->pid, inst.spec.port));
  notifyChanged(inst.spec);  // its pid
  watchExit(inst);
  if (inst.state == State::kStopping) {
    // Stopped while it was being born: it has run nothing worth a grace
    // period. Its exit ends the stop (handleExit) like any other.
    signalGroup(inst, SIGKILL);
    return;
  }
  if (inst.spec.startSecs == 0) {
    setState(inst, State::kRunning, inst.spec.restarts > 0 ? inst.reason : "");
    return;
  }
  if (inst.state != State::kStarting) setState(inst, State::kStarting, "");  // a crash restart
  armTimer(inst, Millis(inst.spec.startSecs * 1000), [this](Instance& i) {
    if (i.state == State::kStarting) setState(i, State::kRunning, "");
  });
  if (inst.spec.ready == store::ReadyCheck::kPort) probeReady(inst, inst.run, Millis(2));
}

void Supervisor::probeReady(Instance& inst, uint64_t run, Millis delay) {
  inst.probeTimer.expires_after(delay);
  inst.probeTimer.async_wait([this, name = inst.spec.name, run, delay](error_code ec) {
    Instance* i = find(name);
    if (ec || !i || i->run != run || i->state != State::kStarting) return;
    auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
    const asio::ip::tcp::endpoint port(asio::ip::address_v4::loopback(), static_cast<uint16_t>(i->spec.port));
    socket->async_connect(port, [this, name, run, delay, socket](error_code ec2) {
      Instance* j = find(name);
      if (!j || j->run != run || j->state != State::kStarting) return;
      if (ec2) return probeReady(*j, run, std::min(delay * 2, Millis(100)));
      ++j->timerGen;
      j->timer.cancel();
      setState(*j, State::kRunning, "");
    });
  });
}

void Supervisor::armTimer(Instance& inst, Millis delay, std::function<void(Instance&)> then) {
  const uint64_t gen = ++inst.timerGen;
  inst.timer.expires_after(delay);
  inst.timer.async_wait([this, name = inst.spec.name, gen, then = std::move(then)](error_code ec) {
    Instance* i = find(name);
    if (ec || !i || i->timerGen != gen) return;
    then(*i);
  });
}

void Supervisor::watchExit(Instance& inst) {
  inst.pidfd->async_wait(asio::posix::descriptor_base::wait_read,
                         [this, name = inst.spec.name, run = inst.run](error_code ec) {
                           if (!ec) onExit(name, run);
                         });
}

void Supervisor::onExit(const std::string& name, uint64_t run) {
  Instance* found = find(name);
  if (!found || found->run != run || !found->pidfd) return;
  Instance& inst = *found;
  ExitInfo exit{false, -1, Millis(0)};
  if (inst.ownChild) {
    // Whatever the program left behind in its process group goes with it,
    // now, while the unreaped leader still pins the group id: after the reap
    // the number may be reused and kill(-pid) could reach a stranger.
    if (os::exitedUnreaped(inst.pidfd->native_handle())) signalGroup(inst, SIGKILL);
    auto status = os::reap(inst.pidfd->native_handle());
    if (status && !*status) return watchExit(inst);  // spurious wake-up: still running
    if (status) exit = ExitInfo{(*status)->signaled, (*status)->code, Millis(0)};
  }
  exit.uptime = std::chrono::duration_cast<Millis>(clock_.now() - inst.startedAt);
  // Only a memory limit can OOM-kill a run (its cgroup has no memory
  // controller otherwise): no stats read on other exits.
  if (inst.cgroup && inst.spec.memoryBytes > 0) {
    auto stats = inst.cgroup->stats();
    exit.outOfMemory = stats && stats->oomKills.value_or(0) > 0;
  }
  // An adopted program was reaped by someone else: its group id may be
  // reused already, so only its cgroup is killed (reapCgroup, below).
  inst.pidfd.reset();
  inst.pid = 0;
  inst.lastExit = exit;
  inst.spec.lastPid = 0;
  inst.spec.lastPidStartTime = 0;
  reapCgroup(inst, [this, exit](Instance& i) {
    const std::string name = i.spec.name;
    handleExit(i, exit);
    // Recorded after the decision, not before: a restart records its new pid
    // anyway, and one write less is ~1 ms sooner to the new exec. Until then
    // the row names the dead pid, which adopt() rejects by its start time.
    Instance* after = find(name);  // handleExit may have deleted it (rm)
    if (after && after->spec.lastPid == 0) {
      if (auto s = persist(after->spec); !s) spdlog::error("instance {}: {}", name, s.error().message);
    }
  });
}

void Supervisor::reapCgroup(Instance& inst, std::function<void(Instance&)> then) {
  if (!inst.cgroup) return then(inst);
  auto waiter = std::make_shared<EmptyWaiter>(io_);
  waiter->isEmpty = [this, name = inst.spec.name, run = inst.run, killed = false]() mutable {
    const Instance* i = find(name);
    if (!i || i->run != run || !i->cgroup || i->cgroup->isEmpty()) return true;
    if (!std::exchange(killed, true)) (void)i->cgroup->killAll();  // leftovers: once, then wait
    return false;
  };
  waiter->done = [this, name = inst.spec.name, run = inst.run, then = std::move(then)](bool empty) {
    Instance* i = find(name);
    if (!i || i->run != run || !i->cgroup) return;
    if (!empty) spdlog::error("instance {}: processes in {} survived SIGKILL for 5 s", name, i->cgroup->path());
    // Removing a cgroup directory can take milliseconds (seen: 3 ms), and
    // the network policy's entries are a few BPF calls: a crashed program
    // restarts inside then(), so the old run is let go after that. Not when
    // stopping: then() may delete the instance, whose cgroup directory must
    // be empty by then.
    const bool later = empty && i->state != State::kStopping;
    if (!later) {
      unpoliceRun(*i);
      if (empty) {
        if (auto s = i->cgroup->remove(); !s) spdlog::warn("instance {}: {}", name, s.error().message);
      }
      i->cgroup.reset();
      return then(*i);
    }
    std::optional<os::RunCgroup> old = std::exchange(i->cgroup, std::nullopt);
    const uint64_t oldNetId = std::exchange(i->netId, 0);
    then(*i);
    if (Instance* after = find(name)) unpoliceNetId(*after, oldNetId);
    else if (options_.netPolicy && oldNetId != 0) options_.netPolicy->unpolice(oldNetId);
    if (auto s = old->remove(); !s) spdlog::warn("instance {}: {}", name, s.error().message);
  };
  waiter->check(Millis(1));
}

void Supervisor::handleExit(Instance& inst, const ExitInfo& exit) {
  const std::string& name = inst.spec.name;
  // Its last words first (they may still be in the pipe), then ours.
  auto lastWords = [this, name] {
    if (options_.output) options_.output->flush(name);
  };
  if (inst.state == State::kStopping) {
    lastWords();
    ++inst.timerGen;
    inst.timer.cancel();
    logs_.appendEvent(name, "stopped: " + describeExit(exit));
    if (std::exchange(inst.startAfterStop, false)) {
      inst.quickFailures = 0;
      return spawnNow(inst);
    }
    return setState(inst, State::kStopped, "stopped by request");
  }
  inst.probeTimer.cancel();
  RestartParams params = options_.restart;
  params.mode = inst.spec.restart;
  params.startSecs = Millis(inst.spec.startSecs * 1000);
  const Decision d = decide(params, exit, inst.quickFailures, jitter());
  inst.quickFailures = d.quickFailures;
  if (options_.onAlert) {
    if (exit.outOfMemory) options_.onAlert(name, inst.spec.account, "out_of_memory", d.reason);
    if (d.action == Action::kFatal) options_.onAlert(name, inst.spec.account, "fatal", d.reason);
    else if (d.action == Action::kRestart && d.quickFailures >= kCrashLoopAlertFailures)
      options_.onAlert(name, inst.spec.account, "crash_loop", d.reason);
  }
  auto logExit = [this, name, reason = d.reason, lastWords] {
    lastWords();
    logs_.appendEvent(name, reason);
    spdlog::info("instance {}: {}", name, reason);
  };
  if (d.action == Action::kRestart && d.delay.count() == 0) {
    ++inst.spec.restarts;
    inst.reason = d.reason;
    // The crash path: the flush is a round trip to the keeper process (a
    // wait for it to be scheduled), and our lines are file writes, so the
    // new process is exec'd first and spawnNow logs the exit right after,
    // before any line of the new run. The old run's output is in the pipe
    // ahead of anything the new one writes, so its last words still come
    // before our line (the new run's first words may too).
    return spawnNow(inst, false, logExit);
  }
  logExit();
  switch (d.action) {
    case Action::kExited:
    case Action::kFatal:
      // What it said last is usually why: keep it in the status.
      inst.lastOutput = logs_.tail(name, 10).value_or("");
      return setState(inst, d.action == Action::kFatal ? State::kFatal : State::kExited, d.reason);
    case Action::kRestart:
      ++inst.spec.restarts;
      inst.reason = d.reason;
      setState(inst, State::kBackoff, d.reason);
      armTimer(inst, d.delay, [this](Instance& i) {
        if (i.state == State::kBackoff) spawnNow(i);
      });
  }
}

void Supervisor::stop(const std::string& name, Done done) {
  Instance* inst = find(name);
  if (!inst) return done(std::unexpected(notFoundError(name)));
  if (inst->spec.wanted) {
    inst->spec.wanted = false;
    if (auto s = persist(inst->spec); !s) {
      inst->spec.wanted = true;
      return done(std::unexpected(s.error()));
    }
  }
  inst->startAfterStop = false;
  stopInstance(*inst, std::move(done));
}

void Supervisor::stopInstance(Instance& inst, Done done) {
  switch (inst.state) {
    case State::kStarting:
    case State::kRunning:
      beginStop(inst);
      [[fallthrough]];
    case State::kStopping:
      return addWaiter(inst, true, Millis(inst.spec.stopGraceMs + 5000), std::move(done));
    case State::kBackoff:
    case State::kExited:
    case State::kFatal:
      ++inst.timerGen;
      inst.timer.cancel();
      setState(inst, State::kStopped, "stopped by request");
      [[fallthrough]];
    case State::kStopped:
      return done(snapshot(inst));
  }
}

void Supervisor::beginStop(Instance& inst) {
  setState(inst, State::kStopping, "sent " + signalName(inst.spec.stopSignal));
  signalGroup(inst, inst.spec.stopSignal);
  armTimer(inst, Millis(inst.spec.stopGraceMs), [this](Instance& i) {
    if (i.state != State::kStopping) return;
    logs_.appendEvent(i.spec.name, fmt::format("still running {}ms after {}; sending SIGKILL",
                                               i.spec.stopGraceMs, signalName(i.spec.stopSignal)));
    signalGroup(i, SIGKILL);
    if (i.cgroup) (void)i.cgroup->killAll();
  });
}

void Supervisor::signalGroup(Instance& inst, int sig) {
  if (inst.pid <= 0) return;
  // The program leads its own session (setsid), so its pid is its group id.
  // The leader is not reaped yet (or its pidfd pins it), so the id is not reused.
  (void)os::signalProcessGroup(inst.pid, sig);
  if (inst.pidfd) (void)os::sendSignal(inst.pidfd->native_handle(), sig);
}

void Supervisor::restart(const std::string& name, Done done) {
  stop(name, [this, name, done = std::move(done)](Result<InstanceStatus> stopped) {
    if (!stopped) return done(stopped);
    done(start(name));
  });
}

void Supervisor::stopAll(std::function<void()> done) {
  auto pending = std::make_shared<size_t>(1);
  auto finish = [pending, done = std::move(done)](const Result<InstanceStatus>&) {
    if (--*pending == 0) done();
  };
  for (auto& [name, inst] : instances_) {
    if (!isActive(inst->state)) continue;
    ++*pending;
    inst->startAfterStop = false;
    stopInstance(*inst, finish);  // keeps `wanted`: they come back at the next start
  }
  finish(InstanceStatus{});
}

}  // namespace hv::supervisor
