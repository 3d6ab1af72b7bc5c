#include "cli/commands.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <iostream>

#include "api/wire/wire.h"
#include "base/paths.h"
#include "cli/api_client.h"
#include "cli/request.h"
#include "cli/log_follow.h"
#include "cli/output.h"

namespace hv::cli {
namespace {

namespace json = boost::json;

int printInstance(const std::string& body, bool asJson) {
  if (asJson) {
    std::cout << body;
    return 0;
  }
  json::value v = json::parse(body);
  std::cout << renderStatus(v.as_object());
  return 0;
}

struct CreateOptions {
  std::string name, command, cwd, route, account, restart, memory, ready;
  std::vector<std::string> args, env, access;
  int cpu = -1, procs = -1, startSecs = -1;
  bool noStart = false, noWait = false, asJson = false, stripPrefix = false;
};

int runCreate(const GlobalOptions& global, const CreateOptions& o) {
  json::object body{{"name", o.name}, {"command", o.command}};
  json::array args;
  for (const auto& a : o.args) args.emplace_back(a);
  body["args"] = std::move(args);
  json::object env;
  for (const auto& kv : o.env) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return printError(fmt::format("--env '{}' is not NAME=VALUE", kv), kUsage);
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  body["env"] = std::move(env);
  if (!o.cwd.empty()) body["cwd"] = o.cwd;
  if (!o.route.empty()) body["route"] = o.route;
  if (!o.access.empty()) {
    json::array rules;
    for (const auto& r : o.access) rules.emplace_back(r);
    body["access"] = std::move(rules);
  }
  if (o.stripPrefix) body["strip_prefix"] = true;
  if (!o.account.empty()) body["account"] = o.account;
  if (!o.restart.empty()) body["restart"] = o.restart;
  if (!o.memory.empty()) body["memory"] = o.memory;
  if (o.cpu >= 0) body["cpu"] = o.cpu;
  if (o.procs >= 0) body["procs"] = o.procs;
  if (o.startSecs >= 0) body["start_secs"] = o.startSecs;
  if (!o.ready.empty()) body["ready"] = o.ready;
  if (o.noStart) body["start"] = false;
  const std::string target = o.noWait ? "/api/v1/instances" : "/api/v1/instances?wait=1";
  return request(global, "POST", target, json::serialize(body),
                 [&](const std::string& b) { return printInstance(b, o.asJson); });
}

void addCreate(CLI::App& app, const GlobalOptions& global, int* exitCode) {
  auto o = std::make_shared<CreateOptions>();
  auto* cmd = app.add_subcommand("create", "create an instance (and start it)");
  cmd->add_option("name", o->name, "instance name: a-z, 0-9, '-', '_'")->required();
  cmd->add_option("--command", o->command, "absolute path of the program")->required();
  cmd->add_option("--arg", o->args, "an argument ({port} becomes the port); repeat");
  cmd->add_option("--env", o->env, "NAME=VALUE for its environment; repeat");
  cmd->add_option("--cwd", o->cwd, "working directory (default: the account's home)");
  cmd->add_option("--route", o->route, "proxy route: HOST/PATH or /PATH");
  cmd->add_option("--access", o->access, "proxy access rule, first match wins: 'allow CIDR', 'deny all'; repeat");
  cmd->add_flag("--strip-prefix", o->stripPrefix, "the proxy removes the route's path before forwarding");
  cmd->add_option("--account", o->account, "owner account (admin only; default: yours)");
  cmd->add_option("--restart", o->restart, "always, on-failure (default) or never");
  cmd->add_option("--memory", o->memory, "memory limit, e.g. 256M");
  cmd->add_option("--cpu", o->cpu, "CPU limit in percent of one core");
  cmd->add_option("--procs", o->procs, "limit on processes");
  cmd->add_option("--start-secs", o->startSecs, "seconds alive before it counts as running");
  cmd->add_option("--ready", o->ready, "port (default: running once its port accepts) or start_secs");
  cmd->add_flag("--no-start", o->noStart, "create it stopped");
  cmd->add_flag("--no-wait", o->noWait, "answer before it has left `starting`");
  cmd->add_flag("--json", o->asJson, "print the instance as JSON");
  cmd->callback([=, &global] { *exitCode = runCreate(global, *o); });
}

void addList(CLI::App& app, const GlobalOptions& global, int* exitCode) {
  auto asJson = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("ls", "list instances");
  cmd->add_flag("--json", *asJson, "print a JSON array");
  cmd->callback([=, &global] {
    // --json: the daemon's body as it arrives, neither parsed nor held.
    if (*asJson) {
      *exitCode = requestToStdout(global, "GET", "/api/v1/instances");
      return;
    }
    *exitCode = request(global, "GET", "/api/v1/instances", "", [&](const std::string& body) {
      std::cout << renderTable(json::parse(body).as_array());
      return 0;
    });
  });
}

void addStatus(CLI::App& app, const GlobalOptions& global, int* exitCode) {
  auto name = std::make_shared<std::string>();
  auto asJson = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("status", "show one instance");
  cmd->add_option("name", *name)->required();
  cmd->add_flag("--json", *asJson, "print it as JSON");
  cmd->callback([=, &global] {
    *exitCode = request(global, "GET", "/api/v1/instances/" + *name, "",
                        [&](const std::string& body) { return printInstance(body, *asJson); });
  });
}

void addAction(CLI::App& app, const GlobalOptions& global, int* exitCode, const std::string& action,
               const std::string& help, bool canWait) {
  auto name = std::make_shared<std::string>();
  auto asJson = std::make_shared<bool>(false);
  auto noWait = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(action, help);
  cmd->add_option("name", *name)->required();
  cmd->add_flag("--json", *asJson, "print the instance as JSON");
  if (canWait) cmd->add_flag("--no-wait", *noWait, "answer before it has left `starting`");
  cmd->callback([=, &global] {
    const std::string target = fmt::format("/api/v1/instances/{}/{}{}", *name, action,
                                           canWait && !*noWait ? "?wait=1" : "");
    *exitCode = request(global, "POST", target, "",
                        [&](const std::string& body) { return printInstance(body, *asJson); });
  });
}

void addRemove(CLI::App& app, const GlobalOptions& global, int* exitCode) {
  auto name = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("rm", "stop and delete an instance, freeing its port");
  cmd->add_option("name", *name)->required();
  cmd->callback([=, &global] {
    *exitCode = request(global, "DELETE", "/api/v1/instances/" + *name, "", [&](const std::string&) {
      std::cout << "deleted " << *name << "\n";
      return 0;
    });
  });
}

void addLogs(CLI::App& app, const GlobalOptions& global, int* exitCode) {
  auto name = std::make_shared<std::string>();
  auto lines = std::make_shared<int>(100);
  auto follow = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("logs", "print an instance's output");
  cmd->add_option("name", *name)->required();
  cmd->add_option("-n,--lines", *lines, "how many of the last lines (default 100)")->check(CLI::Range(0, 1000000));
  cmd->add_flag("-f,--follow", *follow, "keep printing new output");
  cmd->callback([=, &global] {
    if (*follow) {
      *exitCode = followLogs(clientFor(global), *name, *lines);
      return;
    }
    *exitCode = request(global, "GET", fmt::format("/api/v1/instances/{}/logs?n={}", *name, *lines), "",
                        [&](const std::string& body) {
                          std::cout << logForStdout(body) << std::flush;
                          return 0;
                        });
  });
}

void addDoctor(CLI::App& app, const GlobalOptions& global, int* exitCode) {
  auto asJson = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("doctor", "what the sandbox enforces on this host (exit 4 if anything is degraded)");
  cmd->add_flag("--json", *asJson, "print JSON");
  cmd->callback([=, &global] {
    *exitCode = request(global, "GET", "/api/v1/doctor", "", [&](const std::string& body) {
      const json::value v = json::parse(body);
      bool degraded = false;
      for (const auto& m : v.at("mechanisms").as_array()) degraded |= !m.at("enforced").as_bool();
      if (*asJson) {
        std::cout << body;
      } else {
        for (const auto& m : v.at("mechanisms").as_array()) {
          const auto& o = m.as_object();
          std::cout << fmt::format("{:<26} {:<9} {}\n", o.at("name").as_string().c_str(),
                                   o.at("enforced").as_bool() ? "enforced" : "DEGRADED",
                                   o.at("detail").as_string().c_str());
        }
        if (degraded) std::cout << "\nsome mechanisms are DEGRADED on this host: see above; `strict = true` refuses to start instances then\n";
      }
      return degraded ? 4 : 0;
    });
  });
}

void addShutdown(CLI::App& app, const GlobalOptions& global, int* exitCode) {
  auto stopAll = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("shutdown", "stop the daemon (instances keep running unless told)");
  cmd->add_flag("--stop-instances", *stopAll, "stop every instance first");
  cmd->callback([=, &global] {
    *exitCode = request(global, "POST", *stopAll ? "/api/v1/shutdown?stop_instances=1" : "/api/v1/shutdown", "",
                        [](const std::string&) { return 0; });
  });
}

}  // namespace

void addClientCommands(CLI::App& app, const GlobalOptions& global, int* exitCode) {
  addAccountCommands(app, global, exitCode);
  addCreate(app, global, exitCode);
  addList(app, global, exitCode);
  addStatus(app, global, exitCode);
  addAction(app, global, exitCode, "start", "start an instance", true);
  addAction(app, global, exitCode, "stop", "stop an instance (its whole process group)", false);
  addAction(app, global, exitCode, "restart", "stop and start an instance", true);
  addRemove(app, global, exitCode);
  addLogs(app, global, exitCode);
  addShutdown(app, global, exitCode);
  addDoctor(app, global, exitCode);
}

}  // namespace hv::cli
