// Worker: one event loop of the proxy — a thread running its own io_context,
// its own SO_REUSEPORT listeners, its route table snapshot, its upstream
// state, a scratch read buffer, and the list of its open connections.
//
// Everything here is used only on the worker's thread, except publish() and
// stop(), which post to it. Sessions and tunnels hold a Worker& and must not
// outlive it: stop() closes them all and waits for the loop to drain.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>
#include <vector>

#include "proxy/client_limiter.h"
#include "proxy/proxy.h"
#include "proxy/route_table.h"
#include "proxy/tunnel_offload.h"
#include "proxy/upstreams.h"

namespace hv::proxy {

// Anything a worker must be able to close at stop(). Unlinks itself on destruction.
class Closable
    : public boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
 public:
  virtual void closeNow() = 0;  // close sockets; completions then finish the object

 protected:
  ~Closable() = default;
};

// Counters of one worker, written by its thread only (relaxed), read by stats().
struct WorkerStats {
  std::atomic<uint64_t> connectionsOpen{0}, connectionsTotal{0}, connectionsRejected{0};
  std::atomic<uint64_t> tunnelsOpen{0}, tunnelsTotal{0}, tunnelsOffloaded{0}, tunnelsTlsTakeover{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> responses2xx{0}, responses3xx{0}, responses4xx{0}, responses5xx{0};
  std::atomic<uint64_t> upstreamConnects{0}, upstreamReuses{0}, upstreamFailures{0};
  std::atomic<uint64_t> tunnelBytesIn{0}, tunnelBytesOut{0}, httpBytesIn{0}, httpBytesOut{0};
};

inline void bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}

// What all workers share: configuration, the per-client limiter, certificates,
// the tunnel offload (null: tunnels stay in user space).
struct Shared {
  explicit Shared(ProxyConfig c) : config(std::move(c)), limiter(config.limits.maxConnsPerClient, config.limits.maxConnections) {}
  ProxyConfig config;
  ClientLimiter limiter;
  TlsStore tls;
  std::unique_ptr<TunnelOffload> offload;
};

class OffloadedTunnel;

class Worker {
 public:
  static constexpr size_t kScratchSize = 64 * 1024;

  explicit Worker(Shared& shared);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Before start(): binds a listener (SO_REUSEPORT, so every worker can bind
  // the same port). Returns the bound endpoint.
  Result<tcp::endpoint> listen(const tcp::endpoint& endpoint, bool tls);
  void start();
  void stop();  // any thread; closes everything and joins the thread

  // Any thread: this worker adopts `table` unless it already has a newer one.
  void publish(std::shared_ptr<const RouteTable> table, uint64_t version);

  asio::io_context& io() { return io_; }
  const Limits& limits() const { return shared_.config.limits; }
  WorkerStats& stats() { return stats_; }
  const WorkerStats& stats() const { return stats_; }
  Upstreams& upstreams() { return upstreams_; }
  const std::shared_ptr<const RouteTable>& routes() const { return routes_; }
  char* scratch() { return scratch_.get(); }
  // Relay buffers of HTTP responses: one per exchange in flight, handed back
  // at its end and kept (up to kPooledRelays) for the next one — a 16 KB
  // malloc and free per request showed in the profile.
  static constexpr size_t kRelayBufferSize = 16 * 1024;
  static constexpr size_t kPooledRelays = 64;
  std::unique_ptr<char[]> takeRelayBuffer() {
    if (relays_.empty()) return std::unique_ptr<char[]>(new char[kRelayBufferSize]);
    auto b = std::move(relays_.back());
    relays_.pop_back();
    return b;
  }
  void giveRelayBuffer(std::unique_ptr<char[]> b) {
    if (b && relays_.size() < kPooledRelays) relays_.push_back(std::move(b));
  }

  // Calls `wake` once, on this thread, at the next route change (hold-while-
  // starting), unless `owner` is gone by then; gone owners are pruned on sweeps.
  void onNextRouteChange(std::weak_ptr<void> owner, std::function<void()> wake) {
    routeWaiters_.emplace_back(std::move(owner), std::move(wake));
  }
  void track(Closable& c) { live_.push_back(c); }

  TunnelOffload* offload() { return shared_.offload.get(); }
  bool tlsTakeover() const { return shared_.config.tlsTakeover; }
  // Offloaded tunnels: their two sockets join this loop's offload epoll set
  // (EPOLLRDHUP, edge-triggered), and events come back as t.onEvent(side).
  // Returns the watch id, 0 if epoll refused.
  uint64_t watchOffloaded(OffloadedTunnel& t, int clientFd, int upstreamFd);
  void unwatchOffloaded(uint64_t id, int clientFd, int upstreamFd);

 private:
  struct Listener;
  void doAccept(Listener& l);
  void onAccept(Listener& l, error_code ec, tcp::socket socket);
  void startSession(tcp::socket socket, bool tls);
  void doSweep();
  void closeAll();
  void waitOffloadEvents();
  void onOffloadEvents();

  Shared& shared_;
  asio::io_context io_{1};
  std::thread thread_;
  std::list<Listener> listeners_;
  asio::steady_timer sweep_;
  bool stopping_ = false;
  WorkerStats stats_;
  Upstreams upstreams_;
  std::shared_ptr<const RouteTable> routes_;
  uint64_t routesVersion_ = 0;
  std::vector<std::pair<std::weak_ptr<void>, std::function<void()>>> routeWaiters_;
  std::unique_ptr<char[]> scratch_;
  std::vector<std::unique_ptr<char[]>> relays_;
  boost::intrusive::list<Closable, boost::intrusive::constant_time_size<false>> live_;
  // The offload epoll set, made at the first offloaded tunnel; the loop waits
  // for it to be readable like for any descriptor.
  std::unique_ptr<asio::posix::stream_descriptor> offloadEvents_;
  bool offloadWaiting_ = false;
  uint64_t nextWatch_ = 1;
  std::unordered_map<uint64_t, OffloadedTunnel*> offloaded_;
};

}  // namespace hv::proxy
