#include "proxy/route_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <unordered_set>

namespace hv::proxy {

namespace asio = boost::asio;

namespace {

bool isHostChar(unsigned char c) { return std::isalnum(c) || c == '-' || c == '.' || c == '_'; }

bool isHostName(std::string_view h) {
  if (h.empty() || h.size() > 253 || h.front() == '.' || h.find("..") != std::string_view::npos) return false;
  return std::all_of(h.begin(), h.end(), [](unsigned char c) { return isHostChar(c) && !std::isupper(c); });
}

Status validateHostPattern(std::string_view host) {
  if (host.empty()) return {};
  std::string_view name = host;
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (!isHostName(name) || normalizeHost(host.starts_with("*.") ? name : host) != name)
    return fail(Errc::kInvalidArgument,
                fmt::format("host '{}' is not a lowercase host name (or *.name), without a port", host));
  return {};
}

Status validatePrefix(std::string_view prefix) {
  if (!prefix.starts_with('/')) return fail(Errc::kInvalidArgument, fmt::format("path '{}' must start with '/'", prefix));
  for (unsigned char c : prefix)
    if (c <= ' ' || c == 0x7f || c == '?' || c == '#' || c == '\\')
      return fail(Errc::kInvalidArgument, fmt::format("path '{}' has a space, control character, '?', '#' or '\\'", prefix));
  if (prefix.find("//") != std::string_view::npos || prefix.find("/./") != std::string_view::npos ||
      prefix.find("/../") != std::string_view::npos || prefix.ends_with("/.") || prefix.ends_with("/.."))
    return fail(Errc::kInvalidArgument, fmt::format("path '{}' has an empty, '.' or '..' segment", prefix));
  return {};
}

Result<RouteEntry> compile(Route route) {
  const std::string spec = route.host + route.pathPrefix;
  auto bad = [&](Error e) {
    return std::unexpected(e.context(fmt::format("route '{}'{}", spec,
                                                 route.name.empty() ? "" : " of instance " + route.name)));
  };
  std::transform(route.host.begin(), route.host.end(), route.host.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (auto s = validateHostPattern(route.host); !s) return bad(s.error());
  if (auto s = validatePrefix(route.pathPrefix); !s) return bad(s.error());
  RouteEntry entry;
  for (const Upstream& u : route.upstreams) {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(u.host, ec);
    if (ec) return bad(Error::make(Errc::kInvalidArgument, fmt::format("upstream '{}' is not an IP address", u.host)));
    if (u.port == 0) return bad(Error::make(Errc::kInvalidArgument, "an upstream has port 0"));
    entry.endpoints.emplace_back(address, u.port);
  }
  entry.id = route.host + " " + route.pathPrefix;
  entry.route = std::move(route);
  return entry;
}

}  // namespace

Result<RouteTable> RouteTable::build(std::vector<Route> routes) {
  RouteTable table;
  std::unordered_set<std::string> seen;
  for (Route& route : routes) {
    auto entry = compile(std::move(route));
    if (!entry) return std::unexpected(entry.error());
    if (!seen.insert(entry->id).second)
      return fail(Errc::kConflict, fmt::format("two routes for '{}{}'", entry->route.host, entry->route.pathPrefix));
    table.entries_.push_back(std::move(*entry));
  }
  for (size_t i = 0; i < table.entries_.size(); ++i) {
    const std::string& host = table.entries_[i].route.host;
    if (host.empty()) table.anyHost_.push_back(i);
    else if (host.starts_with("*.")) table.wildcard_[host.substr(1)].push_back(i);
    else table.exact_[host].push_back(i);
  }
  auto byLength = [&table](size_t a, size_t b) {
    return table.entries_[a].route.pathPrefix.size() > table.entries_[b].route.pathPrefix.size();
  };
  for (auto& [_, group] : table.exact_) std::sort(group.begin(), group.end(), byLength);
  for (auto& [_, group] : table.wildcard_) std::sort(group.begin(), group.end(), byLength);
  std::sort(table.anyHost_.begin(), table.anyHost_.end(), byLength);
  return table;
}

const RouteEntry* RouteTable::bestIn(const std::vector<size_t>& group, std::string_view path) const {
  for (size_t i : group)
    if (pathMatches(entries_[i].route.pathPrefix, path)) return &entries_[i];
  return nullptr;
}

const RouteEntry* RouteTable::match(std::string_view hostHeader, std::string_view path) const {
  const std::string host = normalizeHost(hostHeader);
  if (!host.empty()) {
    if (auto it = exact_.find(host); it != exact_.end())
      if (const RouteEntry* e = bestIn(it->second, path)) return e;
    // ".b.example.com", then ".example.com", then ".com".
    for (size_t dot = host.find('.'); dot != std::string::npos; dot = host.find('.', dot + 1)) {
      if (auto it = wildcard_.find(host.substr(dot)); it != wildcard_.end())
        if (const RouteEntry* e = bestIn(it->second, path)) return e;
    }
  }
  return bestIn(anyHost_, path);
}

std::string normalizeHost(std::string_view h) {
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  std::string_view name = h;
  std::string_view port;
  if (h.starts_with('[')) {
    const size_t close = h.find(']');
    if (close == std::string_view::npos) return "";
    name = h.substr(0, close + 1);
    port = h.substr(close + 1);
    if (!port.empty() && !port.starts_with(':')) return "";
    if (!std::all_of(name.begin() + 1, name.end() - 1, [](unsigned char c) { return std::isxdigit(c) || c == ':' || c == '.'; }))
      return "";
  } else if (const size_t colon = h.find(':'); colon != std::string_view::npos) {
    name = h.substr(0, colon);
    port = h.substr(colon);
  }
  if (!port.empty() && (port.size() > 6 || !std::all_of(port.begin() + 1, port.end(), ::isdigit))) return "";
  std::string out(name);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  if (out.starts_with('[')) return out;
  if (out.ends_with('.')) out.pop_back();
  return isHostName(out) ? out : "";
}

bool pathMatches(std::string_view prefix, std::string_view path) {
  if (prefix.ends_with('/')) return path.starts_with(prefix) || path == prefix.substr(0, prefix.size() - 1);
  return path.starts_with(prefix) && (path.size() == prefix.size() || path[prefix.size()] == '/');
}

std::string stripPathPrefix(std::string_view prefix, std::string_view path) {
  const std::string_view base = prefix.ends_with('/') ? prefix.substr(0, prefix.size() - 1) : prefix;
  std::string_view rest = path.substr(std::min(base.size(), path.size()));
  return rest.empty() ? std::string("/") : std::string(rest);
}

Result<std::pair<std::string, std::string>> parseRouteSpec(std::string_view spec) {
  if (spec.empty()) return fail(Errc::kInvalidArgument, "a route is HOST/PATH or /PATH, not empty");
  const size_t slash = spec.find('/');
  std::string host(spec.substr(0, slash));
  std::string prefix(slash == std::string_view::npos ? "/" : spec.substr(slash));
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  if (auto s = validateHostPattern(host); !s)
    return std::unexpected(s.error().context(fmt::format("route '{}'", spec)));
  if (auto s = validatePrefix(prefix); !s) return std::unexpected(s.error().context(fmt::format("route '{}'", spec)));
  return std::pair{std::move(host), std::move(prefix)};
}

}  // namespace hv::proxy
