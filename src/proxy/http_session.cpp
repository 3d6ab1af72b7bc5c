#include "proxy/http_session.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "proxy/error_page.h"

namespace hv::proxy {

namespace beast = boost::beast;
using http::status;

namespace {

constexpr size_t kReadChunk = 4096;
constexpr size_t kIdleRead = 1024;  // pending between requests on a plain connection (nginx: client_header_buffer_size 1k)
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

HttpSession::HttpSession(Worker& worker, Stream client, ClientSlot slot, asio::ip::address peer, bool tls)
    : worker_(worker), client_(std::move(client)), slot_(std::move(slot)), peer_(peer), tls_(tls),
      deadline_(worker.io()), buffer_(worker.limits().headerBytes + 64 * 1024) {
  worker_.track(*this);
}

void HttpSession::run() {
  if (!tls_) return doWaitRequest();
  arm(worker_.limits().handshakeTimeout, Phase::kHandshake);
  client_.async_handshake(beast::bind_front_handler(
      [](std::shared_ptr<HttpSession> self, error_code ec, size_t) { self->onHandshake(ec); }, shared_from_this()));
}

void HttpSession::closeNow() {
  closed_ = true;
  stopDeadline();
  client_.close();
  if (upstream_) upstream_->stream.close();
}

void HttpSession::onHandshake(error_code ec) {
  if (closed_) return;
  disarm();
  if (ec) {
    spdlog::debug("proxy: TLS handshake with {} failed: {}", peer_.to_string(), ec.message());
    return finalClose();
  }
  doWaitRequest();
}

// The first head must arrive within headerTimeout of the accept; later ones
// may wait keepAliveTimeout and then get headerTimeout. Between requests a
// plain connection keeps a read of kIdleRead bytes pending: Asio queues it
// on the edge-triggered registration as it stands, so the next head costs
// one recv. A readiness wait (async_wait) would hold no buffer but re-arms
// the registration with an epoll_ctl every time — a syscall per request
// that nginx does not make. A TLS connection waits holding no buffer.
void HttpSession::doWaitRequest() {
  if (firstRequest_ || buffer_.size() > 0 || client_.hasBuffered()) return doReadHeader();
  buffer_.shrink_to_fit();
  arm(worker_.limits().keepAliveTimeout, Phase::kIdle);
  if (!tls_) {
    return client_.async_read_some(buffer_.prepare(kIdleRead),
                                   beast::bind_front_handler(&HttpSession::onIdleRead, shared_from_this()));
  }
  client_.asyncWait(IoStatus::kWantRead, [self = shared_from_this()](error_code ec) { self->onReadable(ec); });
}

void HttpSession::onIdleRead(error_code ec, size_t n) {
  if (closed_) return;
  disarm();
  if (ec) return finalClose();
  buffer_.commit(n);
  doReadHeader();
}

void HttpSession::onReadable(error_code ec) {
  if (closed_) return;
  disarm();
  if (ec) return finalClose();
  doReadHeader();
}

void HttpSession::doReadHeader() {
  const Limits& limits = worker_.limits();
  arm(limits.headerTimeout, Phase::kHeader);
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(limits.headerBytes));
  parser_->body_limit(limits.bodyBytes);
  parser_->eager(false);
  parseHeader();
}

// Reads by hand rather than with http::async_read_header so the raw head can
// be checked for obs-fold before Beast unfolds it.
void HttpSession::parseHeader() {
  if (buffer_.size() > 0) {
    const auto data = buffer_.data();
    if (hasObsFold({static_cast<const char*>(data.data()), data.size()}))
      return reply(status::bad_request, "a header field is folded over several lines (obs-fold)", true);
    error_code ec;
    buffer_.consume(parser_->put(data, ec));
    if (ec && ec != http::error::need_more) return onHeaderError(ec);
    if (parser_->is_header_done()) {
      disarm();
      return onHeader();
    }
  }
  const size_t room = buffer_.max_size() - buffer_.size();
  if (room == 0) return onHeaderError(http::error::header_limit);
  client_.async_read_some(buffer_.prepare(std::min(room, kReadChunk)),
                          beast::bind_front_handler(&HttpSession::onReadSome, shared_from_this()));
}

void HttpSession::onReadSome(error_code ec, size_t n) {
  if (closed_) return;
  if (ec) {
    if (timedOut_ && (buffer_.size() > 0 || !firstRequest_ || parser_->got_some()))
      return reply(status::request_timeout, "the request head took too long to arrive", true);
    return finalClose();
  }
  buffer_.commit(n);
  parseHeader();
}

void HttpSession::onHeaderError(error_code ec) {
  disarm();
  const Limits& limits = worker_.limits();
  if (ec == http::error::header_limit)
    return reply(status::request_header_fields_too_large,
                 fmt::format("the request head is larger than {} bytes", limits.headerBytes), true);
  if (ec == http::error::body_limit)
    return reply(status::payload_too_large, fmt::format("the request body is larger than {} bytes", limits.bodyBytes),
                 true);
  if (ec == http::error::bad_transfer_encoding || ec == http::error::bad_content_length)
    return reply(status::bad_request, "bad Content-Length or Transfer-Encoding, or both at once", true);
  if (ec == http::error::multiple_content_length)
    return reply(status::bad_request, "Content-Length fields that differ", true);
  reply(status::bad_request, "malformed request: " + ec.message(), true);
}

void HttpSession::onHeader() {
  bump(worker_.stats().requests);
  firstRequest_ = false;
  const auto& req = parser_->get();
  const size_t fields = static_cast<size_t>(std::distance(req.begin(), req.end()));
  if (fields > worker_.limits().headerCount)
    return reply(status::request_header_fields_too_large,
                 fmt::format("the request has more than {} header fields", worker_.limits().headerCount), true);
  if (std::string problem = framingProblem(req); !problem.empty()) return reply(status::bad_request, problem, true);
  auto target = parseTarget(req.target());
  if (!target)
    return reply(status::bad_request, "the target is not a path, or has a '.' or '..' segment", true);
  target_ = std::move(*target);
  // Absolute form: the target's authority wins over Host (RFC 9112 3.2.2), for
  // routing and for what the upstream sees, so the two always agree.
  if (!target_.host.empty()) parser_->get().set(http::field::host, target_.host);
  const std::string_view rawHost = target_.host.empty() ? std::string_view(req[http::field::host]) : target_.host;
  host_ = normalizeHost(rawHost);
  if (host_.empty() && !rawHost.empty()) return reply(status::bad_request, "the Host field is not a host name", true);
  keepAlive_ = req.keep_alive() && req.version() >= 11;
  upgrade_ = beast::websocket::is_upgrade(req);
  if (!resolveRoute()) return;
  if (parser_->is_done()) return onRequestComplete();
  if (req.version() >= 11 && beast::iequals(req[http::field::expect], "100-continue")) {
    arm(worker_.limits().bodyTimeout, Phase::kBody);
    return asio::async_write(client_, asio::buffer(kContinue),
                             [self = shared_from_this()](error_code ec, size_t) {
                               if (self->closed_) return;
                               if (ec) return self->finalClose();
                               self->doReadBody();
                             });
  }
  doReadBody();
}

// Finds the route for host_ + target_ in the current table and checks access;
// replies (404/403) and returns false when the request cannot go on.
bool HttpSession::resolveRoute() {
  routes_ = worker_.routes();
  route_ = routes_->match(host_, target_.path);
  const bool bodyUnread = parser_ && !parser_->is_done();
  if (!route_) {
    reply(status::not_found, fmt::format("no route for {}{}", host_, target_.path), bodyUnread || !keepAlive_);
    return false;
  }
  if (!accessAllowed(route_->route.access, addressKey(peer_))) {
    reply(status::forbidden, "your address may not use this route", bodyUnread || !keepAlive_);
    return false;
  }
  return true;
}

void HttpSession::doReadBody() {
  arm(worker_.limits().bodyTimeout, Phase::kBody);
  http::async_read(client_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::onBody, shared_from_this()));
}

void HttpSession::onBody(error_code ec, size_t) {
  if (closed_) return;
  disarm();
  if (!ec) return onRequestComplete();
  if (timedOut_) return reply(status::request_timeout, "the request body took too long to arrive", true);
  if (ec == http::error::body_limit)
    return reply(status::payload_too_large,
                 fmt::format("the request body is larger than {} bytes", worker_.limits().bodyBytes), true);
  if (ec == asio::error::eof || ec == http::error::partial_message || ec == asio::error::connection_reset)
    return finalClose();
  reply(status::bad_request, "malformed request body: " + ec.message(), true);
}

void HttpSession::onRequestComplete() {
  request_ = parser_->release();
  parser_.reset();
  tried_.clear();
  attempts_ = 0;
  checkPooled_ = false;
  holdUntil_ = {};
  doForward();
}

void HttpSession::reply(status st, std::string_view hint, bool close) {
  dropUpstream();
  countStatus(static_cast<unsigned>(st));
  const bool keepAlive = !close && keepAlive_;
  answer_ = std::make_unique<http::response<http::string_body>>(errorResponse(st, hint, keepAlive));
  arm(worker_.limits().sendTimeout, Phase::kReply);
  http::async_write(client_, *answer_,
                    beast::bind_front_handler(&HttpSession::onReplied, shared_from_this(), keepAlive));
}

void HttpSession::onReplied(bool keepAlive, error_code ec, size_t n) {
  bump(worker_.stats().httpBytesOut, n);
  if (closed_) return;
  disarm();
  answer_.reset();
  if (ec) return finalClose();
  if (!keepAlive) return doClose();
  resetExchange();
  doWaitRequest();
}

void HttpSession::resetExchange() {
  parser_.reset();
  request_ = {};
  routes_.reset();
  route_ = nullptr;
  response_.reset();
  serializer_.reset();
  worker_.giveRelayBuffer(std::move(relayBuffer_));
  eventStream_ = false;
}

// Graceful close: FIN, then read and drop what the client still sends for a
// moment, so an answer written just before is not lost to a TCP reset.
void HttpSession::doClose() {
  dropUpstream();
  client_.shutdownSend();
  arm(kLingerTime, Phase::kLinger);
  doLinger();
}

void HttpSession::doLinger() {
  client_.asyncWait(IoStatus::kWantRead, [self = shared_from_this()](error_code ec) {
    if (self->closed_) return;
    if (ec) return self->finalClose();
    for (int i = 0; i < 16; ++i) {
      const IoResult r = self->client_.tryRead(self->worker_.scratch(), Worker::kScratchSize);
      if (r.status == IoStatus::kWantRead) return self->doLinger();
      if (r.status != IoStatus::kDone) return self->finalClose();
    }
    self->doLinger();
  });
}

void HttpSession::finalClose() {
  closed_ = true;
  stopDeadline();
  dropUpstream();
  client_.close();
}

// Deadlines are lazy. A request passes through five or so phases, each with
// its own limit, and a timer armed for each (then cancelled: a completion
// through the scheduler) cost a tenth of the proxy's CPU per request. One
// wait is pending at a time, never later than the current phase's deadline:
// arming a later deadline only records it, and the wait, when it fires
// early, waits again for the deadline as it is then. Ending the session
// (stopDeadline) cancels it, so its reference does not keep the session.
void HttpSession::arm(Milliseconds timeout, Phase phase) {
  phase_ = phase;
  timedOut_ = false;
  deadlineAt_ = std::chrono::steady_clock::now() + timeout;
  if (waiting_ && deadline_.expiry() <= deadlineAt_) return;
  startWait();
}

void HttpSession::startWait() {
  waiting_ = true;
  deadline_.expires_at(deadlineAt_);  // a pending later wait completes aborted, with an old generation
  deadline_.async_wait(beast::bind_front_handler(&HttpSession::onDeadline, shared_from_this(), ++generation_));
}

void HttpSession::disarm() { phase_ = Phase::kNone; }

void HttpSession::stopDeadline() {
  phase_ = Phase::kNone;
  ++generation_;
  waiting_ = false;
  deadline_.cancel();
}

void HttpSession::onDeadline(uint64_t generation, error_code ec) {
  if (generation != generation_) return;  // replaced by an earlier wait, or stopped
  waiting_ = false;
  if (ec || closed_ || phase_ == Phase::kNone) return;
  if (std::chrono::steady_clock::now() < deadlineAt_) return startWait();
  if (phase_ == Phase::kHold) return onHoldWake();
  timedOut_ = true;
  client_.cancel();
  if (upstream_) upstream_->stream.cancel();
}

// What a client is told: never an instance's name (it is the account's
// business, and names help an attacker aim; the log says which one it was).
// A static upstream is the admin's and keeps its name.
std::string HttpSession::publicName() const {
  return route_ && route_->route.origin == Route::Origin::kStatic ? displayName() : "the application";
}

std::string HttpSession::displayName() const {
  if (!route_ || route_->route.name.empty()) return "the backend";
  return (route_->route.origin == Route::Origin::kStatic ? "upstream " : "instance ") + route_->route.name;
}

void HttpSession::countStatus(unsigned code) {
  WorkerStats& stats = worker_.stats();
  if (code >= 500) bump(stats.responses5xx);
  else if (code >= 400) bump(stats.responses4xx);
  else if (code >= 300) bump(stats.responses3xx);
  else if (code >= 200) bump(stats.responses2xx);
}

}  // namespace hv::proxy
