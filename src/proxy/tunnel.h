// Tunnel: after a WebSocket 101, copies raw bytes both ways between the
// client and the upstream — no frame parsing — until both sides are done.
//
// Hot path: an idle tunnel holds no buffer. Each direction waits for its
// source to become readable (socket.async_wait), reads into the worker's
// scratch buffer and writes straight on; only bytes the destination cannot
// take yet are copied into a per-direction buffer, freed once written.
// No shared_ptr per message: the tunnel owns itself and deletes itself when
// closed and its last pending wait has returned.
//
// Half-close: EOF from one side becomes shutdown(SHUT_WR) (or TLS
// close_notify) toward the other; the tunnel ends when both directions have
// ended, on any error, after `idle` without a byte either way, or at `lifetime`.
// Lives on one worker's thread.
#pragma once

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <string>

#include "proxy/client_limiter.h"
#include "proxy/stream.h"
#include "proxy/upstreams.h"
#include "proxy/worker.h"

namespace hv::proxy {

struct TunnelSettings {
  std::chrono::milliseconds idle;
  std::chrono::milliseconds lifetime;  // 0 = none
};

class Tunnel final : public Closable {
 public:
  // `toClient` (the 101 head and any early upstream bytes) and `toUpstream`
  // (client bytes read past the request) are sent first.
  static void start(Worker& worker, Stream client, Stream upstream, ClientSlot slot, Upstreams::Lease lease,
                    TunnelSettings settings, std::string toClient, std::string toUpstream);
  void closeNow() override;

 private:
  enum Direction { kToUpstream = 0, kToClient = 1 };
  struct Side {
    Stream* from;
    Stream* to;
    std::string pending;  // bytes `to` has not taken yet; empty (no memory) while idle
    size_t sent = 0;
    bool eof = false;
  };

  Tunnel(Worker& worker, Stream client, Stream upstream, ClientSlot slot, Upstreams::Lease lease,
         TunnelSettings settings);
  ~Tunnel();

  void pump(Direction d);
  void waitReadable(Direction d, IoStatus want);
  void flush(Direction d);
  void onEof(Direction d);
  void armTimer();
  void onTimer();
  void close();
  template <class F>
  auto guarded(F f);  // wraps a completion: counts it pending, deletes this when closed

  Worker& worker_;
  Stream client_;
  Stream upstream_;
  ClientSlot slot_;
  Upstreams::Lease lease_;
  TunnelSettings settings_;
  Side sides_[2];
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point lastActivity_;
  unsigned pendingOps_ = 0;
  bool closed_ = false;
};

}  // namespace hv::proxy
