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

struct AccountConfig {
  std::string name;
  std::string user;
  std::string home;       // "" = the user's home from the passwd database
  int maxInstances = 0;   // 0 = unlimited
};

struct Config {
  std::string dataDir;                        // "" = defaultDataDir()
  std::string apiListen = "127.0.0.1:8070";   // "" = no TCP API
  std::string proxyListen = "127.0.0.1:8080";  // "" = no proxy
  std::string proxyTlsListen;                  // "" = no https/wss
  int proxyHoldMs = 3000;                      // hold requests while an instance (re)starts
  struct Certificate { std::string host, cert, key; };
  std::vector<Certificate> certificates;       // chosen by SNI; "" host = default
  uint16_t portLo = 20000;
  uint16_t portHi = 29999;
  std::string logLevel = "info";
  bool stopInstancesOnExit = false;           // default: instances outlive the daemon
  bool strict = false;                        // refuse to start instances if a mechanism is degraded
  int64_t logMaxBytes = 10 << 20;             // [logs] max_size: rotate past this
  int logKeep = 3;                            // [logs] keep: rotated files kept
  std::vector<AccountConfig> accounts;        // empty = one account `default`
  std::string sandboxNetwork = "auto";        // [sandbox] network: auto | bpf | nftables | off
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
