#include "daemon/app.h"

#include "logkeeper/client.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>
#include <algorithm>
#include <cstdlib>
#include <future>

#include "api/api.h"
#include "api/alerts.h"
#include "api/audit_log.h"
#include "api/stats_history.h"
#include "api/auth.h"
#include "api/http_server.h"
#include "base/paths.h"
#include "base/scope_exit.h"
#include "daemon/data_dir.h"
#include "daemon/resident.h"
#include "daemon/routes.h"
#include "logkeeper/client.h"
#include "proxy/proxy.h"
#include "proxy/stats_text.h"
#include "os/cgroup.h"
#include "os/mount_ns.h"
#include "os/netpolicy/netpolicy.h"
#include "os/netpolicy/nft_policy.h"
#include "os/landlock.h"
#include "os/seccomp.h"
#include "os/users.h"
#include "store/database.h"
#include "supervisor/supervisor.h"

namespace hv::daemon {
namespace {

namespace asio = boost::asio;

store::AccountRecord toRecord(const os::UserInfo& user, std::string name, std::string home,
                              const AccountLimits& limits) {
  store::AccountRecord a;
  a.name = std::move(name);
  a.user = user.name;
  a.uid = user.uid;
  a.gid = user.gid;
  a.home = home.empty() ? user.home : std::move(home);
  while (a.home.size() > 1 && a.home.back() == '/') a.home.pop_back();
  a.maxInstances = limits.maxInstances;
  a.maxMemoryBytes = limits.maxMemoryBytes;
  a.maxCpuPercent = limits.maxCpuPercent;
  a.maxProcs = limits.maxProcs;
  a.maxOpenFiles = limits.maxOpenFiles;
  return a;
}

// Inserts the account, or updates what the config says of an existing one
// (its token hash stays).
Status upsertAccount(store::Database& db, store::AccountRecord account, int64_t now) {
  auto existing = db.findAccount(account.name);
  if (!existing) return std::unexpected(existing.error());
  if (!*existing) {
    account.createdAt = now;
    return db.insertAccount(account);
  }
  account.tokenHash = (*existing)->tokenHash;
  account.createdAt = (*existing)->createdAt;
  account.domains = (*existing)->domains;  // given by the admin through the API, not the config
  account.webhook = (*existing)->webhook;
  return db.updateAccount(account);
}

// The configured accounts, or the embedded default: one account `default`,
// the user running the daemon, with its $HOME.
Result<std::string> syncAccounts(store::Database& db, const Config& config, int64_t now) {
  if (config.accounts.empty()) {
    auto me = os::lookupUid(::geteuid());
    if (!me) return std::unexpected(me.error().context("find the user running the daemon"));
    const char* home = std::getenv("HOME");
    if (auto s = upsertAccount(db, toRecord(*me, "default", home && *home ? home : "", AccountLimits{0, 0, 0, 0, 0}), now); !s)
      return std::unexpected(s.error());
    return std::string("default");
  }
  for (const AccountConfig& a : config.accounts) {
    auto user = os::lookupUser(a.user);
    if (!user) return std::unexpected(user.error().context(fmt::format("account '{}'", a.name)));
    if (auto s = upsertAccount(db, toRecord(*user, a.name, a.home, a.limits), now); !s)
      return std::unexpected(s.error());
  }
  return config.accounts.size() == 1 ? config.accounts[0].name : std::string();
}

// Each data dir gets its own cgroup subtree (two daemons never share one),
// stable across restarts so running instances are found again.
std::string cgroupRootName(const std::string& dataDir) {
  return "hostvisor-" + api::hashToken(dataDir).substr(0, 12);
}

// The BPF pins live in /sys/fs/bpf/hostvisor-<this>.
std::string pinName(const std::string& dataDir) { return cgroupRootName(dataDir).substr(10); }

std::optional<os::Cgroups> openCgroups(const std::string& dataDir, std::vector<os::MechanismReport>& report) {
  auto cgroups = os::Cgroups::open(cgroupRootName(dataDir));
  if (!cgroups) {
    report.push_back({"cgroups", false, cgroups.error().message + "; no limits, no whole-tree kill"});
    return std::nullopt;
  }
  report.insert(report.end(), cgroups->mechanisms().begin(), cgroups->mechanisms().end());
  if (cgroups->usable()) cgroups->removeEmptyRuns();
  return std::move(*cgroups);
}

// The network policy mechanism [sandbox] network asks for: "bpf", "nftables",
// "off", or "auto" (BPF if it enforces here, else nftables, else none). One
// "network policy" row says which runs and why, then the chosen one's rows.
std::unique_ptr<supervisor::Egress> openNetPolicy(asio::io_context& io, const Config& config,
                                                  const std::optional<os::Cgroups>& cgroups,
                                                  const std::string& dataDir,
                                                  std::vector<os::MechanismReport>& report) {
  namespace np = os::netpolicy;
  const std::string& want = config.sandboxNetwork;
  if (want == "off") {
    report.push_back({"network policy", false, "off by config ([sandbox] network = \"off\")"});
    return nullptr;
  }
  const std::string root = cgroups && cgroups->usable() ? cgroups->rootPath() : std::string();
  std::string whyNotBpf;
  if (want == "auto" || want == "bpf") {
    auto bpf = root.empty() ? Result<np::NetPolicy>(fail(Errc::kUnavailable, "no cgroup2 tree to attach BPF programs to"))
                            : np::NetPolicy::open(root, pinName(dataDir));
    if (bpf && (want == "bpf" || bpf->enforcing())) {
      report.push_back({"network policy", bpf->enforcing(), fmt::format("cgroup-v2 BPF ([sandbox] network = \"{}\")", want)});
      report.insert(report.end(), bpf->mechanisms().begin(), bpf->mechanisms().end());
      return std::make_unique<supervisor::Egress>(io, std::make_unique<np::NetPolicy>(std::move(*bpf)),
                                                  supervisor::Egress::Options{});
    }
    if (!bpf) whyNotBpf = bpf.error().message;
    for (const auto& m : bpf ? bpf->mechanisms() : std::vector<os::MechanismReport>{}) {
      if (!m.enforced && whyNotBpf.empty()) whyNotBpf = m.name + ": " + m.detail;
    }
    if (bpf) (void)np::NetPolicy::removePins(pinName(dataDir));  // not used: nothing of it stays attached
    if (want == "bpf") {
      report.push_back({"network policy", false, "BPF ([sandbox] network = \"bpf\"): " + whyNotBpf});
      return nullptr;
    }
  }
  auto nft = np::NftPolicy::open({pinName(dataDir), root, false});
  const std::string because = whyNotBpf.empty() ? "" : " because BPF does not enforce here (" + whyNotBpf + ")";
  if (!nft || !(*nft)->enforcing()) {
    const std::string why = !nft ? nft.error().message : "nftables does not enforce here";
    report.push_back({"network policy", false, fmt::format("[sandbox] network = \"{}\": {}{}; not enforced", want, why, because)});
    if (nft) report.insert(report.end(), (*nft)->mechanisms().begin(), (*nft)->mechanisms().end());
    return nullptr;
  }
  report.push_back({"network policy", true, fmt::format("nftables ([sandbox] network = \"{}\"){}{}", want, because,
                                                        (*nft)->perRun() ? "" : "; per user, not per run")});
  report.insert(report.end(), (*nft)->mechanisms().begin(), (*nft)->mechanisms().end());
  return std::make_unique<supervisor::Egress>(io, std::move(*nft), supervisor::Egress::Options{});
}

// The syscall deny-list, used only if a child under it really is refused.
std::optional<os::SeccompProgram> buildSeccomp(std::vector<os::MechanismReport>& report) {
  auto program = os::buildDenyListFilter();
  if (!program) {
    report.push_back({"syscall filter", false, program.error().message});
    return std::nullopt;
  }
  os::MechanismReport probe = os::probeSeccomp(*program);
  report.push_back(probe);
  if (!probe.enforced) return std::nullopt;
  return std::move(*program);
}

// Private mounts per account, used only if a probe child gets them.
bool probeMounts(const std::vector<std::string>& hidePaths, uint64_t tmpSizeBytes,
                 std::vector<os::MechanismReport>& report) {
  os::MountOptions view;
  view.hidePaths = hidePaths;
  view.tmpSizeBytes = tmpSizeBytes;
  auto plan = os::buildMountPlan(view);
  if (!plan) {
    report.push_back({"private mounts", false, plan.error().message});
    return false;
  }
  os::MechanismReport probe = os::probePrivateMounts(*plan);
  report.push_back(probe);
  return probe.enforced;
}

// Who the programs run as: each account's own user needs a root daemon.
os::MechanismReport runAsAccount(const Config& config) {
  if (::geteuid() != 0) {
    auto me = os::lookupUid(::geteuid());
    return {"run as the account", false,
            fmt::format("single-user mode: the daemon is not root, so every instance runs as {}",
                        me ? me->name : std::to_string(::geteuid()))};
  }
  if (config.accounts.empty())
    return {"run as the account", false,
            "the embedded default account 'default' is root: its instances run as root; "
            "add accounts (hostvisor account add NAME --user USER) and use them"};
  return {"run as the account", true, "setgroups/setgid/setuid to the account's user before exec; root is refused"};
}

std::vector<proxy::Certificate> certificatesOf(const Config& config) {
  std::vector<proxy::Certificate> out;
  for (const auto& c : config.certificates) out.push_back(proxy::Certificate{c.host, c.cert, c.key});
  return out;
}

// The front proxy, on its own threads; nullopt when the config turns it off.
Result<std::unique_ptr<proxy::Proxy>> startProxy(const Config& config) {
  if (config.proxyListen.empty()) return std::unique_ptr<proxy::Proxy>();
  proxy::ProxyConfig pc;
  pc.listen = config.proxyListen;
  pc.tlsListen = config.proxyTlsListen;
  pc.certificates = certificatesOf(config);
  pc.threads = config.proxyThreads;
  pc.limits.maxConnsPerClient = static_cast<size_t>(config.proxyMaxClientConnections);
  pc.limits.tunnelIdle = std::chrono::milliseconds(config.proxyTunnelIdleMs);
  pc.limits.tunnelLifetime = std::chrono::milliseconds(config.proxyTunnelLifetimeMs);
  pc.limits.handshakeTimeout = std::chrono::milliseconds(config.proxyHandshakeTimeoutMs);
  pc.tunnelOffload = config.proxyTunnelOffload == "sockmap" ? proxy::TunnelOffloadMode::kSockmap
                     : config.proxyTunnelOffload == "auto"  ? proxy::TunnelOffloadMode::kAuto
                                                            : proxy::TunnelOffloadMode::kOff;
  pc.tlsTakeover = config.proxyTlsTakeover != "off";
  auto started = proxy::Proxy::start(std::move(pc));
  if (!started) return std::unexpected(started.error().context("start the front proxy"));
  return started;
}

void reloadCertificates(const Config& config, proxy::Proxy* proxy) {
  if (!proxy || config.sourcePath.empty()) return;
  auto fresh = loadConfig(config.sourcePath, {});
  if (!fresh) return spdlog::error("SIGHUP: config not reloaded: {}", fresh.error().message);
  if (auto s = proxy->reloadCertificates(certificatesOf(*fresh)); !s)
    return spdlog::error("SIGHUP: certificates not reloaded (the old ones stay): {}", s.error().message);
  spdlog::info("SIGHUP: {} certificate(s) reloaded", fresh->certificates.size());
}

void logMechanisms(const std::vector<os::MechanismReport>& report) {
  spdlog::info("sandbox mechanisms on this host (also: hostvisor doctor):");
  for (const auto& m : report) {
    if (m.enforced) spdlog::info("  {:<24} enforced: {}", m.name, m.detail);
    else spdlog::warn("  {:<24} DEGRADED: {}", m.name, m.detail);
  }
}

}  // namespace

Result<int> serve(const Config& config) {
  const std::string dataDir = config.dataDir.empty() ? defaultDataDir() : config.dataDir;
  if (auto s = prepareDataDir(dataDir); !s) return std::unexpected(s.error());
  auto lock = lockDataDir(dataDir);
  if (!lock) return std::unexpected(lock.error());
  // The front proxy needs nothing but the config; its start (the sockmap
  // program's verification and JIT, the loops' threads) takes tens of
  // milliseconds, so it runs on the other core while the sandbox is probed
  // below, and the first spawns wait for less. Taken before the supervisor
  // loads; on an earlier return the future's destructor waits for it.
  auto proxyStarting = std::async(std::launch::async, [&config] { return startProxy(config); });
  auto db = store::Database::open(dataDir + "/hostvisor.db");
  if (!db) return std::unexpected(db.error());
  SystemClock clock;
  auto defaultAccount = syncAccounts(**db, config, clock.wallSeconds());
  if (!defaultAccount) return std::unexpected(defaultAccount.error());
  auto adminToken = api::loadOrCreateAdminToken(adminTokenPath(dataDir));
  if (!adminToken) return std::unexpected(adminToken.error());

  ::signal(SIGPIPE, SIG_IGN);
  asio::io_context io(1);
  supervisor::SupervisorOptions options;
  options.logDir = dataDir + "/logs";
  options.portLo = config.portLo;
  options.portHi = config.portHi;
  // The programs' output goes through pipes the log keeper drains; it
  // outlives this daemon, and the next one takes the pipes back.
  logkeeper::Client logKeeper(io, logkeeper::ClientOptions{dataDir + "/log-keeper.sock", dataDir,
                                                           dataDir + "/log-keeper.log", config.logMaxBytes,
                                                           config.logKeep});
  if (auto s = logKeeper.start(); !s) return std::unexpected(s.error());
  options.output = &logKeeper;
  std::vector<os::MechanismReport> mechanisms{runAsAccount(config)};
  mechanisms.push_back({"no_new_privs", true, "PR_SET_NO_NEW_PRIVS before exec: setuid helpers gain nothing"});
  std::optional<os::Cgroups> cgroups = openCgroups(dataDir, mechanisms);
  options.cgroups = cgroups ? &*cgroups : nullptr;
  std::unique_ptr<supervisor::Egress> netPolicy = openNetPolicy(io, config, cgroups, dataDir, mechanisms);
  options.netPolicy = netPolicy.get();
  std::optional<os::SeccompProgram> seccomp = buildSeccomp(mechanisms);
  options.seccomp = seccomp ? &*seccomp : nullptr;
  mechanisms.push_back(os::probeLandlockScopes());
  options.scopeAbstractUnix = mechanisms.back().enforced;
  options.hidePaths = {dataDir};
  options.tmpSizeBytes = static_cast<uint64_t>(config.sandboxTmpBytes);
  options.mountStateDir = dataDir + "/mountns";
  options.privateMounts = probeMounts(options.hidePaths, options.tmpSizeBytes, mechanisms);
  logMechanisms(mechanisms);
  if (config.strict) {
    auto missing = std::find_if(mechanisms.begin(), mechanisms.end(), [](const auto& m) { return !m.enforced; });
    if (missing != mechanisms.end())
      options.refuseStarts = fmt::format("strict mode: '{}' is degraded on this host ({}); instances are not started",
                                         missing->name, missing->detail);
  }
  // Route changes come in bursts (a restart is several state changes):
  // at most one setRoutes per loop turn, with the state as it is then. Only
  // instances with a route call it (SupervisorOptions::onRoutesChanged).
  std::function<void()> routesChanged;
  // The config's static upstreams, and the panel's route once the API listens.
  std::vector<Config::StaticUpstream> statics = config.staticUpstreams;
  options.routeReserved = [&statics](const std::string& instance, const std::string& route) {
    return checkStaticConflict(instance, route, statics);
  };
  options.onRoutesChanged = [&] {
    if (routesChanged) routesChanged();
  };
  // The API (made below, once the supervisor exists) pushes changes to the
  // panels' event streams.
  std::function<void(const std::string&, const std::string&)> instanceChanged;
  options.onInstanceChanged = [&](const std::string& name, const std::string& account) {
    if (instanceChanged) instanceChanged(name, account);
  };
  std::function<void(const std::string&, const std::string&, std::string_view, const std::string&)> alertRaised;
  options.onAlert = [&](const std::string& name, const std::string& account, std::string_view kind,
                        const std::string& reason) {
    if (alertRaised) alertRaised(name, account, kind, reason);
  };
  auto proxy = proxyStarting.get();
  if (!proxy) return std::unexpected(proxy.error());
  supervisor::Supervisor supervisor(io, **db, clock, options);
  bool routesPending = false;
  const std::chrono::milliseconds hold(config.proxyHoldMs);
  auto publishRoutes = [&] {
    routesPending = false;
    if (!*proxy) return;
    if (auto s = (*proxy)->setRoutes(routesFor(supervisor.routeViews(), hold, statics)); !s)
      spdlog::error("proxy routes: {}", s.error().message);
  };
  routesChanged = [&] {
    if (std::exchange(routesPending, true)) return;
    asio::post(io, publishRoutes);
  };
  // On every way out: with nothing left running, the cgroup subtree has no
  // one to re-adopt, so it goes.
  ScopeExit releaseCgroups([&] {
    if (supervisor.anyActive() || supervisor.anyProcess()) return;
    logKeeper.quit();  // no program left to write: it writes out what it holds and exits
    (void)os::netpolicy::removeAll(pinName(dataDir));  // BPF pins or nft table, whichever it used
    if (cgroups && cgroups->usable()) (void)cgroups->destroy();
  });
  if (auto s = supervisor.load(); !s) return std::unexpected(s.error());
  for (const auto& name : logKeeper.names()) {
    if (!supervisor.has(name)) logKeeper.release(name);  // deleted while its pipe was kept
  }
  publishRoutes();

  bool stopInstances = config.stopInstancesOnExit;
  std::function<void(bool)> shutdown;
  auto audit = api::AuditLog::open(dataDir + "/audit.log");
  if (!audit) return std::unexpected(audit.error());
  api::StatsHistory history(io, supervisor);
  history.start();
  ScopeExit stopHistory([&] { history.stop(); });
  api::Api api(supervisor, **db, api::Authenticator(api::hashToken(*adminToken), ::geteuid(), *defaultAccount),
               api::ApiHooks{[&](bool stop) { shutdown(stop); }, [&] { return mechanisms; }, &*audit,
                             [&] { return *proxy ? proxy::prometheusText((*proxy)->stats()) : std::string(); },
                             toRecord(os::UserInfo{}, "", "", config.accountDefaults), config.panelHost, &history});
  instanceChanged = [&api](const std::string& name, const std::string& account) { api.instanceChanged(name, account); };
  api::Alerts alerts(io, **db, api.events());
  alertRaised = [&alerts](const std::string& name, const std::string& account, std::string_view kind,
                          const std::string& reason) { alerts.raise(name, account, kind, reason); };
  ScopeExit unhookEvents([&] {
    instanceChanged = nullptr;
    alertRaised = nullptr;
  });
  api::HttpServer server(io, api);
  if (auto s = server.listenUnix(socketPath(dataDir)); !s) return std::unexpected(s.error());
  std::string apiAddress;
  if (!config.apiListen.empty()) {
    auto bound = server.listenTcp(config.apiListen);
    if (!bound) return std::unexpected(bound.error());
    apiAddress = *bound;
    if (!config.panelHost.empty()) {
      statics.push_back(Config::StaticUpstream{"the panel", config.panelHost + "/", {apiAddress}, false, false, {},
                                               "[panel] host"});
      publishRoutes();
    }
  }

  asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  bool stopping = false;
  shutdown = [&](bool stopAll) {
    if (std::exchange(stopping, true)) return;
    signals.cancel();
    // Let the answer to an API shutdown leave before the listeners close.
    asio::post(io, [&, stopAll] {
      server.close();
      if (*proxy) (*proxy)->stop();
      if (!(stopAll || stopInstances)) return io.stop();
      spdlog::info("stopping every instance before exit");
      supervisor.stopAll([&] { io.stop(); });
    });
  };
  // SIGHUP: certificates are read again from the config file, without a
  // restart and without dropping open connections.
  std::function<void(boost::system::error_code, int)> onSignal = [&](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      reloadCertificates(config, proxy->get());
      return signals.async_wait(onSignal);
    }
    spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    shutdown(false);
  };
  signals.async_wait(onSignal);

  // Start-up is over: its code need not stay resident (resident.h). Before
  // daemon.json and the ready line: a breakpoint or uprobe put in the code
  // by someone who waited for them must not be dropped with the pages.
  const size_t released = releaseStartupPages();
  spdlog::debug("released {} KiB of start-up mappings", released / 1024);
  boost::json::object info{{"pid", ::getpid()}, {"api", apiAddress}, {"socket", socketPath(dataDir)},
                           {"data_dir", dataDir},
                           {"cgroup", cgroups && cgroups->usable() ? cgroups->rootPath() : ""},
                           {"proxy", *proxy ? (*proxy)->boundAddress() : ""},
                           {"proxy_tls", *proxy ? (*proxy)->tlsBoundAddress() : ""}};
  if (auto s = writeFileAtomic(dataDir + "/daemon.json", boost::json::serialize(info) + "\n", 0644); !s)
    return std::unexpected(s.error());
  spdlog::info("ready: api=http://{} proxy={} socket={} data_dir={} ports={}-{}",
               apiAddress.empty() ? "off" : apiAddress, *proxy ? "http://" + (*proxy)->boundAddress() : "off",
               socketPath(dataDir), dataDir, config.portLo, config.portHi);
  io.run();
  ::unlink((dataDir + "/daemon.json").c_str());
  ::unlink(socketPath(dataDir).c_str());
  spdlog::info("stopped");
  return 0;
}

}  // namespace hv::daemon
