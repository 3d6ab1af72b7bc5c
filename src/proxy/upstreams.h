// Upstreams: one loop's view of its upstream servers — load balancing
// (round-robin per route, least-connections), passive health (an upstream
// whose connect failed is skipped for Limits::ejectTime), the count of
// connections in use, and the keep-alive pool of idle upstream connections.
// A pooled connection belongs to one instance run (Upstream::run), not to an
// address: it is reused only for that run and closed when the run leaves the
// route table (retain()).
//
// State is per loop on purpose (as nginx keeps it per worker without a shared
// zone): nothing is locked. Used only on its loop's thread. choose() is pure
// given its inputs, so it is unit-tested without sockets.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proxy/proxy.h"
#include "proxy/route_table.h"
#include "proxy/stream.h"

namespace hv::proxy {

using TimePoint = std::chrono::steady_clock::time_point;

// A connection to an upstream and its read buffer (which may hold response
// bytes beyond the current message, e.g. WebSocket frames after a 101).
struct UpstreamConn {
  UpstreamConn(asio::io_context& io, const tcp::endpoint& ep, uint64_t r)
      : stream(tcp::socket(io)), endpoint(ep), run(r) {}
  Stream stream;
  boost::beast::flat_buffer buffer;
  tcp::endpoint endpoint;
  uint64_t run;  // Upstream::run it was opened to
  TimePoint idleSince{};
};

class Upstreams {
  struct State;

 public:
  struct Pick {
    enum class Kind {
      kEndpoint,   // use route.endpoints[index]
      kStarting,   // none up, one starting: 503 or hold
      kDown,       // none up or starting: 502
      kExhausted,  // every up one was tried and failed: 502 or hold
    };
    Kind kind;
    size_t index = 0;
  };

  // Counts one connection in use on an upstream (least-connections) until destroyed.
  class Lease {
   public:
    Lease() = default;
    explicit Lease(State* state);
    Lease(Lease&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    Lease& operator=(Lease&& other) noexcept;
    ~Lease() { reset(); }
    void reset();

   private:
    State* state_ = nullptr;
  };

  explicit Upstreams(const Limits& limits) : limits_(limits) {}
  Upstreams(const Upstreams&) = delete;
  Upstreams& operator=(const Upstreams&) = delete;

  // Picks among the route's upstreams that are up and not in `tried`,
  // preferring ones not ejected (all ejected: any of them, rather than none).
  Pick choose(const RouteEntry& route, const std::vector<tcp::endpoint>& tried, TimePoint now);
  void eject(const tcp::endpoint& ep, TimePoint now);
  bool ejected(const tcp::endpoint& ep, TimePoint now);
  Lease lease(const tcp::endpoint& ep) { return Lease(&state(ep)); }
  uint32_t inUse(const tcp::endpoint& ep) { return state(ep).active; }

  // An idle pooled connection, or nullptr. One idle for kTrustIdle or longer
  // is first checked to be still open (a peek that never blocks): servers
  // close idle keep-alive connections after seconds (node and Apache 5 s,
  // nginx 75 s). One that carried a response a moment ago is not, unless
  // `check` (a request that could not be retried elsewhere, or a retry after
  // a pooled connection failed): that syscall per request is one nginx does
  // not make either; should such a connection fail, an idempotent request
  // goes again on another (HttpSession::retryOrFail).
  // Only a connection opened to `run` is handed out.
  std::unique_ptr<UpstreamConn> takeIdle(const tcp::endpoint& ep, uint64_t run, TimePoint now, bool check);
  static constexpr std::chrono::milliseconds kTrustIdle{1000};
  // Pools a connection whose last response was complete; drops it if the pool
  // is full: more than idleUpstreamsPerHost and more than were recently in
  // use at once (a burst of N requests would otherwise open connections that
  // the pool closes right after, and again at the next burst). A connection
  // whose run is not in the table last given to retain() is closed instead.
  void putIdle(std::unique_ptr<UpstreamConn> conn, TimePoint now);
  // A new route table: closes pooled connections of runs it no longer has.
  void retain(const RouteTable& table);
  void sweep(TimePoint now);  // closes pooled connections idle too long
  void closeAll();

 private:
  struct State {
    uint32_t active = 0;
    uint32_t peak = 0;  // most connections in use at once since the last sweep
    TimePoint ejectedUntil{};
    std::vector<std::unique_ptr<UpstreamConn>> idle;  // most recent last
  };
  State& state(const tcp::endpoint& ep) { return states_[ep]; }  // node-based: addresses are stable

  struct RunKey {
    tcp::endpoint endpoint;
    uint64_t run;
    bool operator==(const RunKey&) const = default;
  };
  struct RunKeyHash {
    size_t operator()(const RunKey& k) const {
      return std::hash<tcp::endpoint>()(k.endpoint) ^ (std::hash<uint64_t>()(k.run) * 0x9e3779b97f4a7c15ULL);
    }
  };

  const Limits& limits_;
  std::unordered_map<tcp::endpoint, State> states_;
  std::unordered_set<RunKey, RunKeyHash> live_;  // (address, run) pairs of the current table
  std::unordered_map<std::string, uint64_t> turns_;  // round-robin position per route id
};

}  // namespace hv::proxy
