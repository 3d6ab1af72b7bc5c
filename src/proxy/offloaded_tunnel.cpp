#include "proxy/offloaded_tunnel.h"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace hv::proxy {

namespace {

// Sends all of `bytes` now or says false (leaving the unsent rest in `bytes`).
bool sendAll(Stream& to, std::string& bytes) {
  if (bytes.empty()) return true;
  const IoResult w = to.tryWrite(bytes.data(), bytes.size());
  bytes.erase(0, w.bytes);
  return w.status == IoStatus::kDone && bytes.empty();
}

}  // namespace

bool OffloadedTunnel::tryStart(Worker& worker, TunnelOffload& offload, Stream& client, Stream& upstream,
                               ClientSlot& slot, Upstreams::Lease& lease, TunnelSettings settings,
                               std::string& toClient, std::string& toUpstream) {
  if (client.tls() || upstream.tls()) return false;
  if (!sendAll(client, toClient) || !sendAll(upstream, toUpstream)) return false;
  // Read each side dry (EAGAIN), so no skb stays half read, and send it on.
  Stream* from[2] = {&client, &upstream};
  Stream* to[2] = {&upstream, &client};
  std::string* rest[2] = {&toUpstream, &toClient};
  char* buffer = worker.scratch();
  for (int side = 0; side < 2; ++side) {
    for (;;) {
      const IoResult r = from[side]->tryRead(buffer, Worker::kScratchSize);
      if (r.status == IoStatus::kWantRead) break;
      if (r.status != IoStatus::kDone) return false;  // EOF or error: the user-space tunnel sees it again
      bump(side == 0 ? worker.stats().tunnelBytesIn : worker.stats().tunnelBytesOut, r.bytes);
      const IoResult w = to[side]->tryWrite(buffer, r.bytes);
      if (w.bytes < r.bytes) {
        rest[side]->assign(buffer + w.bytes, r.bytes - w.bytes);
        return false;
      }
    }
  }
  TcpCounts counts[2];
  const int fds[2] = {client.socket().native_handle(), upstream.socket().native_handle()};
  if (!tcpCounts(fds[0], &counts[0]) || !tcpCounts(fds[1], &counts[1])) return false;
  const uint64_t queued[2] = {counts[0].queued, counts[1].queued};
  auto pair = offload.add(fds[0], fds[1]);
  if (!pair) {
    spdlog::debug("proxy: tunnel stays in user space: {}", pair.error().message);
    return false;
  }
  // Out of Asio's epoll set; the sockets are ours (raw) from here on.
  error_code ec;
  UniqueFd c(client.socket().release(ec));
  UniqueFd u(upstream.socket().release(ec));
  auto* t = new OffloadedTunnel(worker, offload, std::move(c), std::move(u), *pair, queued, std::move(slot),
                                std::move(lease), settings);
  if (t->id_ == 0) {  // not watched (epoll_ctl failed): we could never see its end, so it ends now
    spdlog::warn("proxy: an offloaded tunnel could not be watched; closed");
    t->closeNow();
    return true;
  }
  t->armTimer();
  return true;
}

OffloadedTunnel::OffloadedTunnel(Worker& worker, TunnelOffload& offload, UniqueFd client, UniqueFd upstream,
                                 TunnelOffload::Pair pair, const uint64_t queuedBase[2], ClientSlot slot,
                                 Upstreams::Lease lease, TunnelSettings settings)
    : worker_(worker), offload_(offload), pair_(pair), cookies_{pair.cookieA, pair.cookieB},
      queuedBase_{queuedBase[0], queuedBase[1]}, slot_(std::move(slot)), lease_(std::move(lease)),
      settings_(settings), timer_(worker.io()), drainTimer_(worker.io()), started_(std::chrono::steady_clock::now()),
      lastActivity_(started_) {
  fds_[0] = std::move(client);
  fds_[1] = std::move(upstream);
  worker_.track(*this);  // tunnelsOpen/Total were counted by Tunnel::start
  bump(worker_.stats().tunnelsOffloaded);
  id_ = worker_.watchOffloaded(*this, fds_[0].get(), fds_[1].get());
}

OffloadedTunnel::~OffloadedTunnel() { worker_.stats().tunnelsOpen.fetch_sub(1, std::memory_order_relaxed); }

template <class F>
auto OffloadedTunnel::guarded(F f) {
  ++pendingOps_;
  return [this, f = std::move(f)](auto&&... args) {
    --pendingOps_;
    if (!closed_) f(std::forward<decltype(args)>(args)...);
    if (closed_ && pendingOps_ == 0) delete this;
  };
}

void OffloadedTunnel::onEvent(int side, uint32_t events) {
  if (!closed_) handleEvent(side, events);
  if (closed_ && pendingOps_ == 0) delete this;
}

void OffloadedTunnel::handleEvent(int side, uint32_t events) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fds_[side].get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    spdlog::debug("proxy: offloaded tunnel closed: {} socket error {}", side == 0 ? "client" : "upstream", err);
    return close();
  }
  if ((events & (EPOLLRDHUP | EPOLLHUP)) && !eof_[side]) {
    eof_[side] = true;
    tryShutdown(side);
  } else if (events & EPOLLERR) {
    close();
  }
}

// The FIN received on `from` goes on to the other socket once every byte
// redirected before it sits in the other's send queue.
void OffloadedTunnel::tryShutdown(int from) {
  const int to = 1 - from;
  TcpCounts fromCounts, toCounts;
  // TCP_INFO on `from` takes its socket lock: the softirq that processed the
  // FIN has run the verdict on every skb before it, so the counter is final.
  if (!tcpCounts(fds_[from].get(), &fromCounts) || !tcpCounts(fds_[to].get(), &toCounts)) return close();
  const uint64_t redirected = offload_.bytes(cookies_[from]);
  if (toCounts.queued >= queuedBase_[to] + redirected) {
    ::shutdown(fds_[to].get(), SHUT_WR);
    shut_[from] = true;
    if (shut_[0] && shut_[1]) close();
    return;
  }
  // Still in the psock queue (the other end reads slowly, or the backlog
  // worker has not run yet): look again soon.
  drainTimer_.expires_after(drainDelay_);
  drainDelay_ = std::min(drainDelay_ * 2, std::chrono::milliseconds(64));
  drainTimer_.async_wait(guarded([this](error_code ec) {
    if (ec) return;
    for (int side = 0; side < 2; ++side)
      if (eof_[side] && !shut_[side] && !closed_) tryShutdown(side);
  }));
}

void OffloadedTunnel::collectBytes() {
  for (int side = 0; side < 2; ++side) {
    const uint64_t now = offload_.bytes(cookies_[side]);
    if (now <= seen_[side]) continue;
    bump(side == 0 ? worker_.stats().tunnelBytesIn : worker_.stats().tunnelBytesOut, now - seen_[side]);
    seen_[side] = now;
    lastActivity_ = std::chrono::steady_clock::now();
  }
}

void OffloadedTunnel::armTimer() {
  const auto period = std::max(settings_.idle / 4, std::chrono::milliseconds(1));
  auto next = std::chrono::steady_clock::now() + period;
  if (settings_.lifetime.count() > 0) next = std::min(next, started_ + settings_.lifetime);
  timer_.expires_at(next);
  timer_.async_wait(guarded([this](error_code ec) {
    if (!ec) onTimer();
  }));
}

void OffloadedTunnel::onTimer() {
  collectBytes();
  const auto now = std::chrono::steady_clock::now();
  if (settings_.lifetime.count() > 0 && now >= started_ + settings_.lifetime) {
    spdlog::debug("proxy: offloaded tunnel closed at its lifetime cap");
    return close();
  }
  if (now >= lastActivity_ + settings_.idle) {
    spdlog::debug("proxy: offloaded tunnel closed after {} ms idle", settings_.idle.count());
    return close();
  }
  armTimer();
}

// Closes and, when no wait is pending, deletes (otherwise the last returning wait does).
void OffloadedTunnel::closeNow() {
  close();
  if (pendingOps_ == 0) delete this;
}

void OffloadedTunnel::close() {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  drainTimer_.cancel();
  collectBytes();
  if (id_ != 0) worker_.unwatchOffloaded(id_, fds_[0].get(), fds_[1].get());
  offload_.remove(pair_);
  fds_[0].reset();
  fds_[1].reset();
  slot_.reset();
  lease_.reset();
}

}  // namespace hv::proxy
