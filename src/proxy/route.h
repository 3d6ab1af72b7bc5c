// Route, Upstream, CidrRule: the values the daemon hands to Proxy::setRoutes.
//
// Plain value types: build, copy and validate them on any thread. A route maps
// host + path prefix to one instance's replicas (or a static upstream list);
// RouteTable (route_table.h) compiles a set of them for matching.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace hv::proxy {

// One backend address. The daemon sets `health` from the supervisor's state:
// running → kUp, starting/backoff → kStarting (503, or held), else kDown (502).
struct Upstream {
  enum class Health { kUp, kStarting, kDown };
  std::string host = "127.0.0.1";  // an IP literal (v4 or v6); names are not resolved
  uint16_t port = 0;
  Health health = Health::kUp;
  // The instance run behind the address (0: a static upstream). Pooled
  // keep-alive connections belong to the run they were opened to: a request
  // for another run, even on the same port, never reuses them, and they are
  // closed when their run leaves the table (a port freed and handed to another
  // account must not reach connections its old program still holds).
  uint64_t run = 0;
};

// One access rule, written like .htaccess: "allow 10.0.0.0/8", "deny all",
// "allow ::1", "deny 2001:db8::/32". A bare address means a single host.
// IPv4 rules are kept as IPv4-mapped IPv6 (::ffff:a.b.c.d/96+n) so they also
// match clients that arrive on a dual-stack socket.
struct CidrRule {
  bool allow = true;
  std::array<uint8_t, 16> network{};  // host bits are zero
  uint8_t prefixLength = 0;           // of the 128-bit form; 0 = "all"

  static Result<CidrRule> parse(std::string_view text);
  bool matches(const std::array<uint8_t, 16>& address) const;
  std::string toString() const;  // "allow 10.0.0.0/8"
};

// Ordered rules, first match wins, no match allows (an empty list allows all).
bool accessAllowed(const std::vector<CidrRule>& rules, const std::array<uint8_t, 16>& address);

struct Route {
  enum class Balance { kRoundRobin, kLeastConn };
  enum class Origin { kInstance, kStatic };  // what `name` names, in error pages and logs

  std::string name;             // instance (or static upstream) name, for error pages and logs
  Origin origin = Origin::kInstance;
  std::string host;             // "" = any host; "chat.example.com"; "*.example.com"
  std::string pathPrefix = "/";  // starts with '/'; see RouteTable for matching rules
  bool stripPrefix = false;     // "/ws/" + "/ws/chat?x" → upstream sees "/chat?x"
  std::vector<Upstream> upstreams;
  Balance balance = Balance::kRoundRobin;
  std::vector<CidrRule> access;
  // While no upstream is up but one is starting (or a connect was refused),
  // hold the request up to this long for the route to come up; 0 = answer 503 now.
  std::chrono::milliseconds holdWhileStarting{0};
  std::chrono::milliseconds idleTimeout{0};  // WebSocket tunnel idle cut; 0 = Limits::tunnelIdle
};

}  // namespace hv::proxy
