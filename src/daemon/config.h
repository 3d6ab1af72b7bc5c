// Config: the daemon's settings from the embedded defaults, a TOML file
// (--config) and command-line flags, in that order of precedence (flags win).
// Parsing is strict: an unknown key or a bad value is an error that names it
// and the file position, like nginx -t. Pure apart from reading the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace hv::daemon {

// [account_defaults]: the quotas an account gets when it is added (by the
// API, the CLI or [[accounts]]) without naming its own. 0 = unlimited, which
// only the admin can set (PATCH /api/v1/accounts/NAME). The embedded default
// account (the daemon's own user, no [[accounts]]) stays unlimited: its
// programs could do all of that as the same user anyway.
struct AccountLimits {
  int maxInstances = 20;
  int64_t maxMemoryBytes = 4LL << 30;  // total of its instances; each gets 256M unless it names a limit
  int maxCpuPercent = 100;             // per instance: one core
  int maxProcs = 128;                  // per instance
  int maxOpenFiles = 4096;             // per instance
};

struct AccountConfig {
  std::string name;
  std::string user;
  std::string home;       // "" = the user's home from the passwd database
  AccountLimits limits;   // [account_defaults] unless the table names its own
};

struct Config {
  std::string dataDir;                        // "" = defaultDataDir()
  std::string apiListen = "127.0.0.1:8070";   // "" = no TCP API
  std::string proxyListen = "127.0.0.1:8080";  // "" = no proxy
  std::string proxyTlsListen;                  // "" = no https/wss
  int proxyHoldMs = 3000;                      // hold requests while an instance (re)starts
  struct Certificate { std::string host, cert, key; };
  std::vector<Certificate> certificates;       // chosen by SNI; "" host = default
  unsigned proxyThreads = 0;                   // [proxy] threads: event loops; 0 = CPUs in the affinity mask
  int proxyMaxClientConnections = 256;         // [proxy] max_client_connections: open ones per client address
  int64_t proxyTunnelIdleMs = 3'600'000;       // [proxy] tunnel_idle_ms: a WebSocket tunnel with no byte either way
  int64_t proxyTunnelLifetimeMs = 0;           // [proxy] tunnel_lifetime_ms: hard cap on a tunnel's age; 0 = none
  int64_t proxyHandshakeTimeoutMs = 10'000;    // [proxy] handshake_timeout_ms: TLS handshake, upgrade → 101
  // [proxy] tunnel_offload: who copies established plain ws:// tunnels: "auto"
  // (the kernel, BPF sockmap, where the start-up probe succeeds, else the
  // proxy loop), "sockmap" (the kernel or the daemon does not start), "off".
  std::string proxyTunnelOffload = "auto";
  // [proxy] tls_takeover: "auto" (a wss tunnel on TLS 1.3 continues with the
  // proxy's own record layer and OpenSSL's SSL is freed: less idle memory) or "off".
  std::string proxyTlsTakeover = "auto";
  // [[proxy.upstreams]]: a route to fixed servers, served alongside the
  // instances' routes. Validated here (addresses, rules, no duplicate route).
  struct StaticUpstream {
    std::string name;                  // for error pages and logs; default: the route
    std::string route;                 // "HOST/PATH" or "/PATH", as an instance's route
    std::vector<std::string> servers;  // "IP:PORT" or "[IPv6]:PORT"; names are not resolved
    bool leastConn = false;            // balance = "least-conn" (default "round-robin")
    bool stripPrefix = false;
    std::vector<std::string> access;   // "allow CIDR" / "deny CIDR" / "deny all", first match wins
    std::string where;                 // "FILE:LINE:COL" of its table, for messages
  };
  std::vector<StaticUpstream> staticUpstreams;
  uint16_t portLo = 20000;
  uint16_t portHi = 29999;
  std::string logLevel = "info";
  bool stopInstancesOnExit = false;           // default: instances outlive the daemon
  bool strict = false;                        // refuse to start instances if a mechanism is degraded
  int64_t logMaxBytes = 10 << 20;             // [logs] max_size: rotate past this
  int logKeep = 3;                            // [logs] keep: rotated files kept
  std::vector<AccountConfig> accounts;        // empty = one account `default`
  AccountLimits accountDefaults;              // [account_defaults]
  std::string sandboxNetwork = "auto";        // [sandbox] network: auto | bpf | nftables | off
  // [sandbox] tmp_size: each account's private /tmp, /var/tmp and /dev/shm
  // are tmpfs (memory) that outlive its runs: each is capped at this size.
  int64_t sandboxTmpBytes = 64 << 20;
  // [panel] host: the front proxy serves the panel (the API's TCP listener)
  // on this host name ("panel.example.com"; with the proxy's TLS for https),
  // and browser sessions accept it as the daemon's own Host. "" = none.
  std::string panelHost;
  std::string sourcePath;                     // the file it came from ("" = embedded), for SIGHUP
};

// Flags given on the command line; unset ones leave the file's value.
struct ConfigOverrides {
  std::optional<std::string> dataDir;
  std::optional<std::string> apiListen;
  std::optional<std::string> proxyListen;
  std::optional<std::string> portRange;
  std::optional<std::string> logLevel;
};

Result<Config> parseConfigText(std::string_view toml, const std::string& sourceName);
Result<Config> loadConfig(const std::optional<std::string>& path, const ConfigOverrides& flags);
// "20000-29999" → {lo, hi}; names what is wrong otherwise.
Result<std::pair<uint16_t, uint16_t>> parsePortRange(std::string_view text);

}  // namespace hv::daemon
