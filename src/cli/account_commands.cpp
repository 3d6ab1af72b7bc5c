// `hostvisor account add|ls|set|rm|token`: the admin's account management.
#include <boost/json.hpp>
#include <iostream>
#include <memory>

#include "cli/request.h"

namespace hv::cli {
namespace {

namespace json = boost::json;

struct AccountOptions {
  std::string name, user, home, maxMemory;
  int maxInstances = -1, maxCpu = -1, maxProcs = -1, maxOpenFiles = -1;
  std::vector<std::string> egress, domains;
  bool clearEgress = false, clearDomains = false, asJson = false;
};

void addQuotaOptions(CLI::App* cmd, AccountOptions& o) {
  cmd->add_option("--home", o.home, "home directory (default: the user's)");
  cmd->add_option("--max-instances", o.maxInstances, "how many instances it may have (0 = no limit)");
  cmd->add_option("--max-memory", o.maxMemory, "total memory of its instances, e.g. 1G (0 = no limit)");
  cmd->add_option("--max-cpu", o.maxCpu, "CPU per instance, percent of one core (0 = no limit)");
  cmd->add_option("--max-procs", o.maxProcs, "processes per instance (0 = no limit)");
  cmd->add_option("--max-open-files", o.maxOpenFiles, "open files per instance (0 = inherit)");
  cmd->add_option("--egress", o.egress, "allow connections to HOST-or-CIDR:PORT; repeat");
  cmd->add_option("--domain", o.domains, "a host name it may route (and its subdomains); repeat");
  cmd->add_flag("--json", o.asJson, "print JSON");
}

json::object body(const AccountOptions& o) {
  json::object b;
  if (!o.home.empty()) b["home"] = o.home;
  if (o.maxInstances >= 0) b["max_instances"] = o.maxInstances;
  if (!o.maxMemory.empty()) b["max_memory"] = o.maxMemory;
  if (o.maxCpu >= 0) b["max_cpu"] = o.maxCpu;
  if (o.maxProcs >= 0) b["max_procs"] = o.maxProcs;
  if (o.maxOpenFiles >= 0) b["max_open_files"] = o.maxOpenFiles;
  if (!o.domains.empty() || o.clearDomains) {
    json::array d;
    for (const auto& x : o.domains) d.emplace_back(x);
    b["domains"] = std::move(d);
  }
  if (!o.egress.empty() || o.clearEgress) {
    json::array e;
    for (const auto& x : o.egress) e.emplace_back(x);
    b["egress"] = std::move(e);
  }
  return b;
}

void addAdd(CLI::App& parent, const GlobalOptions& global, int* exitCode) {
  auto o = std::make_shared<AccountOptions>();
  auto* cmd = parent.add_subcommand("add", "add an account (prints its API token once)");
  cmd->add_option("name", o->name, "account name")->required();
  cmd->add_option("--user", o->user, "the Unix user its programs run as")->required();
  addQuotaOptions(cmd, *o);
  cmd->callback([=, &global] {
    json::object b = body(*o);
    b["name"] = o->name;
    b["user"] = o->user;
    *exitCode = request(global, "POST", "/api/v1/accounts", json::serialize(b), [&](const std::string& res) {
      if (o->asJson) {
        std::cout << res;
        return 0;
      }
      json::value v = json::parse(res);
      std::cout << "account " << o->name << " added (user " << o->user << ")\n"
                << "its API token, shown only now:\n" << json::value_to<std::string>(v.at("token")) << "\n";
      return 0;
    });
  });
}

void addList(CLI::App& parent, const GlobalOptions& global, int* exitCode) {
  auto asJson = std::make_shared<bool>(false);
  auto* cmd = parent.add_subcommand("ls", "list accounts");
  cmd->add_flag("--json", *asJson, "print a JSON array");
  cmd->callback([=, &global] {
    *exitCode = request(global, "GET", "/api/v1/accounts", "", [&](const std::string& res) {
      if (*asJson) {
        std::cout << res;
        return 0;
      }
      std::cout << fmt::format("{:<16} {:<12} {:>6} {:<28} {:>9} {:>10}\n", "NAME", "USER", "UID", "HOME",
                               "INSTANCES", "MAX");
      const json::value list = json::parse(res);
      for (const auto& a : list.as_array()) {
        const auto& o = a.as_object();
        std::cout << fmt::format("{:<16} {:<12} {:>6} {:<28} {:>9} {:>10}\n", o.at("name").as_string().c_str(),
                                 o.at("user").as_string().c_str(), o.at("uid").to_number<int64_t>(),
                                 o.at("home").as_string().c_str(), o.at("instances").to_number<int64_t>(),
                                 o.at("max_instances").to_number<int64_t>());
      }
      return 0;
    });
  });
}

void addSet(CLI::App& parent, const GlobalOptions& global, int* exitCode) {
  auto o = std::make_shared<AccountOptions>();
  auto* cmd = parent.add_subcommand("set", "change an account's home, quotas or egress allowlist");
  cmd->add_option("name", o->name, "account name")->required();
  addQuotaOptions(cmd, *o);
  cmd->add_flag("--no-egress", o->clearEgress, "allow no outgoing connections");
  cmd->add_flag("--no-domains", o->clearDomains, "route no host (only the admin's path routes)");
  cmd->callback([=, &global] {
    *exitCode = request(global, "PATCH", "/api/v1/accounts/" + o->name, json::serialize(body(*o)),
                        [&](const std::string& res) {
                          std::cout << (o->asJson ? res : "account " + o->name + " changed\n");
                          return 0;
                        });
  });
}

void addNamed(CLI::App& parent, const GlobalOptions& global, int* exitCode, const std::string& verb) {
  auto name = std::make_shared<std::string>();
  const bool rm = verb == "rm";
  auto* cmd = parent.add_subcommand(verb, rm ? "delete an account (it must have no instances)"
                                             : "issue a new API token (the old one stops working)");
  cmd->add_option("name", *name, "account name")->required();
  cmd->callback([=, &global] {
    const std::string target = "/api/v1/accounts/" + *name + (rm ? "" : "/token");
    *exitCode = request(global, rm ? "DELETE" : "POST", target, "", [&](const std::string& res) {
      if (rm) std::cout << "account " << *name << " deleted\n";
      else std::cout << json::value_to<std::string>(json::parse(res).at("token")) << "\n";
      return 0;
    });
  });
}

}  // namespace

void addAccountCommands(CLI::App& app, const GlobalOptions& global, int* exitCode) {
  auto* account = app.add_subcommand("account", "manage accounts (admin)");
  account->require_subcommand(1);
  addAdd(*account, global, exitCode);
  addList(*account, global, exitCode);
  addSet(*account, global, exitCode);
  addNamed(*account, global, exitCode, "rm");
  addNamed(*account, global, exitCode, "token");
}

}  // namespace hv::cli
