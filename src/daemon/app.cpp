#include "daemon/app.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>
#include <cstdlib>

#include "api/api.h"
#include "api/auth.h"
#include "api/http_server.h"
#include "base/paths.h"
#include "daemon/data_dir.h"
#include "os/users.h"
#include "store/database.h"
#include "supervisor/supervisor.h"

namespace hv::daemon {
namespace {

namespace asio = boost::asio;

store::AccountRecord toRecord(const os::UserInfo& user, std::string name, std::string home, int maxInstances) {
  store::AccountRecord a;
  a.name = std::move(name);
  a.user = user.name;
  a.uid = user.uid;
  a.gid = user.gid;
  a.home = home.empty() ? user.home : std::move(home);
  while (a.home.size() > 1 && a.home.back() == '/') a.home.pop_back();
  a.maxInstances = maxInstances;
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
  return db.updateAccount(account);
}

// The configured accounts, or the embedded default: one account `default`,
// the user running the daemon, with its $HOME.
Result<std::string> syncAccounts(store::Database& db, const Config& config, int64_t now) {
  if (config.accounts.empty()) {
    auto me = os::lookupUid(::geteuid());
    if (!me) return std::unexpected(me.error().context("find the user running the daemon"));
    const char* home = std::getenv("HOME");
    if (auto s = upsertAccount(db, toRecord(*me, "default", home && *home ? home : "", 0), now); !s)
      return std::unexpected(s.error());
    return std::string("default");
  }
  for (const AccountConfig& a : config.accounts) {
    auto user = os::lookupUser(a.user);
    if (!user) return std::unexpected(user.error().context(fmt::format("account '{}'", a.name)));
    if (auto s = upsertAccount(db, toRecord(*user, a.name, a.home, a.maxInstances), now); !s)
      return std::unexpected(s.error());
  }
  return config.accounts.size() == 1 ? config.accounts[0].name : std::string();
}

}  // namespace

Result<int> serve(const Config& config) {
  const std::string dataDir = config.dataDir.empty() ? defaultDataDir() : config.dataDir;
  if (auto s = prepareDataDir(dataDir); !s) return std::unexpected(s.error());
  auto lock = lockDataDir(dataDir);
  if (!lock) return std::unexpected(lock.error());
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
  options.logRotation = supervisor::RotationPolicy{config.logMaxBytes, config.logKeep};
  supervisor::Supervisor supervisor(io, **db, clock, options);
  if (auto s = supervisor.load(); !s) return std::unexpected(s.error());

  bool stopInstances = config.stopInstancesOnExit;
  std::function<void(bool)> shutdown;
  api::Api api(supervisor, **db, api::Authenticator(api::hashToken(*adminToken), ::geteuid(), *defaultAccount),
               api::ApiHooks{[&](bool stop) { shutdown(stop); }});
  api::HttpServer server(io, api);
  if (auto s = server.listenUnix(socketPath(dataDir)); !s) return std::unexpected(s.error());
  std::string apiAddress;
  if (!config.apiListen.empty()) {
    auto bound = server.listenTcp(config.apiListen);
    if (!bound) return std::unexpected(bound.error());
    apiAddress = *bound;
  }

  asio::signal_set signals(io, SIGTERM, SIGINT);
  bool stopping = false;
  shutdown = [&](bool stopAll) {
    if (std::exchange(stopping, true)) return;
    signals.cancel();
    // Let the answer to an API shutdown leave before the listeners close.
    asio::post(io, [&, stopAll] {
      server.close();
      if (!(stopAll || stopInstances)) return io.stop();
      spdlog::info("stopping every instance before exit");
      supervisor.stopAll([&] { io.stop(); });
    });
  };
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    shutdown(false);
  });

  boost::json::object info{{"pid", ::getpid()}, {"api", apiAddress}, {"socket", socketPath(dataDir)},
                           {"data_dir", dataDir}};
  if (auto s = writeFileAtomic(dataDir + "/daemon.json", boost::json::serialize(info) + "\n", 0644); !s)
    return std::unexpected(s.error());
  spdlog::warn("front proxy: not built yet; --proxy-listen {} is accepted and not served", config.proxyListen);
  spdlog::info("ready: api=http://{} socket={} data_dir={} ports={}-{}", apiAddress.empty() ? "off" : apiAddress,
               socketPath(dataDir), dataDir, config.portLo, config.portHi);
  io.run();
  ::unlink((dataDir + "/daemon.json").c_str());
  ::unlink(socketPath(dataDir).c_str());
  spdlog::info("stopped");
  return 0;
}

}  // namespace hv::daemon
