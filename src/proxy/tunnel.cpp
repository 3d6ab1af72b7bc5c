#include "proxy/tunnel.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "proxy/offloaded_tunnel.h"

namespace hv::proxy {

namespace {

constexpr int kReadsPerTurn = 16;  // then yield, so one busy tunnel cannot starve the loop

}  // namespace

void Tunnel::start(Worker& worker, Stream client, Stream upstream, ClientSlot slot, Upstreams::Lease lease,
                   TunnelSettings settings, std::string toClient, std::string toUpstream) {
  // Counted before any byte of the 101 leaves, whichever kind of tunnel it
  // becomes; each kind's destructor takes it off tunnelsOpen.
  bump(worker.stats().tunnelsOpen);
  bump(worker.stats().tunnelsTotal);
  // Before any byte of the 101: from here on the tunnel's TLS is ours, and
  // the SSL's ~13.5 KB are freed (tls_records.h). The SSL's writes have all
  // completed (the session waited for them), its reads are checked there.
  if (worker.tlsTakeover() && client.tls() && client.takeOverTls()) bump(worker.stats().tunnelsTlsTakeover);
  if (TunnelOffload* offload = worker.offload();
      offload && OffloadedTunnel::tryStart(worker, *offload, client, upstream, slot, lease, settings, toClient,
                                           toUpstream))
    return;
  auto* t = new Tunnel(worker, std::move(client), std::move(upstream), std::move(slot), std::move(lease), settings);
  t->sides_[kToClient].pending = std::move(toClient);
  t->sides_[kToUpstream].pending = std::move(toUpstream);
  t->armTimer();
  for (Direction d : {kToUpstream, kToClient}) {
    if (t->closed_) break;
    if (!t->sides_[d].pending.empty()) t->flush(d);
    else t->pump(d);  // the TLS side may already hold decrypted bytes
  }
}

Tunnel::Tunnel(Worker& worker, Stream client, Stream upstream, ClientSlot slot, Upstreams::Lease lease,
               TunnelSettings settings)
    : worker_(worker), client_(std::move(client)), upstream_(std::move(upstream)), slot_(std::move(slot)),
      lease_(std::move(lease)), settings_(settings), timer_(worker.io()),
      started_(std::chrono::steady_clock::now()), lastActivity_(started_) {
  sides_[kToUpstream].from = &client_;
  sides_[kToUpstream].to = &upstream_;
  sides_[kToClient].from = &upstream_;
  sides_[kToClient].to = &client_;
  const size_t plain = !client_.tls() + !upstream_.tls();
  if (plain > 0) landing_.reset(new char[plain * kLanding]);
  char* next = landing_.get();
  for (Side& side : sides_)
    if (!side.from->tls()) side.landing = std::exchange(next, next + kLanding);
  worker_.track(*this);
}

Tunnel::~Tunnel() { worker_.stats().tunnelsOpen.fetch_sub(1, std::memory_order_relaxed); }

template <class F>
auto Tunnel::guarded(F f) {
  ++pendingOps_;
  return [this, f = std::move(f)](auto&&... args) {
    --pendingOps_;
    if (!closed_) f(std::forward<decltype(args)>(args)...);
    if (closed_ && pendingOps_ == 0) delete this;
  };
}

void Tunnel::pump(Direction d) { sides_[d].from->tls() ? drain(d) : readNext(d); }

// Asio's receive is speculative: it reads at once unless the reactor knows the
// socket is empty (the last read was short and no edge came since), and then
// just queues, the registration untouched; the first completion after an
// edge runs right after its recv, so the landing buffer is per direction.
void Tunnel::readNext(Direction d) {
  sides_[d].from->socket().async_receive(
      asio::buffer(sides_[d].landing, kLanding),
      guarded([this, d](error_code ec, size_t n) { onLanded(d, ec, n); }));
}

void Tunnel::onLanded(Direction d, error_code ec, size_t n) {
  if (ec == asio::error::eof) return onEof(d);
  if (ec) return close();
  if (!forward(d, sides_[d].landing, n)) return;
  if (n == kLanding) return drain(d);  // a full buffer: more may be there
  readNext(d);
}

// Reads into the scratch buffer and forwards, until a short read says the
// source is empty (then back to the reactor) or kReadsPerTurn (then yield).
void Tunnel::drain(Direction d) {
  Side& side = sides_[d];
  char* buffer = worker_.scratch();
  for (int turn = 0; turn < kReadsPerTurn; ++turn) {
    const IoResult r = side.from->tryRead(buffer, Worker::kScratchSize);
    if (r.status == IoStatus::kEof) return onEof(d);
    if (r.status == IoStatus::kError) return close();
    if (r.status != IoStatus::kDone) return side.from->tls() ? waitSocket(d, r.status) : readNext(d);
    if (!forward(d, buffer, r.bytes)) return;
    // Short: the socket is (very likely) empty. A plain one goes back to the
    // speculative receive; a TLS one waits for readability (the wait re-arms
    // the registration, so bytes that came meanwhile still wake it), unless a
    // full record says more may follow or OpenSSL read more records ahead.
    if (!side.from->tls() && r.bytes < Worker::kScratchSize) return readNext(d);
    if (side.from->tls() && r.bytes < Stream::kTlsRecord && !side.from->hasBuffered())
      return waitSocket(d, IoStatus::kWantRead);
  }
  asio::post(worker_.io(), guarded([this, d] { drain(d); }));
}

// Sends `n` bytes on; false when they did not all go (the rest is pending and
// flush() continues the direction) or the tunnel closed.
bool Tunnel::forward(Direction d, const char* data, size_t n) {
  Side& side = sides_[d];
  lastActivity_ = std::chrono::steady_clock::now();
  bump(d == kToUpstream ? worker_.stats().tunnelBytesIn : worker_.stats().tunnelBytesOut, n);
  const IoResult w = side.to->tryWrite(data, n);
  if (w.status == IoStatus::kError) {
    close();
    return false;
  }
  if (w.bytes == n) return true;
  side.pending.assign(data + w.bytes, n - w.bytes);
  side.sent = 0;
  side.to->asyncWait(w.status, guarded([this, d](error_code ec) { ec ? close() : flush(d); }));
  return false;
}

void Tunnel::waitSocket(Direction d, IoStatus want) {
  sides_[d].from->asyncWait(want, guarded([this, d](error_code ec) { ec ? close() : drain(d); }));
}

void Tunnel::flush(Direction d) {
  Side& side = sides_[d];
  const IoResult w = side.to->tryWrite(side.pending.data() + side.sent, side.pending.size() - side.sent);
  if (w.status == IoStatus::kError) return close();
  side.sent += w.bytes;
  if (side.sent < side.pending.size())
    return side.to->asyncWait(w.status, guarded([this, d](error_code ec) { ec ? close() : flush(d); }));
  std::string().swap(side.pending);  // give the memory back while idle
  side.sent = 0;
  pump(d);
}

void Tunnel::onEof(Direction d) {
  sides_[d].eof = true;
  sides_[d].to->shutdownSend();
  if (sides_[kToUpstream].eof && sides_[kToClient].eof) close();
}

void Tunnel::armTimer() {
  auto deadline = lastActivity_ + settings_.idle;
  if (settings_.lifetime.count() > 0) deadline = std::min(deadline, started_ + settings_.lifetime);
  timer_.expires_at(deadline);
  timer_.async_wait(guarded([this](error_code ec) {
    if (!ec) onTimer();
  }));
}

// One timer for both limits, moved only when it fires: activity just updates
// lastActivity_, so a busy tunnel never touches the timer queue.
void Tunnel::onTimer() {
  const auto now = std::chrono::steady_clock::now();
  if (settings_.lifetime.count() > 0 && now >= started_ + settings_.lifetime) {
    spdlog::debug("proxy: tunnel closed at its lifetime cap");
    return close();
  }
  if (now >= lastActivity_ + settings_.idle) {
    spdlog::debug("proxy: tunnel closed after {} ms idle", settings_.idle.count());
    return close();
  }
  armTimer();
}

void Tunnel::closeNow() {
  close();
  if (pendingOps_ == 0) delete this;
}

void Tunnel::close() {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  client_.close();
  upstream_.close();
  slot_.reset();
  lease_.reset();
}

}  // namespace hv::proxy
