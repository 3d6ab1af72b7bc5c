// Proxy: the front proxy of hostvisor (issue 4). HTTP/1.1 reverse proxy with
// transparent WebSocket tunnels, TLS termination by SNI, load balancing,
// passive health and per-route access rules.
//
// Threads: start() runs `threads` event loops, each with its own io_context,
// its own SO_REUSEPORT listening sockets and its own upstream state; nothing
// on the data path is shared between them. Every public method is safe to
// call from any thread (the daemon calls them from its control thread).
// setRoutes() publishes an immutable snapshot to each loop: requests that
// arrive later use it; open tunnels and in-flight requests keep their upstream.
// stop() (or the destructor) closes every connection and joins the loops.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "proxy/route.h"
#include "proxy/tls_store.h"

namespace hv::proxy {

using std::chrono::milliseconds;

// Every limit applies to each connection; none is infinite except where 0 says so.
struct Limits {
  size_t headerBytes = 16 * 1024;       // request line + fields; over it → 431
  size_t headerCount = 100;             // fields; over it → 431
  uint64_t bodyBytes = 1024 * 1024;     // request body (buffered before forwarding); over it → 413
  milliseconds headerTimeout{10'000};   // accept (or first byte after keep-alive) → end of head; → 408
  milliseconds bodyTimeout{60'000};     // to receive the whole request body; → 408
  milliseconds keepAliveTimeout{75'000};  // idle client connection between requests
  milliseconds sendTimeout{60'000};     // a client that stops reading what we send
  milliseconds connectTimeout{5'000};   // to an upstream; a failure ejects it
  milliseconds upstreamTimeout{60'000};   // for the response head, and between body reads; → 504
  milliseconds handshakeTimeout{10'000};  // TLS handshake; WebSocket upgrade request → 101
  milliseconds tunnelIdle{3'600'000};   // no byte either way; per route: Route::idleTimeout
  milliseconds tunnelLifetime{0};       // hard cap on a tunnel's age; 0 = none
  size_t maxConnsPerClient = 256;       // open connections (incl. tunnels) per client IPv4 address or IPv6 /64
  size_t maxConnections = 0;            // open client connections in all; 0 = (RLIMIT_NOFILE - 256) / 2
  milliseconds ejectTime{10'000};       // passive health: how long a failed upstream is skipped
  size_t idleUpstreamsPerHost = 32;     // keep-alive pool size per upstream, per loop
  milliseconds upstreamIdleTimeout{30'000};  // pooled upstream connections older than this are closed
};

// Who copies the bytes of an established plain (ws://, not wss://) tunnel:
// kOff: the loop (Tunnel); kSockmap: the kernel (BPF sockmap redirect,
// OffloadedTunnel), and start() fails when the kernel cannot; kAuto: the
// kernel where start()'s probe succeeds, else the loop.
enum class TunnelOffloadMode { kOff, kAuto, kSockmap };

struct ProxyConfig {
  std::string listen = "127.0.0.1:8080";  // "ADDR:PORT" (port 0 = any); "" = no plain listener
  std::string tlsListen;                  // same form; "" = no TLS listener
  unsigned threads = 0;                   // event loops; 0 = one per CPU of the affinity mask
  Limits limits;
  std::vector<Certificate> certificates;  // required when tlsListen is set
  TunnelOffloadMode tunnelOffload = TunnelOffloadMode::kOff;
  // wss tunnels: free OpenSSL's SSL once the tunnel starts and continue TLS
  // 1.3 with our own record layer (tls_records.h; idle memory). Connections
  // that do not qualify (TLS 1.2, ...) keep the SSL either way.
  bool tlsTakeover = true;
};

// Counters since start (gauges say "open"). Summed over loops on each call.
struct Stats {
  uint64_t connectionsOpen = 0;      // client connections, including tunnels
  uint64_t connectionsTotal = 0;
  uint64_t connectionsRejected = 0;  // over maxConnsPerClient
  uint64_t tunnelsOpen = 0;
  uint64_t tunnelsTotal = 0;
  uint64_t tunnelsOffloaded = 0;     // of tunnelsTotal, copied by the kernel (sockmap)
  uint64_t tunnelsTlsTakeover = 0;   // of tunnelsTotal, TLS continued without OpenSSL's SSL
  uint64_t requests = 0;             // request heads received
  uint64_t responses2xx = 0;         // final responses sent, by class (ours and the upstreams')
  uint64_t responses3xx = 0;
  uint64_t responses4xx = 0;
  uint64_t responses5xx = 0;
  uint64_t upstreamConnects = 0;     // new upstream connections
  uint64_t upstreamReuses = 0;       // requests sent on a pooled connection
  uint64_t upstreamFailures = 0;     // failed connects (each ejects the upstream)
  uint64_t tunnelBytesIn = 0;        // client → upstream, after the 101 (offloaded tunnels: added
  uint64_t tunnelBytesOut = 0;       // upstream → client     every idle/4 and at close, so they lag)
  uint64_t httpBytesIn = 0;          // requests (heads + bodies) sent upstream
  uint64_t httpBytesOut = 0;         // responses (heads + bodies, ours too) sent to clients
};

class Proxy {
 public:
  // Binds the listeners, loads certificates and starts the loops.
  static Result<std::unique_ptr<Proxy>> start(ProxyConfig config);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Validates and publishes a new route set; on error nothing changes.
  Status setRoutes(std::vector<Route> routes);
  // Loads a new certificate set; on error the old one stays. Open TLS
  // connections keep the certificate they were made with.
  Status reloadCertificates(std::vector<Certificate> certificates);

  std::string boundAddress() const;     // "127.0.0.1:PORT", "" if none
  std::string tlsBoundAddress() const;  // "" if none
  // "sockmap" (plain tunnels are copied by the kernel), "off", or
  // "user space (REASON)" when kAuto found the kernel unable.
  std::string tunnelOffloadStatus() const;
  // Entries in the offload's BPF maps (0 without offload): a closed tunnel leaves none.
  size_t offloadMapEntries() const;
  Stats stats() const;
  void stop();  // idempotent

  struct Impl;

 private:
  explicit Proxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hv::proxy
