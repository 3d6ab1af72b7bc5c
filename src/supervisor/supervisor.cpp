#include "supervisor/supervisor.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "os/net.h"
#include "supervisor/supervisor_impl.h"
#include "supervisor/quota.h"
#include "supervisor/spawn_pool.h"
#include "supervisor/validation.h"

namespace hv::supervisor {

namespace asio = boost::asio;
using boost::system::error_code;

Supervisor::Supervisor(asio::io_context& io, store::Database& db, const Clock& clock,
                       SupervisorOptions options)
    : io_(io),
      db_(db),
      clock_(clock),
      options_(std::move(options)),
      ports_(options_.portLo, options_.portHi,
             options_.portInUse ? options_.portInUse : [](uint16_t p) { return os::tcpPortInUse(p); }, clock_),
      logs_(options_.logDir),
      daemonUid_(::geteuid()),
      spawner_(std::make_unique<SpawnPool>(io)) {}

Supervisor::~Supervisor() = default;

Supervisor::Instance* Supervisor::find(const std::string& name) const {
  auto it = instances_.find(name);
  return it == instances_.end() ? nullptr : it->second.get();
}

InstanceStatus Supervisor::snapshot(const Instance& inst) const {
  InstanceStatus s;
  snapshotInto(inst, s);
  return s;
}

void Supervisor::snapshotInto(const Instance& inst, InstanceStatus& s, const BlockedMap* allBlocked) const {
  s.spec = inst.spec;
  s.state = inst.state;
  s.pid = inst.pid;
  s.restarts = inst.spec.restarts;
  s.lastOutput = inst.lastOutput;
  s.lastExit = inst.lastExit;
  s.reason = inst.reason;
  s.blocked = inst.blockedBefore;
  s.output = {};
  s.cpuSeconds.reset();
  s.rssBytes.reset();
  s.startedAt = 0;
  s.uptimeSeconds = 0;
  if (options_.output) {
    const auto& all = options_.output->stats();
    if (auto it = all.find(inst.spec.name); it != all.end()) s.output = it->second;
  }
  if (inst.netId != 0 && allBlocked != nullptr) {
    if (auto it = allBlocked->find(inst.netId); it != allBlocked->end()) s.blocked += it->second;
  } else if (inst.netId != 0 && options_.netPolicy) {
    if (auto now = options_.netPolicy->blocked(inst.netId)) s.blocked += *now;
  }
  if (inst.cgroup) {
    readStats(inst);
    if (inst.stats.cpuNanos) s.cpuSeconds = static_cast<double>(*inst.stats.cpuNanos) / 1e9;
    if (inst.stats.rssBytes) s.rssBytes = static_cast<int64_t>(*inst.stats.rssBytes);
  }
  if (inst.pid > 0) {
    s.startedAt = inst.startedWall;
    s.uptimeSeconds =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.now() - inst.startedAt).count();
  }
}

void Supervisor::readStats(const Instance& inst) const {
  const auto now = clock_.now();
  if (inst.statsAt != Clock::TimePoint{} && now - inst.statsAt < std::chrono::seconds(1)) return;
  inst.stats = inst.cgroup->stats().value_or(os::CgroupStats{});
  inst.statsAt = now;
}

void Supervisor::notifyRoutes(bool routed) const {
  if (routed && options_.onRoutesChanged) options_.onRoutesChanged();
}

void Supervisor::notifyChanged(const store::InstanceRecord& spec) const {
  if (options_.onInstanceChanged) options_.onInstanceChanged(spec.name, spec.account);
}

Status Supervisor::persist(const store::InstanceRecord& spec) { return db_.updateInstance(spec); }

std::vector<const store::InstanceRecord*> Supervisor::siblingsOf(const std::string& account,
                                                                const std::string& except) const {
  std::vector<const store::InstanceRecord*> out;
  for (const auto& [name, inst] : instances_) {
    if (inst->spec.account == account && name != except) out.push_back(&inst->spec);
  }
  return out;
}

// One route, one instance; and no account may take a route that overlaps
// another account's (the same path, one below the other, or one host
// shadowing another): the proxy would send that account's traffic to it.
Status Supervisor::checkRouteFree(const store::InstanceRecord& spec) const {
  if (spec.route.empty()) return {};
  if (options_.routeReserved) {
    if (auto s = options_.routeReserved(spec.name, spec.route); !s) return s;
  }
  for (const auto& [name, inst] : instances_) {
    if (name == spec.name || inst->spec.route.empty()) continue;
    const bool same = inst->spec.route == spec.route;
    const bool foreign = inst->spec.account != spec.account;
    if (!same && !(foreign && routesOverlap(inst->spec.route, spec.route))) continue;
    return fail(Errc::kConflict,
                foreign ? fmt::format("route '{}' overlaps route '{}' of another account", spec.route,
                                      inst->spec.route)
                        : fmt::format("route '{}' is already used by instance '{}'", spec.route, name));
  }
  return {};
}

size_t Supervisor::countOf(const std::string& account) const {
  return static_cast<size_t>(std::count_if(instances_.begin(), instances_.end(),
                                           [&](const auto& kv) { return kv.second->spec.account == account; }));
}

Result<InstanceStatus> Supervisor::get(const std::string& name) const {
  const Instance* inst = find(name);
  if (!inst) return std::unexpected(notFoundError(name));
  return snapshot(*inst);
}

std::vector<InstanceStatus> Supervisor::list() const {
  std::vector<InstanceStatus> out;
  out.reserve(instances_.size());
  forEachStatus([&](const InstanceStatus& s) { out.push_back(s); });
  return out;
}

std::vector<RouteView> Supervisor::routeViews() const {
  std::vector<RouteView> out;
  for (const auto& [name, inst] : instances_) {
    const store::InstanceRecord& spec = inst->spec;
    if (!spec.route.empty())
      out.push_back(RouteView{spec.name, spec.route, spec.port, spec.stripPrefix, spec.access, inst->state, inst->run});
  }
  return out;
}

void Supervisor::forEachStatus(const std::function<void(const InstanceStatus&)>& fn) const {
  // The network-policy counters of every run in one read (a BPF batch
  // lookup, or one nft listing) instead of one per instance.
  std::optional<BlockedMap> all;
  if (options_.netPolicy) {
    if (auto read = options_.netPolicy->blockedAll()) all = std::move(*read);
  }
  InstanceStatus s;
  for (const auto& [name, inst] : instances_) {
    snapshotInto(*inst, s, all ? &*all : nullptr);
    fn(s);
  }
}

// ---- state and waiters ------------------------------------------------------

void Supervisor::setState(Instance& inst, State state, std::string reason) {
  if (inst.state != state) {
    spdlog::debug("instance {}: {} -> {}{}{}", inst.spec.name, stateName(inst.state),
                  stateName(state), reason.empty() ? "" : ": ", reason);
  }
  const bool changed = inst.state != state;
  const bool routed = !inst.spec.route.empty();
  inst.state = state;
  inst.reason = std::move(reason);
  notifyChanged(inst.spec);
  // Last: a waiter may delete the instance (rm answers once it is stopped).
  notifyWaiters(inst);
  if (changed) notifyRoutes(routed);
}

void Supervisor::notifyWaiters(Instance& inst) {
  std::vector<std::unique_ptr<Waiter>> ready;
  std::erase_if(inst.waiters, [&](std::unique_ptr<Waiter>& w) {
    const bool met = w->untilStopped ? !isActive(inst.state) : inst.state != State::kStarting;
    if (met) ready.push_back(std::move(w));
    return met;
  });
  // Every state change passes here: a snapshot (cgroup and BPF reads) only
  // for someone waiting.
  if (ready.empty()) return;
  const InstanceStatus status = snapshot(inst);
  for (auto& w : ready) {
    if (w->timer) w->timer->cancel();
    w->done(status);
  }
}

void Supervisor::addWaiter(Instance& inst, bool untilStopped, Millis timeout, Done done) {
  auto w = std::make_unique<Waiter>();
  w->id = inst.nextWaiter++;
  w->untilStopped = untilStopped;
  w->done = std::move(done);
  w->timer = std::make_unique<asio::steady_timer>(io_, timeout);
  w->timer->async_wait([this, name = inst.spec.name, id = w->id](error_code ec) {
    if (ec) return;
    Instance* inst = find(name);
    if (!inst) return;
    auto it = std::find_if(inst->waiters.begin(), inst->waiters.end(),
                           [&](const auto& w) { return w->id == id; });
    if (it == inst->waiters.end()) return;
    std::unique_ptr<Waiter> w = std::move(*it);
    inst->waiters.erase(it);
    w->done(snapshot(*inst));
  });
  inst.waiters.push_back(std::move(w));
  notifyWaiters(inst);
}

void Supervisor::whenSettled(const std::string& name, Millis timeout, Done done) {
  Instance* inst = find(name);
  if (!inst) return done(std::unexpected(notFoundError(name)));
  addWaiter(*inst, false, timeout, std::move(done));
}

// ---- create, update, remove -------------------------------------------------

Result<InstanceStatus> Supervisor::create(store::InstanceRecord spec, bool start) {
  if (auto s = validateName(spec.name); !s) return std::unexpected(s.error());
  if (find(spec.name))
    return fail(Errc::kConflict, fmt::format("instance '{}' already exists", spec.name));
  auto account = db_.findAccount(spec.account);
  if (!account) return std::unexpected(account.error());
  if (!*account) return fail(Errc::kNotFound, fmt::format("no account named '{}'", spec.account));
  if ((*account)->maxInstances > 0) {
    const auto owned = std::count_if(instances_.begin(), instances_.end(), [&](const auto& kv) {
      return kv.second->spec.account == spec.account;
    });
    if (owned >= (*account)->maxInstances)
      return fail(Errc::kExhausted, fmt::format("account '{}' has reached its limit of {} instances",
                                                spec.account, (*account)->maxInstances));
  }
  const auto siblings = siblingsOf(spec.account, spec.name);
  applyAccountDefaults(**account, spec, siblings);
  if (auto s = validateSpec(spec, **account); !s) return std::unexpected(s.error());
  if (auto s = checkQuota(**account, spec, siblings); !s) return std::unexpected(s.error());
  if (auto s = checkRouteFree(spec); !s) return std::unexpected(s.error());

  auto port = ports_.allocate();
  if (!port) return std::unexpected(port.error());
  spec.port = *port;
  spec.wanted = start;
  spec.createdAt = clock_.wallSeconds();
  spec.lastPid = 0;
  spec.lastPidStartTime = 0;
  spec.restarts = 0;
  if (auto s = db_.insertInstance(spec); !s) {
    ports_.unreserve(*port);
    return std::unexpected(s.error());
  }
  auto owned = std::make_unique<Instance>(io_);
  owned->serial = nextSerial_++;
  Instance& inst = *owned;
  inst.spec = std::move(spec);
  instances_.emplace(inst.spec.name, std::move(owned));
  spdlog::info("instance {}: created for account {} on port {}", inst.spec.name,
               inst.spec.account, inst.spec.port);
  notifyRoutes(!inst.spec.route.empty());
  notifyChanged(inst.spec);
  if (start) spawnNow(inst);
  return snapshot(inst);
}

Result<InstanceStatus> Supervisor::update(
    const std::string& name, const std::function<Status(store::InstanceRecord&)>& edit) {
  Instance* inst = find(name);
  if (!inst) return std::unexpected(notFoundError(name));
  store::InstanceRecord next = inst->spec;
  if (auto s = edit(next); !s) return std::unexpected(s.error());
  // What the owner may not change through an edit.
  next.name = inst->spec.name;
  next.account = inst->spec.account;
  next.port = inst->spec.port;
  next.wanted = inst->spec.wanted;
  next.createdAt = inst->spec.createdAt;
  next.lastPid = inst->spec.lastPid;
  next.lastPidStartTime = inst->spec.lastPidStartTime;
  next.restarts = inst->spec.restarts;
  auto account = db_.findAccount(next.account);
  if (!account) return std::unexpected(account.error());
  if (!*account) return fail(Errc::kNotFound, fmt::format("no account named '{}'", next.account));
  // An edit to 0 means "the account's cap" as at create, never "unlimited".
  const auto siblings = siblingsOf(next.account, next.name);
  applyAccountDefaults(**account, next, siblings);
  if (auto s = validateSpec(next, **account); !s) return std::unexpected(s.error());
  if (auto s = checkQuota(**account, next, siblings); !s) return std::unexpected(s.error());
  if (auto s = checkRouteFree(next); !s) return std::unexpected(s.error());
  if (auto s = persist(next); !s) return std::unexpected(s.error());
  const bool hadRoute = !inst->spec.route.empty();
  inst->spec = std::move(next);
  notifyRoutes(hadRoute || !inst->spec.route.empty());
  notifyChanged(inst->spec);
  return snapshot(*inst);
}

void Supervisor::remove(const std::string& name, std::function<void(Status)> done) {
  stop(name, [this, name, done = std::move(done)](Result<InstanceStatus> stopped) {
    if (!stopped) return done(std::unexpected(stopped.error()));
    Instance* inst = find(name);
    if (!inst) return done(std::unexpected(notFoundError(name)));
    if (auto s = db_.deleteInstance(name); !s) return done(s);
    ports_.release(static_cast<uint16_t>(inst->spec.port));
    if (options_.output) options_.output->release(name);
    logs_.remove(name);
    if (options_.cgroups && options_.cgroups->usable()) {
      if (auto s = options_.cgroups->removeInstance(name); !s) spdlog::warn("instance {}: {}", name, s.error().message);
    }
    auto waiters = std::move(inst->waiters);
    const bool hadRoute = !inst->spec.route.empty();
    const store::InstanceRecord gone = inst->spec;
    instances_.erase(name);
    notifyChanged(gone);
    for (auto& w : waiters) w->done(std::unexpected(notFoundError(name)));
    spdlog::info("instance {}: deleted", name);
    notifyRoutes(hadRoute);
    done({});
  });
}

uint64_t Supervisor::serialOf(const std::string& name) const {
  const Instance* inst = find(name);
  return inst ? inst->serial : 0;
}

bool Supervisor::anyActive() const {
  return std::any_of(instances_.begin(), instances_.end(), [](const auto& kv) { return isActive(kv.second->state); });
}

bool Supervisor::anyProcess() const {
  for (const auto& [name, inst] : instances_) {
    if (inst->pid > 0 || inst->spawning) return true;
  }
  return false;
}

}  // namespace hv::supervisor
