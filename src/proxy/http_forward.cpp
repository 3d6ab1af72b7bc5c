// HttpSession, upstream side: choose, connect (or reuse), send, relay back.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <cerrno>
#include <sstream>

#include "proxy/http_session.h"
#include "proxy/tunnel.h"

namespace hv::proxy {

namespace beast = boost::beast;
using http::status;

namespace {

constexpr size_t kRelayChunk = Worker::kRelayBufferSize;
constexpr uint32_t kResponseHeadLimit = 64 * 1024;

std::string endpointText(const tcp::endpoint& ep) {
  return ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                              : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

bool isLocalShortage(const error_code& ec) {
  if (ec.category() != boost::system::system_category()) return false;
  const int e = ec.value();
  return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

}  // namespace

void HttpSession::doForward() {
  const TimePoint now = std::chrono::steady_clock::now();
  const auto pick = worker_.upstreams().choose(*route_, tried_, now);
  using Kind = Upstreams::Pick::Kind;
  switch (pick.kind) {
    case Kind::kStarting: return holdOr(status::service_unavailable, publicName() + " is starting; try again shortly");
    case Kind::kExhausted: return holdOr(status::bad_gateway, publicName() + lastFailure_);
    case Kind::kDown: return reply(status::bad_gateway, publicName() + " is not running", !keepAlive_);
    case Kind::kEndpoint: break;
  }
  const tcp::endpoint& ep = route_->endpoints[pick.index];
  const uint64_t run = route_->route.upstreams[pick.index].run;
  lease_ = worker_.upstreams().lease(ep);
  const bool check = checkPooled_ || !isIdempotent(request_.method());
  if (auto idle = worker_.upstreams().takeIdle(ep, run, now, check)) {
    upstream_ = std::move(idle);
    reused_ = true;
    bump(worker_.stats().upstreamReuses);
    return doSendRequest();
  }
  doConnect(ep, run);
}

// Holds the request (no buffer read from the client meanwhile) until the
// route changes or the route's hold time is spent; without one, answers now.
void HttpSession::holdOr(status st, std::string hint) {
  const auto hold = route_->route.holdWhileStarting;
  const TimePoint now = std::chrono::steady_clock::now();
  if (hold.count() > 0) {
    if (holdUntil_ == TimePoint{}) holdUntil_ = now + hold;
    if (now < holdUntil_) {
      worker_.onNextRouteChange(weak_from_this(), [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->wakeFromHold();
      });
      return arm(std::chrono::duration_cast<Milliseconds>(holdUntil_ - now) + Milliseconds(1), Phase::kHold);
    }
  }
  reply(st, hint, !keepAlive_);
}

void HttpSession::wakeFromHold() {
  if (closed_ || phase_ != Phase::kHold) return;
  onHoldWake();
}

void HttpSession::onHoldWake() {
  disarm();
  tried_.clear();
  if (resolveRoute()) doForward();
}

void HttpSession::doConnect(const tcp::endpoint& ep, uint64_t run) {
  upstream_ = std::make_unique<UpstreamConn>(worker_.io(), ep, run);
  reused_ = false;
  bump(worker_.stats().upstreamConnects);
  arm(worker_.limits().connectTimeout, Phase::kConnect);
  upstream_->stream.socket().async_connect(ep, beast::bind_front_handler(&HttpSession::onConnect, shared_from_this()));
}

void HttpSession::onConnect(error_code ec) {
  if (closed_) return;
  disarm();
  if (ec && isLocalShortage(ec)) {
    // Our own shortage (out of descriptors or memory), not the upstream's:
    // its health must not change (a proxy under a connection flood would
    // otherwise mark healthy instances failed). Nothing was sent.
    spdlog::warn("proxy: {}: cannot open a connection: {}", displayName(), ec.message());
    dropUpstream();
    return reply(status::service_unavailable, "the proxy is out of resources; try again shortly", true);
  }
  if (ec) {
    const tcp::endpoint ep = upstream_->endpoint;
    bump(worker_.stats().upstreamFailures);
    spdlog::warn("proxy: {} at {}: connect failed ({}); skipping it for {} ms", displayName(), endpointText(ep),
                 timedOut_ ? "timed out" : ec.message(), worker_.limits().ejectTime.count());
    worker_.upstreams().eject(ep, std::chrono::steady_clock::now());
    tried_.push_back(ep);
    lastFailure_ = " is not accepting connections";
    dropUpstream();
    return doForward();  // nothing was sent: any method may go to another upstream
  }
  upstream_->stream.socket().set_option(tcp::no_delay(true), ec);
  doSendRequest();
}

void HttpSession::doSendRequest() {
  const Route& route = route_->route;
  std::string target = route.stripPrefix ? stripPathPrefix(route.pathPrefix, target_.path) : target_.path;
  target += target_.query;
  prepareUpstreamRequest(request_, target, ClientInfo{peer_, tls_}, upgrade_);
  arm(worker_.limits().upstreamTimeout, Phase::kUpstream);
  http::async_write(upstream_->stream, request_, beast::bind_front_handler(&HttpSession::onSent, shared_from_this()));
}

void HttpSession::onSent(error_code ec, size_t n) {
  bump(worker_.stats().httpBytesIn, n);
  if (closed_) return;
  disarm();
  if (ec) return retryOrFail(ec);
  doReadResponseHeader();
}

void HttpSession::doReadResponseHeader() {
  response_.emplace();
  response_->body_limit(boost::none);  // streamed, never held whole
  response_->header_limit(kResponseHeadLimit);
  if (request_.method() == http::verb::head) response_->skip(true);
  const Limits& limits = worker_.limits();
  arm(upgrade_ ? limits.handshakeTimeout : limits.upstreamTimeout, Phase::kUpstream);
  http::async_read_header(upstream_->stream, upstream_->buffer, *response_,
                          beast::bind_front_handler(&HttpSession::onResponseHeader, shared_from_this()));
}

void HttpSession::onResponseHeader(error_code ec, size_t) {
  if (closed_) return;
  disarm();
  if (ec && timedOut_)
    return reply(status::gateway_timeout, fmt::format("{} did not answer in time", publicName()), !keepAlive_);
  if (ec) return retryOrFail(ec);
  const unsigned code = response_->get().result_int();
  if (code == 101 && upgrade_) return startTunnel();
  if (code == 101) return reply(status::bad_gateway, publicName() + " switched protocols unasked", true);
  if (code / 100 == 1) return doReadResponseHeader();  // 100 Continue, 103 Early Hints: the final one follows
  doRelayHeader();
}

// The upstream failed before answering. A request it cannot have seen (a
// failed connect, handled in onConnect) or an idempotent one goes elsewhere.
void HttpSession::retryOrFail(error_code ec) {
  const bool answered = response_ && response_->got_some();
  const tcp::endpoint ep = upstream_->endpoint;
  const bool fresh = !reused_;
  dropUpstream();
  spdlog::debug("proxy: {} at {} failed: {}", displayName(), endpointText(ep), ec.message());
  if (!answered && isIdempotent(request_.method()) && attempts_ < route_->endpoints.size() + 1) {
    ++attempts_;
    lastFailure_ = " closed the connection without answering";
    if (fresh) tried_.push_back(ep);  // a stale pooled connection says nothing about the upstream
    else checkPooled_ = true;         // others pooled with it may be stale too (the upstream restarted)
    response_.reset();
    return doForward();
  }
  reply(status::bad_gateway, publicName() + " closed the connection without answering", !keepAlive_);
}

void HttpSession::doRelayHeader() {
  auto& res = response_->get();
  const unsigned code = res.result_int();
  const bool bodyless = request_.method() == http::verb::head || code == 204 || code == 304;
  keepAlive_ = prepareClientResponse(res.base(), keepAlive_, response_->chunked() && !bodyless,
                                     response_->need_eof() && !bodyless);
  eventStream_ = beast::iequals(res[http::field::content_type].substr(0, 17), "text/event-stream");
  countStatus(code);
  serializer_.emplace(res);
  if (!takeBufferedBody()) return abortExchange();
  doRelayWrite();
}

// Moves the body bytes that arrived with the head into the relay buffer, so
// that the head and (for a small response) the whole body leave in one write
// — one segment and one wake-up of the client instead of two. False if the
// upstream's bytes do not parse.
bool HttpSession::takeBufferedBody() {
  auto& body = response_->get().body();
  if (!relayBuffer_) relayBuffer_ = worker_.takeRelayBuffer();
  body.data = relayBuffer_.get();
  body.size = kRelayChunk;
  // One put() handles one piece (a chunk header, some body): loop as
  // http::read does, until the bytes or the room run out.
  while (!response_->is_done() && upstream_->buffer.size() > 0 && body.size > 0) {
    error_code ec;
    const size_t used = response_->put(upstream_->buffer.data(), ec);
    upstream_->buffer.consume(used);
    if (ec == http::error::need_more || ec == http::error::need_buffer || (!ec && used == 0)) break;
    if (ec) {
      spdlog::debug("proxy: {} response cut: {}", displayName(), ec.message());
      return false;
    }
  }
  body.size = kRelayChunk - body.size;
  body.data = relayBuffer_.get();
  body.more = !response_->is_done();
  return true;
}

void HttpSession::doRelay() {
  auto& body = response_->get().body();
  if (!relayBuffer_) relayBuffer_ = worker_.takeRelayBuffer();
  body.data = relayBuffer_.get();
  body.size = kRelayChunk;
  // Server-sent events may be quiet for long: they get the tunnel idle time.
  const Limits& limits = worker_.limits();
  const auto routeIdle = route_->route.idleTimeout.count() > 0 ? route_->route.idleTimeout : limits.tunnelIdle;
  arm(eventStream_ ? routeIdle : limits.upstreamTimeout, Phase::kRelay);
  http::async_read(upstream_->stream, upstream_->buffer, *response_,
                   beast::bind_front_handler(&HttpSession::onRelayRead, shared_from_this()));
}

void HttpSession::onRelayRead(error_code ec, size_t) {
  if (closed_) return;
  disarm();
  if (ec == http::error::need_buffer) ec = {};
  if (ec) {
    spdlog::debug("proxy: {} response cut: {}", displayName(), ec.message());
    return abortExchange();
  }
  auto& body = response_->get().body();
  body.size = kRelayChunk - body.size;
  body.data = relayBuffer_.get();
  body.more = !response_->is_done();
  doRelayWrite();
}

void HttpSession::doRelayWrite() {
  arm(worker_.limits().sendTimeout, Phase::kRelay);
  http::async_write(client_, *serializer_, beast::bind_front_handler(&HttpSession::onRelayWrite, shared_from_this()));
}

void HttpSession::onRelayWrite(error_code ec, size_t n) {
  bump(worker_.stats().httpBytesOut, n);
  if (closed_) return;
  disarm();
  if (ec == http::error::need_buffer) ec = {};
  if (ec) return abortExchange();
  if (response_->is_done() && serializer_->is_done()) return finishExchange();
  doRelay();
}

void HttpSession::finishExchange() {
  const bool reusable = response_->is_done() && response_->keep_alive() && upstream_->buffer.size() == 0;
  if (reusable) {
    lease_.reset();
    worker_.upstreams().putIdle(std::move(upstream_), std::chrono::steady_clock::now());
  }
  dropUpstream();
  if (!keepAlive_) return doClose();
  resetExchange();
  doWaitRequest();
}

// The answer is half sent: the only honest signal left is closing.
void HttpSession::abortExchange() { finalClose(); }

void HttpSession::startTunnel() {
  auto& res = response_->get();
  const std::string protocol(res[http::field::upgrade]);
  removeHopByHop(res.base());
  res.set(http::field::connection, "Upgrade");
  res.set(http::field::upgrade, protocol);
  std::ostringstream head;
  head << res.base();
  std::string toClient = head.str();
  const auto early = upstream_->buffer.data();  // frames the upstream sent right after its 101
  toClient.append(static_cast<const char*>(early.data()), early.size());
  const auto pending = buffer_.data();  // bytes the client sent after its request
  std::string toUpstream(static_cast<const char*>(pending.data()), pending.size());
  const Limits& limits = worker_.limits();
  const TunnelSettings settings{route_->route.idleTimeout.count() > 0 ? route_->route.idleTimeout : limits.tunnelIdle,
                                limits.tunnelLifetime};
  closed_ = true;
  stopDeadline();
  Tunnel::start(worker_, std::move(client_), std::move(upstream_->stream), std::move(slot_), std::move(lease_),
                settings, std::move(toClient), std::move(toUpstream));
  upstream_.reset();
}

void HttpSession::dropUpstream() {
  if (upstream_) upstream_->stream.close();
  upstream_.reset();
  lease_.reset();
}

}  // namespace hv::proxy
