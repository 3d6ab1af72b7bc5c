// Supervisor: owns every instance's runtime state and drives its state
// machine (stopped → starting → running → stopping/backoff/exited/fatal).
//
// All methods run on the control io_context's thread (the API posts to it);
// nothing here locks. Process exits arrive as pidfd readiness on that
// io_context, restarts and grace periods as timers: no polling. Every change
// the owner asks for is written to the store first; if that fails, nothing
// in memory changes. Status comes from memory, never from the database.
#pragma once

#include <boost/asio/io_context.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/result.h"
#include "os/cgroup.h"
#include "os/mount_ns.h"
#include "os/netpolicy/enforcer.h"
#include "os/seccomp.h"
#include "os/spawn.h"
#include "logkeeper/client.h"
#include "store/database.h"
#include "supervisor/egress.h"
#include "supervisor/instance_state.h"
#include "supervisor/log_files.h"
#include "supervisor/port_pool.h"
#include "supervisor/restart_policy.h"

namespace hv::supervisor {

struct SupervisorOptions {
  std::string logDir;
  uint16_t portLo = 20000;
  uint16_t portHi = 29999;
  PortPool::InUseProbe portInUse;  // default: os::tcpPortInUse
  RestartParams restart;           // mode and startSecs are taken per instance
  // The log keeper that drains every program's stdout/stderr pipe into
  // NAME.log (rotating it) and outlives the daemon. Required.
  logkeeper::Client* output = nullptr;
  // One fresh cgroup per run (limits, whole-tree kill, stats); null or not
  // usable() = the host has none: process groups only (reported at start).
  const os::Cgroups* cgroups = nullptr;
  // Listen only on the assigned port, connect/send only to the account's
  // egress allowlist (BPF or nftables, host names resolved off-thread);
  // null = not enforced here.
  Egress* netPolicy = nullptr;
  // The syscall deny-list every program runs under; null = not enforced here.
  const os::SeccompProgram* seccomp = nullptr;
  // Landlock scope: a program reaches only its own abstract unix sockets;
  // false = not enforced here (os::probeLandlockScopes).
  bool scopeAbstractUnix = false;
  // A private mount namespace per account, joined by its runs (its own /tmp,
  // read-only system dirs, other homes and `hidePaths` hidden); false = not
  // enforced here.
  bool privateMounts = false;
  std::vector<std::string> hidePaths;
  // The cap of each of an account's private tmpfs (/tmp, /var/tmp, /dev/shm):
  // they outlive its runs, so no memory cgroup of a run bounds them.
  uint64_t tmpSizeBytes = 64 << 20;
  // Where each account's namespace is recorded (plan fingerprint, nsfs
  // inode), so that after a daemon restart its next starts rejoin the one its
  // adopted instances run in, /tmp and all; empty = a restart makes new ones.
  std::string mountStateDir;
  // Non-empty: strict mode found a mechanism missing; every start fails with it.
  std::string refuseStarts;
  // Routes the daemon serves by other means (static upstreams): an instance
  // route this refuses (kConflict, naming both) is refused at create and update.
  std::function<Status(const std::string& instance, const std::string& route)> routeReserved;
  // Called (on the control thread) after an instance with a route (before or
  // after the change) is created, changed, deleted or changes state: the
  // daemon updates the proxy's routes from it (routeViews()). Instances
  // without a route never call it: a mass start of those publishes nothing.
  std::function<void()> onRoutesChanged;
  // Called (on the control thread) whenever anything shown of an instance may
  // have changed: created, edited, deleted, a new state or process. Cheap
  // callers only (the API coalesces them into one event per loop turn).
  std::function<void(const std::string& name, const std::string& account)> onInstanceChanged;
  // Called (on the control thread) when something needs its owner's
  // attention: `kind` is "fatal" (gave up restarting), "out_of_memory"
  // (killed by its memory limit) or "crash_loop" (quick failures in a row,
  // backing off); `reason` says why in words.
  std::function<void(const std::string& name, const std::string& account, std::string_view kind,
                     const std::string& reason)>
      onAlert;
};

// What the proxy's route table needs of one instance with a route: no stats,
// no syscalls, so republishing it on every change stays cheap.
struct RouteView {
  std::string name;
  std::string route;
  int port = 0;
  bool stripPrefix = false;
  std::vector<std::string> access;
  State state = State::kStopped;
  uint64_t run = 0;  // the current process's id in this daemon (unique across instances)
};

// A snapshot of one instance, for the API.
struct InstanceStatus {
  store::InstanceRecord spec;
  State state = State::kStopped;
  int pid = 0;                       // 0 = no process
  int restarts = 0;                  // automatic restarts since create (persisted)
  int64_t startedAt = 0;             // wall seconds of the current process start
  int64_t uptimeSeconds = 0;
  std::optional<ExitInfo> lastExit;  // how the last process ended
  std::string reason;                // why it is in this state
  std::string lastOutput;            // last log lines, when exited or fatal
  std::optional<double> cpuSeconds;  // of the current run, from its cgroup
  std::optional<int64_t> rssBytes;   // anonymous memory of the current run
  os::netpolicy::BlockedCounts blocked;  // attempts the network policy refused, since create
  logkeeper::OutputStats output;     // its log pipe, since the keeper has it
};

class Supervisor {
 public:
  using Done = std::function<void(Result<InstanceStatus>)>;

  Supervisor(boost::asio::io_context& io, store::Database& db, const Clock& clock,
             SupervisorOptions options);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Loads instances from the store: re-adopts processes still running from
  // an earlier daemon, starts those that want to run and autostart.
  Status load();

  // Validates, assigns a port, persists, and starts it if `start`.
  Result<InstanceStatus> create(store::InstanceRecord spec, bool start);
  // `edit` changes a copy of the spec; name, account and port are kept.
  // The new spec applies from the next start.
  Result<InstanceStatus> update(const std::string& name,
                                const std::function<Status(store::InstanceRecord&)>& edit);
  // Stops it (whole process group), deletes it, frees its port and log.
  void remove(const std::string& name, std::function<void(Status)> done);

  Result<InstanceStatus> start(const std::string& name);
  void stop(const std::string& name, Done done);       // done once it has stopped
  void restart(const std::string& name, Done done);    // done once it has started
  // Calls done when the instance is no longer `starting`, or after `timeout`.
  void whenSettled(const std::string& name, Millis timeout, Done done);
  // Stops every instance (daemon shutdown with stop_instances).
  void stopAll(std::function<void()> done);

  Result<InstanceStatus> get(const std::string& name) const;
  std::vector<InstanceStatus> list() const;  // ordered by name
  // fn(snapshot) for each instance in name order, into one reused object: no
  // list of copies (the list RPC: 1,000 specs copied, then freed, cost ~1 MB
  // of heap and a malloc/free per string). fn must not keep the reference.
  void forEachStatus(const std::function<void(const InstanceStatus&)>& fn) const;
  // The instances that have a route, in name order (for the proxy's routes).
  std::vector<RouteView> routeViews() const;
  size_t countOf(const std::string& account) const;
  size_t size() const { return instances_.size(); }
  const LogFiles& logs() const { return logs_; }
  bool has(const std::string& name) const { return instances_.contains(name); }
  // Which instance of that name exists now (0: none). A deleted instance and
  // a new one given its name have different serials.
  uint64_t serialOf(const std::string& name) const;
  // A program of ours is alive (running, starting or stopping).
  bool anyProcess() const;
  // Some instance is in an active state (isActive), with or without a process.
  bool anyActive() const;

 private:
  struct Instance;
  struct Waiter;

  Instance* find(const std::string& name) const;
  std::vector<const store::InstanceRecord*> siblingsOf(const std::string& account,
                                                      const std::string& except) const;
  InstanceStatus snapshot(const Instance& inst) const;
  // Overwrites every field of `s` (assignment reuses its strings' buffers).
  // `allBlocked`: every run's network-policy counters read at once (a list);
  // null: this run's are read on their own.
  using BlockedMap = std::unordered_map<uint64_t, os::netpolicy::BlockedCounts>;
  void snapshotInto(const Instance& inst, InstanceStatus& s, const BlockedMap* allBlocked = nullptr) const;
  Status persist(const store::InstanceRecord& spec);
  // onRoutesChanged, if the instance had or has a route.
  void notifyRoutes(bool routed) const;
  void notifyChanged(const store::InstanceRecord& spec) const;  // onInstanceChanged
  Status checkRouteFree(const store::InstanceRecord& spec) const;
  void setState(Instance& inst, State state, std::string reason);
  void notifyWaiters(Instance& inst);
  void addWaiter(Instance& inst, bool untilStopped, Millis timeout, Done done);

  // Lifecycle (supervisor_lifecycle.cpp).
  bool adopt(Instance& inst);  // false if its last process is gone
  // Hands the next of load()'s starts to the pool, a few at a time.
  void startQueued();
  // Prepares the run and hands it to spawner_ (or, `here`, spawns it on this
  // thread); onSpawned() takes the outcome. `logExit` (a crash restart) logs
  // the exit that led here: called once, right after the new process is
  // exec'd or handed to the pool, or before a failure is logged.
  void spawnNow(Instance& inst, bool here = false, const std::function<void()>& logExit = {});
  void onSpawned(const std::string& name, uint64_t run, const store::AccountRecord& account,
                 Result<os::Child>& child);
  void watchExit(Instance& inst);
  // Readiness: connect attempts to its port while it is `starting`.
  void probeReady(Instance& inst, uint64_t run, Millis delay);
  void onExit(const std::string& name, uint64_t run);
  void handleExit(Instance& inst, const ExitInfo& exit);
  // Kills what is left in the run's cgroup and calls `then` once it is empty
  // (and removed): a leftover child can never hold the port on restart.
  void reapCgroup(Instance& inst, std::function<void(Instance&)> then);
  void readStats(const Instance& inst) const;
  // The mount namespace `account`'s runs join (os::MountNamespace): made on
  // its first start and kept while it still fits — its plan is rebuilt (~35
  // stat and readlink calls) at most every kMountPlanMaxAge and compared,
  // and any mount or unmount on the host (MountTableWatch) retires every
  // account's. A retired namespace lives on in the runs inside it; the next
  // start makes a new one (with an empty /tmp). Also retired when a spawn
  // fails joining it, or its account is gone.
  Result<std::shared_ptr<const os::MountNamespace>> mountsFor(const store::AccountRecord& account);
  std::optional<os::MountNamespace> rejoinMounts(const std::string& account, const os::MountPlan& plan);
  void recordMounts(const std::string& account, const os::MountNamespace& ns);
  void dropMountRecord(const std::string& account);
  void dropStaleMountRecords();
  // Network policy of a run: set before its spawn, cleared when it ends.
  Status policeRun(Instance& inst, const store::AccountRecord& account);
  void unpoliceRun(Instance& inst);
  // The same for an earlier run's cgroup id (its counts go to blockedBefore).
  void unpoliceNetId(Instance& inst, uint64_t netId);
  void stopInstance(Instance& inst, Done done);
  void beginStop(Instance& inst);
  void signalGroup(Instance& inst, int sig);
  // One timer per instance: arming it cancels the previous callback.
  void armTimer(Instance& inst, Millis delay, std::function<void(Instance&)> then);

  boost::asio::io_context& io_;
  store::Database& db_;
  const Clock& clock_;
  SupervisorOptions options_;
  PortPool ports_;
  LogFiles logs_;
  uid_t daemonUid_;
  uint64_t nextRun_ = 1;
  uint64_t nextSerial_ = 1;
  std::map<std::string, std::unique_ptr<Instance>> instances_;
  std::deque<std::string> bootQueue_;  // load()'s starts not yet handed over
  size_t bootInFlight_ = 0;
  struct AccountMounts {
    std::string home;
    std::vector<std::string> hidePaths;  // with the other accounts' homes
    std::shared_ptr<const os::MountNamespace> ns;
    Clock::TimePoint checkedAt;  // when its plan was last rebuilt and found the same
    uint64_t mountGeneration = 0;
  };
  std::map<std::string, AccountMounts> accountMounts_;  // by account
  std::set<std::string> mountsMade_;  // accounts this daemon made or rejoined a namespace for
  os::MountTableWatch mountTable_;
  uint64_t mountGeneration_ = 0;  // + 1 per change MountTableWatch saw
  std::unique_ptr<class SpawnPool> spawner_;  // last: its workers stop before the rest goes
};

}  // namespace hv::supervisor
