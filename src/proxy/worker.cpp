#include "proxy/worker.h"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <boost/asio/detail/socket_option.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstring>
#include <future>

#include "proxy/http_session.h"
#include "proxy/offloaded_tunnel.h"

namespace hv::proxy {

namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

const std::string& tooManyResponse() {
  static const std::string response = [] {
    const std::string body = "429 Too Many Requests: too many connections from your address\n";
    return fmt::format("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                       body.size(), body);
  }();
  return response;
}

}  // namespace

struct Worker::Listener {
  Listener(asio::io_context& io, bool t) : acceptor(io), tls(t), retry(io) {}
  tcp::acceptor acceptor;
  bool tls;
  asio::steady_timer retry;
};

Worker::Worker(Shared& shared)
    : shared_(shared), sweep_(io_), upstreams_(shared.config.limits),
      routes_(std::make_shared<const RouteTable>()), scratch_(new char[kScratchSize]) {}

Worker::~Worker() { stop(); }

Result<tcp::endpoint> Worker::listen(const tcp::endpoint& endpoint, bool tls) {
  Listener& l = listeners_.emplace_back(io_, tls);
  error_code ec;
  l.acceptor.open(endpoint.protocol(), ec);
  if (!ec) l.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) l.acceptor.set_option(ReusePort(true), ec);
  if (!ec) l.acceptor.bind(endpoint, ec);
  if (!ec) l.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  tcp::endpoint bound;
  if (!ec) bound = l.acceptor.local_endpoint(ec);
  if (ec) {
    listeners_.pop_back();
    return failErrno(fmt::format("listen on {}:{}", endpoint.address().to_string(), endpoint.port()), ec.value(),
                     Errc::kUnavailable);
  }
  return bound;
}

void Worker::start() {
  for (Listener& l : listeners_) doAccept(l);
  doSweep();
  thread_ = std::thread([this] {
    // OpenSSL writes with write(2); a peer gone away must give EPIPE, not kill us.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    io_.run();
  });
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] { closeAll(); });
  // Closing everything drains the loop; a forgotten wait must not hang the daemon.
  auto done = std::async(std::launch::async, [this] { thread_.join(); });
  if (done.wait_for(std::chrono::seconds(3)) != std::future_status::ready) {
    spdlog::warn("proxy: a loop did not drain in 3 s; stopping it");
    io_.stop();
  }
  done.wait();
}

void Worker::closeAll() {
  stopping_ = true;
  for (Listener& l : listeners_) {
    error_code ignored;
    l.acceptor.close(ignored);
    l.retry.cancel();
  }
  sweep_.cancel();
  upstreams_.closeAll();
  if (offloadEvents_) {
    error_code ignored;
    offloadEvents_->close(ignored);
  }
  routeWaiters_.clear();
  std::vector<Closable*> open;
  for (Closable& c : live_) open.push_back(&c);
  for (Closable* c : open) c->closeNow();
}

void Worker::publish(std::shared_ptr<const RouteTable> table, uint64_t version) {
  asio::post(io_, [this, table = std::move(table), version]() mutable {
    if (version <= routesVersion_) return;
    routesVersion_ = version;
    routes_ = std::move(table);
    upstreams_.retain(*routes_);
    auto waiters = std::move(routeWaiters_);
    routeWaiters_.clear();
    for (auto& [owner, wake] : waiters)
      if (!owner.expired()) wake();
  });
}

void Worker::doAccept(Listener& l) {
  l.acceptor.async_accept([this, &l](error_code ec, tcp::socket socket) { onAccept(l, ec, std::move(socket)); });
}

void Worker::onAccept(Listener& l, error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || stopping_) return;
  if (ec) {
    // EMFILE and the like: back off rather than spin on the error.
    spdlog::warn("proxy: accept failed: {}", ec.message());
    l.retry.expires_after(std::chrono::milliseconds(100));
    l.retry.async_wait([this, &l](error_code e) {
      if (!e && !stopping_) doAccept(l);
    });
    return;
  }
  startSession(std::move(socket), l.tls);
  doAccept(l);
}

void Worker::startSession(tcp::socket socket, bool tls) {
  error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return;
  bump(stats_.connectionsTotal);
  const AddressKey key = clientKey(peer.address());
  if (!shared_.limiter.acquire(key)) {
    bump(stats_.connectionsRejected);
    // The send buffer of a fresh socket is empty: this small write cannot block.
    const std::string& answer = tooManyResponse();
    if (!tls) (void)::send(socket.native_handle(), answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    socket.shutdown(tcp::socket::shutdown_send, ec);
    return;
  }
  socket.set_option(tcp::no_delay(true), ec);
  SSL* ssl = nullptr;
  if (tls && !(ssl = shared_.tls.newSsl())) return shared_.limiter.release(key);
  ClientSlot slot(&shared_.limiter, key, &stats_.connectionsOpen);
  std::make_shared<HttpSession>(*this, Stream(std::move(socket), ssl), std::move(slot), peer.address(), tls)->run();
}

void Worker::doSweep() {
  const auto period = std::clamp(limits().upstreamIdleTimeout / 2, std::chrono::milliseconds(100),
                                 std::chrono::milliseconds(5000));
  sweep_.expires_after(period);
  sweep_.async_wait([this](error_code ec) {
    if (ec || stopping_) return;
    upstreams_.sweep(std::chrono::steady_clock::now());
    std::erase_if(routeWaiters_, [](const auto& w) { return w.first.expired(); });
    doSweep();
  });
}

}  // namespace hv::proxy

namespace hv::proxy {

uint64_t Worker::watchOffloaded(OffloadedTunnel& t, int clientFd, int upstreamFd) {
  if (!offloadEvents_) {
    const int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) {
      spdlog::warn("proxy: epoll_create1 for offloaded tunnels: {}", std::strerror(errno));
      return 0;
    }
    offloadEvents_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
  }
  const uint64_t id = nextWatch_++;
  const int epfd = offloadEvents_->native_handle();
  const int fds[2] = {clientFd, upstreamFd};
  for (int side = 0; side < 2; ++side) {
    // Only EPOLLRDHUP (+ the implicit ERR/HUP): a data wake-up carries EPOLLIN
    // as its key, so the kernel's epoll callback drops it without waking us.
    epoll_event ev{};
    ev.events = EPOLLRDHUP | EPOLLET;
    ev.data.u64 = id << 1 | static_cast<uint64_t>(side);
    if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fds[side], &ev) != 0) {
      spdlog::warn("proxy: epoll_ctl for an offloaded tunnel: {}", std::strerror(errno));
      if (side == 1) ::epoll_ctl(epfd, EPOLL_CTL_DEL, fds[0], nullptr);
      return 0;
    }
  }
  offloaded_.emplace(id, &t);
  waitOffloadEvents();
  return id;
}

void Worker::unwatchOffloaded(uint64_t id, int clientFd, int upstreamFd) {
  offloaded_.erase(id);
  if (!offloadEvents_ || !offloadEvents_->is_open()) return;
  ::epoll_ctl(offloadEvents_->native_handle(), EPOLL_CTL_DEL, clientFd, nullptr);
  ::epoll_ctl(offloadEvents_->native_handle(), EPOLL_CTL_DEL, upstreamFd, nullptr);
}

// Asio's async_wait re-arms the epoll set's registration (EPOLL_CTL_MOD), which
// re-polls it: events left over (more than one turn takes) or arriving between
// the last epoll_wait and this wait still wake the loop.
void Worker::waitOffloadEvents() {
  if (offloadWaiting_ || stopping_ || !offloadEvents_ || !offloadEvents_->is_open()) return;
  offloadWaiting_ = true;
  offloadEvents_->async_wait(asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
    offloadWaiting_ = false;
    if (ec || stopping_) return;
    onOffloadEvents();
    if (!offloaded_.empty()) waitOffloadEvents();
  });
}

void Worker::onOffloadEvents() {
  epoll_event events[64];
  for (int round = 0; round < 16; ++round) {
    const int n = ::epoll_wait(offloadEvents_->native_handle(), events, 64, 0);
    for (int i = 0; i < n; ++i) {
      // Looked up per event: an earlier event of this batch may have ended the tunnel.
      auto it = offloaded_.find(events[i].data.u64 >> 1);
      if (it != offloaded_.end()) it->second->onEvent(static_cast<int>(events[i].data.u64 & 1), events[i].events);
    }
    if (n < 64) return;
  }
}

}  // namespace hv::proxy
