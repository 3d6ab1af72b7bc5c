// hostvisord: the daemon (`serve`) and its log keeper (`log-keeper`). Users
// run it as `hostvisor serve`: the client binary (src/cli/main.cpp) execs
// this one with the same arguments, so the process keeps its pid.
#include <CLI/CLI.hpp>
#include <iostream>

#include "base/log.h"
#include "daemon/app.h"
#include "daemon/config.h"
#include "daemon/resident.h"
#include "logkeeper/keeper.h"
#include "os/spawn.h"

namespace {

struct GlobalOptions {
  std::string dataDir;  // "" = defaultDataDir()
};

void addServe(CLI::App& app, GlobalOptions& global, int* exitCode) {
  auto* cmd = app.add_subcommand("serve", "run the daemon in the foreground");
  auto configPath = std::make_shared<std::string>();
  auto flags = std::make_shared<hv::daemon::ConfigOverrides>();
  auto opt = [&](const char* name, std::optional<std::string>& out, const char* help) {
    cmd->add_option_function<std::string>(name, [&out](const std::string& v) { out = v; }, help);
  };
  cmd->add_option("--config", *configPath, "TOML config file (default: embedded defaults)");
  opt("--api-listen", flags->apiListen, "panel/API TCP address (default 127.0.0.1:8070)");
  opt("--proxy-listen", flags->proxyListen, "front proxy address (default 127.0.0.1:8080)");
  opt("--port-range", flags->portRange, "ports to assign, LO-HI (default 20000-29999)");
  opt("--log-level", flags->logLevel, "trace, debug, info, warn, error");
  cmd->callback([=, &global] {
    // First, while the numbers above 2 are still free: one block for each
    // spawn-pool worker and the control thread, and spares.
    if (auto s = hv::os::reserveSpawnSlots(8); !s)
      std::cerr << "hostvisor: warning: " << s.error().message << " (spawns copy the descriptor table)\n";
    if (!global.dataDir.empty()) flags->dataDir = global.dataDir;
    auto config = hv::daemon::loadConfig(
        configPath->empty() ? std::nullopt : std::optional<std::string>(*configPath), *flags);
    if (!config) {
      std::cerr << "hostvisor: error: " << config.error().message << "\n";
      *exitCode = 2;
      return;
    }
    hv::setupLogging(config->logLevel);
    auto code = hv::daemon::serve(*config);
    if (!code) {
      std::cerr << "hostvisor: error: " << code.error().message << "\n";
      *exitCode = 1;
      return;
    }
    *exitCode = *code;
  });
}

// Started by the daemon, never by hand: the listening socket is fd 0
// (logkeeper/client.cpp). No description: hidden from --help.
void addLogKeeper(CLI::App& app, int* exitCode) {
  auto* cmd = app.add_subcommand("log-keeper", "");
  cmd->group("");
  cmd->callback([exitCode] {
    // It lives as long as the instances: the command-line start-up need not
    // stay resident (resident.h).
    hv::daemon::releaseStartupPages();
    *exitCode = hv::logkeeper::runKeeper(0);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hostvisor daemon (run it as `hostvisor serve`)"};
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions global;
  app.add_option("--data-dir", global.dataDir, "data directory (env HOSTVISOR_DATA_DIR)");
  int exitCode = 0;
  addServe(app, global, &exitCode);
  addLogKeeper(app, &exitCode);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return exitCode;
}
