#include "api/http_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <unordered_map>

#include "api/event_stream.h"
#include "api/log_stream.h"

#include "base/strings.h"

namespace hv::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

struct HttpServer::Shared {
  Api& api;
  HttpLimits limits;
  asio::steady_timer trim;
  size_t tcpConnections = 0;
  size_t unixConnections = 0;
  std::unordered_map<std::string, size_t> perClient;  // TCP, by Peer::address
  bool closed = false;

  // Takes a connection slot for `peer`, or false when its cap is reached.
  bool admitConnection(const Peer& peer) {
    if (peer.viaUnixSocket) {
      if (unixConnections >= limits.maxUnixConnections) return false;
      ++unixConnections;
      return true;
    }
    size_t& mine = perClient[peer.address];
    if (tcpConnections >= limits.maxConnections || mine >= limits.maxPerClient) {
      if (mine == 0) perClient.erase(peer.address);
      return false;
    }
    ++mine;
    ++tcpConnections;
    return true;
  }
  void releaseConnection(const Peer& peer) {
    if (peer.viaUnixSocket) {
      --unixConnections;
      return;
    }
    --tcpConnections;
    auto it = perClient.find(peer.address);
    if (it != perClient.end() && --it->second == 0) perClient.erase(it);
  }

  // (Re)arms the trim: it runs once large answers have stopped for trimDelay.
  void trimSoon() {
    trim.expires_after(limits.trimDelay);
    trim.async_wait([](error_code ec) {
      if (!ec) ::malloc_trim(0);
    });
  }
};

namespace {

template <class Protocol>
class Session : public std::enable_shared_from_this<Session<Protocol>> {
 public:
  // REQUIRES: shared->admitConnection(peer) returned true.
  Session(typename Protocol::socket socket, std::shared_ptr<HttpServer::Shared> shared, Peer peer)
      : stream_(std::move(socket)), delay_(stream_.get_executor()), shared_(std::move(shared)), peer_(std::move(peer)) {}
  ~Session() { shared_->releaseConnection(peer_); }

  void run() { doReadHeader(shared_->limits.requestTimeout); }

 private:
  void doReadHeader(std::chrono::seconds timeout) {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(shared_->limits.headerBytes));
    parser_->body_limit(shared_->limits.bodyBytes);
    stream_.expires_after(timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::onHeader, this->shared_from_this()));
  }

  // Errors of reading a head or a body; true when one was handled.
  bool readFailed(error_code ec) {
    if (!ec) return false;
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted || ec == asio::error::eof)
      doClose();
    else if (ec == http::error::body_limit)
      write(Api::errorResponse(11, 413, "payload_too_large",
                               fmt::format("the body is larger than {} bytes", shared_->limits.bodyBytes)));
    else if (ec == http::error::header_limit)
      write(Api::errorResponse(11, 431, "invalid_argument",
                               fmt::format("the request head is larger than {} bytes", shared_->limits.headerBytes)));
    else
      write(Api::errorResponse(11, 400, "invalid_argument", "malformed HTTP request: " + ec.message()));
    return true;
  }

  void onHeader(error_code ec, size_t) {
    if (readFailed(ec)) return;
    if (beast::websocket::is_upgrade(parser_->get())) {
      const std::string_view target = parser_->get().target();
      if (target.substr(0, target.find('?')) == "/api/v1/events") {
        auto events = shared_->api.eventsTarget(parser_->get(), peer_);
        if (!events) return refuse(std::move(events.error()));
        return startEventStream(std::move(stream_), parser_->get(), shared_->api.events(), std::move(events->caller),
                                std::move(events->slot));
      }
      auto log = shared_->api.logFollowTarget(parser_->get(), peer_);
      if (!log) return refuse(std::move(log.error()));
      return startLogStream(std::move(stream_), parser_->get(), std::move(*log));
    }
    auto admitted = shared_->api.admit(parser_->get(), peer_);
    if (!admitted) return refuse(std::move(admitted.error()));
    caller_ = std::move(*admitted);
    if (parser_->is_done()) return dispatch();
    stream_.expires_after(shared_->limits.requestTimeout);
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::onBody, this->shared_from_this()));
  }

  void onBody(error_code ec, size_t) {
    if (readFailed(ec)) return;
    dispatch();
  }

  void dispatch() {
    stream_.expires_never();  // a stop may take its grace period to answer
    shared_->api.handle(parser_->get(), peer_, [self = this->shared_from_this()](Response res) {
      self->write(std::move(res));
    }, caller_ ? &*caller_ : nullptr);
  }

  // A refused caller: never keep-alive (the body, if any, is not read), and
  // a wrong token is answered only after a pause, so guesses are slow.
  void refuse(Response res) {
    res.keep_alive(false);
    if (res.result() != http::status::unauthorized) return write(std::move(res));
    delay_.expires_after(shared_->limits.authFailureDelay);
    delay_.async_wait([self = this->shared_from_this(), res = std::move(res)](error_code ec) mutable {
      if (ec || self->shared_->closed) return self->doClose();
      self->write(std::move(res));
    });
  }

  void write(Response res) {
    res_ = std::move(res);
    stream_.expires_after(shared_->limits.requestTimeout);
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&Session::onWrite, this->shared_from_this(), res_.keep_alive()));
  }

  void onWrite(bool keepAlive, error_code ec, size_t) {
    const bool large = res_.body().size() >= shared_->limits.trimAfterBytes;
    res_ = {};  // free the body now, not with the next answer or the session
    if (large && !shared_->closed) shared_->trimSoon();
    if (ec || !keepAlive || shared_->closed) return doClose();
    doReadHeader(shared_->limits.idleTimeout);
  }

  void doClose() {
    error_code ignored;
    stream_.socket().shutdown(Protocol::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::basic_stream<Protocol> stream_;
  asio::steady_timer delay_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<Caller> caller_;  // of the request in flight, from admit()
  Response res_;
  std::shared_ptr<HttpServer::Shared> shared_;
  Peer peer_;
};

// The CLI's socket: a send buffer that holds the whole list of 1,000
// (~600 KB) lets one write queue it all and the control thread go back to
// its loop, where the default (wmem_default, 208 KiB) took a wake-up of the
// daemon per ~200 KB the CLI had read. Kernel memory only while in flight;
// the kernel caps it at net.core.wmem_max (then it is simply smaller).
// Not on TCP: a fixed SO_SNDBUF would turn off the kernel's autotuning.
constexpr int kUnixSendBuffer = 1 << 20;

void tuneSocket(asio::local::stream_protocol::socket& s) {
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDBUF, &kUnixSendBuffer, sizeof kUnixSendBuffer);
}

void tuneSocket(asio::ip::tcp::socket&) {}

Peer peerOf(asio::local::stream_protocol::socket& s) {
  Peer p;
  p.viaUnixSocket = true;
  struct ucred cred {};
  socklen_t len = sizeof cred;
  // With no credentials we cannot tell who it is: treat it as "nobody".
  p.uid = ::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.uid : 65534;
  return p;
}

// The client's IPv4 address, or its IPv6 /64 (one subscriber holds a whole /64).
Peer peerOf(asio::ip::tcp::socket& s) {
  Peer p;
  error_code ec;
  auto address = s.remote_endpoint(ec).address();
  if (ec) return p;
  if (address.is_v6() && address.to_v6().is_v4_mapped())
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  if (address.is_v4()) {
    p.address = address.to_string();
  } else {
    auto bytes = address.to_v6().to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    p.address = asio::ip::address_v6(bytes).to_string() + "/64";
  }
  return p;
}

template <class Protocol>
class Listener : public std::enable_shared_from_this<Listener<Protocol>> {
 public:
  Listener(asio::io_context& io, typename Protocol::acceptor acceptor,
           std::shared_ptr<HttpServer::Shared> shared)
      : acceptor_(std::move(acceptor)), retry_(io), shared_(std::move(shared)) {}

  void doAccept() {
    acceptor_.async_accept([self = this->shared_from_this()](error_code ec, typename Protocol::socket s) {
      self->onAccept(ec, std::move(s));
    });
  }
  void close() {
    error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
  }

 private:
  void onAccept(error_code ec, typename Protocol::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // EMFILE and the like: back off instead of spinning on the error.
      spdlog::warn("api accept failed: {}", ec.message());
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([self = this->shared_from_this()](error_code e) { if (!e) self->doAccept(); });
      return;
    }
    // Asio does not open sockets O_CLOEXEC; an instance must never inherit one.
    ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
    Peer peer = peerOf(socket);
    if (shared_->admitConnection(peer)) {
      tuneSocket(socket);
      std::make_shared<Session<Protocol>>(std::move(socket), shared_, std::move(peer))->run();
    }
    doAccept();
  }

  typename Protocol::acceptor acceptor_;
  asio::steady_timer retry_;
  std::shared_ptr<HttpServer::Shared> shared_;
};

template <class Protocol>
Status startListener(asio::io_context& io, typename Protocol::endpoint endpoint,
                     std::shared_ptr<HttpServer::Shared> shared, std::vector<std::function<void()>>& closers,
                     typename Protocol::endpoint* bound, const std::string& what) {
  typename Protocol::acceptor acceptor(io);
  error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec && std::is_same_v<Protocol, asio::ip::tcp>) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return failErrno(fmt::format("listen on {}", what), ec.value(), Errc::kUnavailable);
  ::fcntl(acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
  if (bound) *bound = acceptor.local_endpoint();
  auto listener = std::make_shared<Listener<Protocol>>(io, std::move(acceptor), std::move(shared));
  listener->doAccept();
  closers.push_back([listener] { listener->close(); });
  return {};
}

}  // namespace

HttpServer::HttpServer(asio::io_context& io, Api& api, HttpLimits limits)
    : io_(io), shared_(std::make_shared<Shared>(Shared{api, limits, asio::steady_timer(io), 0, 0, {}, false})) {}

HttpServer::~HttpServer() { close(); }

Result<std::string> HttpServer::listenTcp(const std::string& address) {
  const size_t colon = address.rfind(':');
  long long port = 0;
  if (colon == std::string::npos || !parseInt(address.substr(colon + 1), 0, 65535, &port))
    return fail(Errc::kInvalidArgument, fmt::format("listen address '{}' is not ADDR:PORT", address));
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) return fail(Errc::kInvalidArgument, fmt::format("listen address '{}' has no valid IP address", address));
  asio::ip::tcp::endpoint bound;
  if (auto s = startListener<asio::ip::tcp>(io_, {ip, static_cast<uint16_t>(port)}, shared_, closers_,
                                            &bound, address);
      !s)
    return std::unexpected(s.error());
  return bound.address().is_v6() ? fmt::format("[{}]:{}", bound.address().to_string(), bound.port())
                                  : fmt::format("{}:{}", bound.address().to_string(), bound.port());
}

Status HttpServer::listenUnix(const std::string& path) {
  ::unlink(path.c_str());  // a stale socket of a dead daemon; the data dir lock says we own it
  if (auto s = startListener<asio::local::stream_protocol>(io_, {path}, shared_, closers_, nullptr, path); !s)
    return s;
  if (::chmod(path.c_str(), 0666) != 0) return failErrno("chmod " + path, errno);
  return {};
}

void HttpServer::close() {
  shared_->closed = true;
  shared_->trim.cancel();
  for (auto& c : closers_) c();
  closers_.clear();
}

}  // namespace hv::api
