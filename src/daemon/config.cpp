#include "daemon/config.h"

#include <fmt/format.h>

#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include <boost/asio/ip/address.hpp>

#include "api/wire/wire.h"
#include "base/strings.h"
#include "proxy/route.h"
#include "proxy/route_table.h"

namespace hv::daemon {
namespace {

std::string where(const toml::node& node, const std::string& source) {
  const auto& src = node.source();
  return fmt::format("{}:{}:{}", source, src.begin.line, src.begin.column);
}

Status checkKeys(const toml::table& table, const std::set<std::string_view>& allowed,
                 const std::string& section, const std::string& source) {
  for (const auto& [key, node] : table) {
    (void)node;
    if (!allowed.contains(key.str()))
      return fail(Errc::kInvalidArgument,
                  fmt::format("{}:{}:{}: unknown key '{}{}'", source, key.source().begin.line,
                              key.source().begin.column, section, key.str()));
  }
  return {};
}

template <class T>
Status read(const toml::table& table, std::string_view key, T& out, const std::string& source) {
  const toml::node* node = table.get(key);
  if (!node) return {};
  if constexpr (std::is_same_v<T, int>) {
    auto v = node->value<int64_t>();
    if (!v || *v < 0 || *v > 1'000'000)
      return fail(Errc::kInvalidArgument, fmt::format("{}: '{}' must be a whole number from 0 to 1000000", where(*node, source), key));
    out = static_cast<int>(*v);
  } else {
    auto v = node->value<T>();
    if (!v) return fail(Errc::kInvalidArgument, fmt::format("{}: '{}' has the wrong type", where(*node, source), key));
    out = *v;
  }
  return {};
}

// The quota keys shared by [account_defaults] and [[accounts]].
Status readLimits(const toml::table& t, AccountLimits& limits, const std::string& source) {
  if (auto s = read(t, "max_instances", limits.maxInstances, source); !s) return s;
  if (auto s = read(t, "max_cpu", limits.maxCpuPercent, source); !s) return s;
  if (auto s = read(t, "max_procs", limits.maxProcs, source); !s) return s;
  if (auto s = read(t, "max_open_files", limits.maxOpenFiles, source); !s) return s;
  if (const toml::node* node = t.get("max_memory")) {
    std::string text;
    if (auto v = node->value<std::string>()) text = *v;
    auto bytes = api::wire::parseSize(text);
    if (!bytes)
      return fail(Errc::kInvalidArgument, fmt::format("{}: 'max_memory' must be a size like \"4G\" (\"0\" = unlimited)",
                                                      where(*node, source)));
    limits.maxMemoryBytes = *bytes;
  }
  return {};
}

Status readAccountDefaults(const toml::table& root, Config& config, const std::string& source) {
  const toml::node* node = root.get("account_defaults");
  if (!node) return {};
  const toml::table* t = node->as_table();
  if (!t) return fail(Errc::kInvalidArgument, fmt::format("{}: 'account_defaults' must be a table", where(*node, source)));
  if (auto s = checkKeys(*t, {"max_instances", "max_memory", "max_cpu", "max_procs", "max_open_files"},
                         "account_defaults.", source);
      !s)
    return s;
  return readLimits(*t, config.accountDefaults, source);
}

Status readAccounts(const toml::table& root, Config& config, const std::string& source) {
  const toml::node* node = root.get("accounts");
  if (!node) return {};
  const toml::array* list = node->as_array();
  if (!list) return fail(Errc::kInvalidArgument, fmt::format("{}: 'accounts' must be an array of tables ([[accounts]])", where(*node, source)));
  for (const toml::node& item : *list) {
    const toml::table* t = item.as_table();
    if (!t) return fail(Errc::kInvalidArgument, fmt::format("{}: each account must be a table", where(item, source)));
    if (auto s = checkKeys(*t, {"name", "user", "home", "max_instances", "max_memory", "max_cpu", "max_procs",
                                "max_open_files"}, "accounts.", source);
        !s)
      return s;
    AccountConfig a;
    a.limits = config.accountDefaults;
    if (auto s = read(*t, "name", a.name, source); !s) return s;
    if (auto s = read(*t, "user", a.user, source); !s) return s;
    if (auto s = read(*t, "home", a.home, source); !s) return s;
    if (auto s = readLimits(*t, a.limits, source); !s) return s;
    if (a.name.empty() || a.user.empty())
      return fail(Errc::kInvalidArgument, fmt::format("{}: an account needs 'name' and 'user'", where(item, source)));
    config.accounts.push_back(std::move(a));
  }
  return {};
}

// A whole number from lo to hi (for keys whose range is not read<int>'s).
Status readRange(const toml::table& table, std::string_view key, int64_t lo, int64_t hi, int64_t& out,
                 const std::string& source) {
  const toml::node* node = table.get(key);
  if (!node) return {};
  auto v = node->value<int64_t>();
  if (!v || *v < lo || *v > hi)
    return fail(Errc::kInvalidArgument,
                fmt::format("{}: '{}' must be a whole number from {} to {}", where(*node, source), key, lo, hi));
  out = *v;
  return {};
}

Status readStrings(const toml::table& table, std::string_view key, std::vector<std::string>& out,
                   const std::string& source) {
  const toml::node* node = table.get(key);
  if (!node) return {};
  const toml::array* list = node->as_array();
  if (!list) return fail(Errc::kInvalidArgument, fmt::format("{}: '{}' must be a list of strings", where(*node, source), key));
  for (const toml::node& item : *list) {
    auto v = item.value<std::string>();
    if (!v) return fail(Errc::kInvalidArgument, fmt::format("{}: '{}' must be a list of strings", where(item, source), key));
    out.push_back(*v);
  }
  return {};
}

// "IP:PORT" or "[IPv6]:PORT", port 1-65535; names are not resolved.
bool validServer(std::string_view text) {
  const size_t colon = text.rfind(':');
  long long port = 0;
  if (colon == std::string_view::npos || !parseInt(text.substr(colon + 1), 1, 65535, &port)) return false;
  std::string_view host = text.substr(0, colon);
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  const auto ip = boost::asio::ip::make_address(std::string(host), ec);
  return !ec && ip.is_v6() == bracketed;
}

Status readStaticUpstream(const toml::node& item, Config& config, const std::string& source) {
  const toml::table* t = item.as_table();
  if (!t) return fail(Errc::kInvalidArgument, fmt::format("{}: each upstream must be a table", where(item, source)));
  if (auto s = checkKeys(*t, {"name", "route", "servers", "balance", "strip_prefix", "access"}, "proxy.upstreams.", source); !s)
    return s;
  Config::StaticUpstream u;
  u.where = where(item, source);
  std::string balance = "round-robin";
  Status s = read(*t, "name", u.name, source);
  if (s) s = read(*t, "route", u.route, source);
  if (s) s = readStrings(*t, "servers", u.servers, source);
  if (s) s = read(*t, "balance", balance, source);
  if (s) s = read(*t, "strip_prefix", u.stripPrefix, source);
  if (s) s = readStrings(*t, "access", u.access, source);
  if (!s) return s;
  auto bad = [&](const std::string& what) { return fail(Errc::kInvalidArgument, fmt::format("{}: {}", u.where, what)); };
  auto spec = proxy::parseRouteSpec(u.route);
  if (!spec) return bad(fmt::format("upstream route '{}': {}", u.route, spec.error().message));
  if (u.servers.empty()) return bad("an upstream needs 'servers', like [\"127.0.0.1:9000\"]");
  for (const auto& server : u.servers)
    if (!validServer(server)) return bad(fmt::format("server '{}' is not IP:PORT (names are not resolved)", server));
  if (balance != "round-robin" && balance != "least-conn")
    return bad(fmt::format("balance '{}' is not \"round-robin\" or \"least-conn\"", balance));
  u.leastConn = balance == "least-conn";
  for (const auto& rule : u.access)
    if (auto r = proxy::CidrRule::parse(rule); !r) return bad(fmt::format("access rule '{}': {}", rule, r.error().message));
  const std::string key = spec->first + spec->second;
  for (const auto& other : config.staticUpstreams)
    if (auto o = proxy::parseRouteSpec(other.route); o && o->first + o->second == key)
      return bad(fmt::format("route '{}' is already the upstream route at {}", u.route, other.where));
  if (u.name.empty()) u.name = u.route;
  config.staticUpstreams.push_back(std::move(u));
  return {};
}

Status readProxyTuning(const toml::table& t, Config& config, const std::string& source) {
  int64_t threads = config.proxyThreads, perClient = config.proxyMaxClientConnections;
  constexpr int64_t kDay = 86'400'000;
  Status s = readRange(t, "threads", 0, 256, threads, source);
  if (s) s = readRange(t, "max_client_connections", 1, 1'000'000, perClient, source);
  if (s) s = readRange(t, "tunnel_idle_ms", 1000, 30 * kDay, config.proxyTunnelIdleMs, source);
  if (s) s = readRange(t, "tunnel_lifetime_ms", 0, 365 * kDay, config.proxyTunnelLifetimeMs, source);
  if (s) s = readRange(t, "handshake_timeout_ms", 100, 600'000, config.proxyHandshakeTimeoutMs, source);
  config.proxyThreads = static_cast<unsigned>(threads);
  config.proxyMaxClientConnections = static_cast<int>(perClient);
  if (!s) return s;
  if (const toml::node* node = t.get("tunnel_offload")) {
    auto v = node->value<std::string>();
    if (!v || (*v != "auto" && *v != "sockmap" && *v != "off"))
      return fail(Errc::kInvalidArgument, fmt::format("{}: 'tunnel_offload' must be \"auto\", \"sockmap\" or \"off\"",
                                                      where(*node, source)));
    config.proxyTunnelOffload = *v;
  }
  if (const toml::node* node = t.get("tls_takeover")) {
    auto v = node->value<std::string>();
    if (!v || (*v != "auto" && *v != "off"))
      return fail(Errc::kInvalidArgument,
                  fmt::format("{}: 'tls_takeover' must be \"auto\" or \"off\"", where(*node, source)));
    config.proxyTlsTakeover = *v;
  }
  return s;
}

Status readProxy(const toml::table& root, Config& config, const std::string& source) {
  const toml::node* node = root.get("proxy");
  if (!node) return {};
  const toml::table* t = node->as_table();
  if (!t) return fail(Errc::kInvalidArgument, fmt::format("{}: 'proxy' must be a table", where(*node, source)));
  if (auto s = checkKeys(*t, {"listen", "tls_listen", "hold_ms", "certificates", "threads", "max_client_connections",
                              "tunnel_idle_ms", "tunnel_lifetime_ms", "handshake_timeout_ms", "tunnel_offload", "tls_takeover", "upstreams"},
                         "proxy.", source);
      !s)
    return s;
  if (auto s = read(*t, "listen", config.proxyListen, source); !s) return s;
  if (auto s = read(*t, "tls_listen", config.proxyTlsListen, source); !s) return s;
  if (auto s = read(*t, "hold_ms", config.proxyHoldMs, source); !s) return s;
  if (auto s = readProxyTuning(*t, config, source); !s) return s;
  if (const toml::node* ups = t->get("upstreams")) {
    const toml::array* list = ups->as_array();
    if (!list)
      return fail(Errc::kInvalidArgument, fmt::format("{}: 'proxy.upstreams' must be [[proxy.upstreams]] tables", where(*ups, source)));
    for (const toml::node& item : *list)
      if (auto s = readStaticUpstream(item, config, source); !s) return s;
  }
  const toml::node* certs = t->get("certificates");
  if (!certs) return {};
  const toml::array* list = certs->as_array();
  if (!list) return fail(Errc::kInvalidArgument, fmt::format("{}: 'proxy.certificates' must be [[proxy.certificates]] tables", where(*certs, source)));
  for (const toml::node& item : *list) {
    const toml::table* ct = item.as_table();
    if (!ct) return fail(Errc::kInvalidArgument, fmt::format("{}: each certificate must be a table", where(item, source)));
    if (auto s = checkKeys(*ct, {"host", "cert", "key"}, "proxy.certificates.", source); !s) return s;
    Config::Certificate cert;
    if (auto s = read(*ct, "host", cert.host, source); !s) return s;
    if (auto s = read(*ct, "cert", cert.cert, source); !s) return s;
    if (auto s = read(*ct, "key", cert.key, source); !s) return s;
    if (cert.cert.empty() || cert.key.empty())
      return fail(Errc::kInvalidArgument, fmt::format("{}: a certificate needs 'cert' and 'key' files", where(item, source)));
    config.certificates.push_back(std::move(cert));
  }
  return {};
}

Status readLogs(const toml::table& root, Config& config, const std::string& source) {
  const toml::node* node = root.get("logs");
  if (!node) return {};
  const toml::table* t = node->as_table();
  if (!t) return fail(Errc::kInvalidArgument, fmt::format("{}: 'logs' must be a table", where(*node, source)));
  if (auto s = checkKeys(*t, {"max_size", "keep"}, "logs.", source); !s) return s;
  std::string size;
  if (auto s = read(*t, "max_size", size, source); !s) return s;
  if (auto s = read(*t, "keep", config.logKeep, source); !s) return s;
  if (config.logKeep > 9)
    return fail(Errc::kInvalidArgument, fmt::format("{}: 'logs.keep' must be from 0 to 9", where(*t->get("keep"), source)));
  if (!size.empty()) {
    auto bytes = api::wire::parseSize(size);
    if (!bytes || *bytes < 4096)
      return fail(Errc::kInvalidArgument, fmt::format("{}: 'logs.max_size' must be a size of at least 4K, like \"10M\"",
                                                      where(*t->get("max_size"), source)));
    config.logMaxBytes = *bytes;
  }
  return {};
}

// [sandbox] network: which network policy mechanism (auto = BPF if it
// enforces here, else nftables, else none, with the reason). tmp_size: the
// cap of each private tmpfs of an account.
Status readSandbox(const toml::table& root, Config& config, const std::string& source) {
  const toml::node* node = root.get("sandbox");
  if (!node) return {};
  const toml::table* t = node->as_table();
  if (!t) return fail(Errc::kInvalidArgument, fmt::format("{}: 'sandbox' must be a table", where(*node, source)));
  if (auto s = checkKeys(*t, {"network", "tmp_size"}, "sandbox.", source); !s) return s;
  if (auto s = read(*t, "network", config.sandboxNetwork, source); !s) return s;
  std::string tmpSize;
  if (auto s = read(*t, "tmp_size", tmpSize, source); !s) return s;
  if (!tmpSize.empty()) {
    auto bytes = api::wire::parseSize(tmpSize);
    if (!bytes || *bytes < (1 << 20))
      return fail(Errc::kInvalidArgument, fmt::format("{}: 'sandbox.tmp_size' must be a size of at least 1M, like \"64M\"",
                                                      where(*t->get("tmp_size"), source)));
    config.sandboxTmpBytes = *bytes;
  }
  const std::string& v = config.sandboxNetwork;
  if (v != "auto" && v != "bpf" && v != "nftables" && v != "off")
    return fail(Errc::kInvalidArgument, fmt::format("{}: 'sandbox.network' must be \"auto\", \"bpf\", \"nftables\" or \"off\", not \"{}\"",
                                                    where(*t->get("network"), source), v));
  return {};
}

}  // namespace

Result<std::pair<uint16_t, uint16_t>> parsePortRange(std::string_view text) {
  auto parts = split(text, '-');
  long long lo = 0, hi = 0;
  if (parts.size() != 2 || !parseInt(parts[0], 1, 65535, &lo) || !parseInt(parts[1], 1, 65535, &hi) || lo > hi)
    return fail(Errc::kInvalidArgument,
                fmt::format("port range '{}' is not LO-HI with 1 <= LO <= HI <= 65535", text));
  return std::pair{static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
}

Result<Config> parseConfigText(std::string_view text, const std::string& source) {
  // Debian's toml++ is built with exceptions: its parse error stops here.
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& err) {
    return fail(Errc::kInvalidArgument, fmt::format("{}:{}:{}: {}", source, err.source().begin.line,
                                                    err.source().begin.column, err.description()));
  }
  Config c;
  if (auto s = checkKeys(root, {"data_dir", "log_level", "stop_instances_on_exit", "strict", "api", "proxy", "ports", "logs", "accounts", "account_defaults", "sandbox", "panel"}, "", source); !s)
    return std::unexpected(s.error());
  std::string range;
  Status s = read(root, "data_dir", c.dataDir, source);
  if (s) s = read(root, "log_level", c.logLevel, source);
  if (s) s = read(root, "stop_instances_on_exit", c.stopInstancesOnExit, source);
  if (s) s = read(root, "strict", c.strict, source);
  struct Section { const char* name; std::string_view key; std::string* out; };
  for (const Section& sec : {Section{"api", "listen", &c.apiListen}, Section{"ports", "range", &range},
                             Section{"panel", "host", &c.panelHost}}) {
    if (!s) break;
    const toml::node* node = root.get(sec.name);
    if (!node) continue;
    const toml::table* t = node->as_table();
    if (!t) return fail(Errc::kInvalidArgument, fmt::format("{}: '{}' must be a table", where(*node, source), sec.name));
    s = checkKeys(*t, {sec.key}, std::string(sec.name) + ".", source);
    if (s) s = read(*t, sec.key, *sec.out, source);
  }
  if (s && !c.panelHost.empty()) {
    auto spec = proxy::parseRouteSpec(c.panelHost + "/");
    if (!spec || spec->first != c.panelHost || c.panelHost.starts_with("*."))
      return fail(Errc::kInvalidArgument, fmt::format("{}: 'panel.host' must be a lowercase host name like "
                                                      "\"panel.example.com\", not \"{}\"",
                                                      where(*root.get("panel"), source), c.panelHost));
  }
  if (s) s = readLogs(root, c, source);
  if (s) s = readProxy(root, c, source);
  if (s) s = readAccountDefaults(root, c, source);
  if (s) s = readAccounts(root, c, source);
  if (s) s = readSandbox(root, c, source);
  if (!s) return std::unexpected(s.error());
  if (!range.empty()) {
    auto r = parsePortRange(range);
    if (!r) return std::unexpected(r.error().context(source));
    std::tie(c.portLo, c.portHi) = *r;
  }
  return c;
}

Result<Config> loadConfig(const std::optional<std::string>& path, const ConfigOverrides& flags) {
  Config c;
  if (path) {
    std::ifstream in(*path);
    if (!in) return fail(Errc::kInvalidArgument, fmt::format("cannot read config file {}", *path));
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = parseConfigText(text.str(), *path);
    if (!parsed) return parsed;
    c = std::move(*parsed);
    c.sourcePath = *path;
  }
  if (flags.dataDir) c.dataDir = *flags.dataDir;
  if (flags.apiListen) c.apiListen = *flags.apiListen;
  if (flags.proxyListen) c.proxyListen = *flags.proxyListen;
  if (flags.logLevel) c.logLevel = *flags.logLevel;
  if (flags.portRange) {
    auto r = parsePortRange(*flags.portRange);
    if (!r) return std::unexpected(r.error().context("--port-range"));
    std::tie(c.portLo, c.portHi) = *r;
  }
  return c;
}

}  // namespace hv::daemon
