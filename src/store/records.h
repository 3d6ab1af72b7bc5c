// The rows hostvisor persists: accounts and instances.
//
// Plain values. An InstanceRecord is the whole persisted spec of an instance
// plus the few runtime facts that must survive a daemon restart (its port,
// the state the owner asked for, and the last process it ran).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hv::store {

struct AccountRecord {
  std::string name;         // [a-z][a-z0-9_-]{0,31}
  std::string user;         // Unix user name
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;         // absolute, no trailing slash
  int maxInstances = 0;     // 0 = unlimited
  std::string tokenHash;    // hex SHA-256 of the API token; empty = none
  int64_t createdAt = 0;    // Unix seconds
  // Quotas (0 = none): total memory of its instances; the most CPU, processes
  // and open files any one of its instances may have.
  int64_t maxMemoryBytes = 0;
  int maxCpuPercent = 0;
  int maxProcs = 0;
  int maxOpenFiles = 0;
  // Where its instances may connect or send: "CIDR:PORT" (PORT 0 = any),
  // e.g. "127.0.0.1/32:5432". Empty = nowhere but their own port.
  std::vector<std::string> egress;
  // The host names it may route ("shop.example.com": that name and its
  // subdomains; "*.example.com": the subdomains only), given by the admin.
  std::vector<std::string> domains;
  // Where alerts about its instances are POSTed (http:// or https://); "" = none.
  std::string webhook;
};

enum class RestartMode { kAlways, kOnFailure, kNever };

// When a started instance counts as running: once its port accepts a
// connection or start_secs have passed, whichever is first (kPort), or only
// after start_secs (kStartSecs: for programs that do not listen).
enum class ReadyCheck { kPort, kStartSecs };

struct InstanceRecord {
  std::string name;         // [a-z0-9][a-z0-9_-]{0,62}, unique across the daemon
  std::string account;
  std::string command;      // absolute path
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // in order given
  std::string cwd;          // absolute; empty = the account's home
  std::string route;        // "" or "HOST/PATH" or "/PATH"
  std::vector<std::string> access;  // proxy rules in order, first match wins: "allow 10.0.0.0/8", "deny all"
  bool stripPrefix = false;         // the proxy removes the route's path prefix
  RestartMode restart = RestartMode::kOnFailure;
  bool autostart = true;    // start when the daemon starts (if wanted = true)
  int port = 0;             // the assigned TCP port, exclusive while the row exists
  bool wanted = true;       // the owner's last word: running (true) or stopped (false)
  int stopSignal = 15;      // SIGTERM
  int stopGraceMs = 10000;
  int startSecs = 1;        // alive this long = healthy
  ReadyCheck ready = ReadyCheck::kPort;
  int64_t memoryBytes = 0;  // 0 = no limit of its own
  int cpuPercent = 0;       // 0 = no limit
  int maxProcs = 0;         // 0 = no limit
  int64_t createdAt = 0;
  // Last process started, for re-adoption after a daemon restart.
  int lastPid = 0;
  uint64_t lastPidStartTime = 0;  // /proc/PID/stat field 22, to detect pid reuse
  int restarts = 0;               // automatic restarts since create
};

}  // namespace hv::store
