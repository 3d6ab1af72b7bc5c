// RouteTable: an immutable, validated set of routes and the pure function that
// picks one for a request. Built on any thread (Proxy::setRoutes), then shared
// read-only by every event loop through a shared_ptr snapshot.
//
// Matching, in this order (nginx picks a server, then a location; we fall
// through to a less specific host only when the more specific one has no
// matching prefix, so "/api/" on any host still serves chat.example.com):
//   1. hosts: exact name, then wildcards from the longest suffix
//      ("*.example.com" matches "a.example.com" and "a.b.example.com", not
//      "example.com"), then routes for any host ("").
//   2. within a host: the longest prefix that matches at a segment boundary.
//      "/ws/" matches "/ws/", "/ws/x" and also "/ws" (what browsers send for
//      wss://host/ws); "/ws" matches "/ws", "/ws/x" but never "/wsx"; "/" matches all.
// Host comparison is case-insensitive with the port and a trailing dot ignored;
// paths compare case-sensitively on the canonical path (http_rules.h).
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/result.h"
#include "proxy/route.h"

namespace hv::proxy {

struct RouteEntry {
  Route route;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  // parallel to route.upstreams
  std::string id;                                        // "host path", for per-route state
};

class RouteTable {
 public:
  RouteTable() = default;
  // Validates every route (host syntax, prefix, upstream addresses, duplicate
  // host+prefix) and rejects the whole set with a message naming the route.
  static Result<RouteTable> build(std::vector<Route> routes);

  // `host` is a Host header value (any case, optional port); `path` is the
  // canonical path, without the query. nullptr when nothing matches.
  const RouteEntry* match(std::string_view host, std::string_view path) const;

  size_t size() const { return entries_.size(); }
  const std::vector<RouteEntry>& entries() const { return entries_; }

 private:
  const RouteEntry* bestIn(const std::vector<size_t>& group, std::string_view path) const;

  std::vector<RouteEntry> entries_;
  // Each group lists entry indexes by prefix length, longest first.
  std::unordered_map<std::string, std::vector<size_t>> exact_;
  std::unordered_map<std::string, std::vector<size_t>> wildcard_;  // key: ".example.com"
  std::vector<size_t> anyHost_;
};

// Lowercases, drops ":port" and a trailing dot; keeps "[v6]" brackets.
// Returns "" for a value that is not a plausible host name or address.
std::string normalizeHost(std::string_view hostHeader);

// True when `prefix` (a route's) matches `path` by the rules above.
bool pathMatches(std::string_view prefix, std::string_view path);

// The upstream path for `path` under `prefix` with the prefix stripped; the
// result always starts with '/'. REQUIRES: pathMatches(prefix, path).
std::string stripPathPrefix(std::string_view prefix, std::string_view path);

// Parses the user-facing route syntax "HOST/PATH" or "/PATH" into (host, prefix).
Result<std::pair<std::string, std::string>> parseRouteSpec(std::string_view spec);

}  // namespace hv::proxy
