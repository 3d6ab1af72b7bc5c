// Tunnel: after a WebSocket 101, copies raw bytes both ways between the
// client and the upstream — no frame parsing — until both sides are done.
//
// Hot path: no epoll_ctl per message. A plain source is read by Asio's own
// speculative receive into a small per-direction landing buffer (kLanding
// bytes): it reads, and once a read says EAGAIN it queues in the reactor's
// edge-triggered registration as it stands (async_wait would re-arm it with
// EPOLL_CTL_MOD each time). So a message costs its recv, the send, and the
// recv that finds the socket empty (Asio counts only a 0-byte read as
// "drained"; a short read is not proof: a FIN may be queued behind the data
// with its wake-up already spent). A full landing buffer means more may
// follow: the rest is read into the worker's scratch buffer. A TLS source is
// read with SSL_read — or, after TLS takeover, by tls_records — until a short
// record, then waits for readability.
// Bytes the destination cannot take yet are copied into a per-direction
// buffer, freed once written; an idle tunnel holds no other buffer.
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
#include <memory>
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
    char* landing = nullptr;  // plain sources: where the reactor's receive lands
  };
  // Big enough for the small messages chat-like tunnels carry (a larger one
  // costs one more recv), small enough not to matter in an idle tunnel.
  static constexpr size_t kLanding = 512;

  Tunnel(Worker& worker, Stream client, Stream upstream, ClientSlot slot, Upstreams::Lease lease,
         TunnelSettings settings);
  ~Tunnel();

  void pump(Direction d);
  void readNext(Direction d);
  void onLanded(Direction d, error_code ec, size_t n);
  void drain(Direction d);
  bool forward(Direction d, const char* data, size_t n);
  void waitSocket(Direction d, IoStatus want);  // TLS source: readiness, then drain
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
  std::unique_ptr<char[]> landing_;  // kLanding bytes per plain source
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point lastActivity_;
  unsigned pendingOps_ = 0;
  bool closed_ = false;
};

}  // namespace hv::proxy
