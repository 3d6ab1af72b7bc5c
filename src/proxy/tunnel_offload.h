// TunnelOffload: the kernel side of offloaded WebSocket tunnels (BPF sockmap).
// One per Proxy, shared by its loops (the maps are the kernel's, safe from
// any thread). Loads tunnel_offload.bpf.c (a stream verdict program that
// redirects every skb received on one socket of a tunnel to the egress of
// the other, counting the bytes), attaches it to its SOCKHASH, and proves
// the whole path once on a loopback connection pair (open()).
//
// A tunnel's sockets are added with add(): the redirect target map and the
// peer entries first, then the verdict map, so no skb ever finds its peer
// missing. remove() undoes it; closing a socket also takes it out of the
// socket maps (the kernel does that), not out of `peers`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"

namespace hv::proxy {

class TunnelOffload {
 public:
  // Loads and attaches the program, then moves a few bytes through it on a
  // loopback pair. Fails (with the reason) without root, without BPF, or when
  // the kernel refuses any step; nothing stays loaded then.
  static Result<std::unique_ptr<TunnelOffload>> open();
  ~TunnelOffload();
  TunnelOffload(const TunnelOffload&) = delete;
  TunnelOffload& operator=(const TunnelOffload&) = delete;

  struct Pair {
    uint64_t cookieA = 0, cookieB = 0;  // socket cookies (the map keys)
  };
  // From now on, bytes received on `a` leave through `b` and the other way
  // round. Both must be established TCP sockets. On failure nothing stays.
  Result<Pair> add(int a, int b);
  void remove(const Pair& pair);
  // Bytes received on the socket with `cookie` and redirected (the verdict's counter).
  uint64_t bytes(uint64_t cookie) const;
  // Entries in the three maps (tests: teardown leaves none).
  size_t entries() const;

 private:
  struct Impl;
  explicit TunnelOffload(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// TCP counters of one socket, from one TCP_INFO snapshot (so consistent).
struct TcpCounts {
  uint64_t received = 0;  // sequence space received: data bytes, +1 once a FIN came
  uint64_t queued = 0;    // bytes ever put in the send queue (sent once + not yet sent)
};
bool tcpCounts(int fd, TcpCounts* out);

}  // namespace hv::proxy
