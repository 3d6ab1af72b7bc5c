// OffloadedTunnel: a plain-TCP WebSocket tunnel whose bytes the kernel copies
// (TunnelOffload: BPF sockmap, skb redirect), so no message reaches user space.
//
// Hand-off (tryStart, before the tunnel has any pending operation): the
// bytes user space still holds are sent; each socket is read until EAGAIN
// (so no skb is left half read) and what was read is sent on; the sockets'
// queued-byte counts are noted; both sockets go into the maps; Asio lets go
// of them (release: out of its epoll, so the per-message wake-ups of the
// sockets' data_ready never reach the loop). Anything unusual — bytes the
// peer cannot take at once, an EOF during the hand-off, a full map — keeps the
// tunnel in user space (Tunnel), with nothing lost.
//
// After that the loop sees a tunnel only on:
//  - a state change of a socket (FIN, RST): the worker's offload epoll set
//    watches EPOLLRDHUP (edge-triggered; data wake-ups carry EPOLLIN and are
//    filtered out in the kernel's epoll callback);
//  - its timer: activity evidence is the verdict's byte counter per socket,
//    read every idle/4 (so an idle tunnel closes between idle and 1.25 idle
//    after its last byte); the lifetime cap as in Tunnel.
//
// Half-close: a FIN on one socket must become shutdown(SHUT_WR) on the other
// only after every byte before it has left the psock queue for the other's
// send queue. Once the FIN is seen (after a TCP_INFO, which takes the
// socket lock, so every skb before the FIN has passed the verdict), the
// verdict's counter says how many bytes were redirected; the other socket's
// TCP_INFO (bytes sent once + not yet sent) says how many it has queued; the
// shutdown waits (re-checking at 1, 2, 4 … 64 ms) until the second has grown
// by the first since the hand-off. Errors (SO_ERROR) close both sockets.
//
// Stats: the byte counters are added to the proxy's tunnel bytes at each
// timer check and at close (so they lag by up to idle/4).
// Lives on one worker's thread; deletes itself once closed and its waits returned.
#pragma once

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <string>

#include "base/unique_fd.h"
#include "proxy/client_limiter.h"
#include "proxy/stream.h"
#include "proxy/tunnel.h"
#include "proxy/tunnel_offload.h"
#include "proxy/upstreams.h"
#include "proxy/worker.h"

namespace hv::proxy {

class OffloadedTunnel final : public Closable {
 public:
  // True: the tunnel is the kernel's now (everything was taken). False: all
  // arguments are still the caller's, the streams untouched but for bytes
  // sent; `toClient`/`toUpstream` hold what still has to be sent (bytes read
  // during the attempt are appended there).
  static bool tryStart(Worker& worker, TunnelOffload& offload, Stream& client, Stream& upstream, ClientSlot& slot,
                       Upstreams::Lease& lease, TunnelSettings settings, std::string& toClient,
                       std::string& toUpstream);
  void closeNow() override;
  // From the worker's offload epoll set: `side` 0 = client socket, 1 = upstream.
  // Deletes the tunnel when it ends it.
  void onEvent(int side, uint32_t events);

 private:
  OffloadedTunnel(Worker& worker, TunnelOffload& offload, UniqueFd client, UniqueFd upstream,
                  TunnelOffload::Pair pair, const uint64_t queuedBase[2], ClientSlot slot, Upstreams::Lease lease,
                  TunnelSettings settings);
  ~OffloadedTunnel();

  void handleEvent(int side, uint32_t events);
  void tryShutdown(int from);  // the FIN from `from` goes on once its bytes have
  void armTimer();
  void onTimer();
  void collectBytes();  // counter deltas → activity + proxy stats
  void close();
  template <class F>
  auto guarded(F f);

  Worker& worker_;
  TunnelOffload& offload_;
  UniqueFd fds_[2];
  TunnelOffload::Pair pair_;
  uint64_t cookies_[2];
  uint64_t queuedBase_[2];  // TCP queued-byte count of each socket at the hand-off
  uint64_t seen_[2] = {0, 0};  // verdict counters already accounted
  bool eof_[2] = {false, false};
  bool shut_[2] = {false, false};  // eof_[i] passed on as shutdown of the other socket
  ClientSlot slot_;
  Upstreams::Lease lease_;
  TunnelSettings settings_;
  asio::steady_timer timer_, drainTimer_;
  std::chrono::milliseconds drainDelay_{1};
  std::chrono::steady_clock::time_point started_, lastActivity_;
  uint64_t id_ = 0;
  unsigned pendingOps_ = 0;
  bool closed_ = false;
};

}  // namespace hv::proxy
