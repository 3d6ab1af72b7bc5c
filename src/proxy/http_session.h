// HttpSession: one client connection (plain or TLS), request after request.
//
// Per request: read the head with explicit limits (size, field count, time),
// refuse ambiguous framing, route it, check access, read the body (buffered,
// limited), pick an upstream (pooled connection or a new one; failed connects
// eject the upstream and the request goes to another), forward, and stream the
// response back. A WebSocket upgrade answered with 101 hands both sockets to
// a Tunnel and the session ends. Its own errors are short text pages.
//
// Lives on one worker's thread; owned by the shared_ptrs in its pending
// completion handlers. Timeouts: one timer, re-armed per phase; on expiry it
// cancels the sockets and the pending handler sees `timedOut_`.
// The client side is in http_session.cpp, the upstream side in http_forward.cpp.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/client_limiter.h"
#include "proxy/http_rules.h"
#include "proxy/stream.h"
#include "proxy/upstreams.h"
#include "proxy/worker.h"

namespace hv::proxy {

class HttpSession : public std::enable_shared_from_this<HttpSession>, public Closable {
 public:
  HttpSession(Worker& worker, Stream client, ClientSlot slot, asio::ip::address peer, bool tls);
  void run();
  void closeNow() override;

 private:
  enum class Phase { kNone, kHandshake, kIdle, kHeader, kBody, kConnect, kUpstream, kRelay, kReply, kHold, kLinger };
  using Milliseconds = std::chrono::milliseconds;

  // Client side (http_session.cpp).
  void onHandshake(error_code ec);
  void doWaitRequest();
  void onReadable(error_code ec);
  void onIdleRead(error_code ec, size_t n);
  void doReadHeader();
  void parseHeader();
  void onReadSome(error_code ec, size_t n);
  void onHeaderError(error_code ec);
  void onHeader();
  bool resolveRoute();
  void doReadBody();
  void onBody(error_code ec, size_t n);
  void onRequestComplete();
  void reply(http::status status, std::string_view hint, bool close);
  void onReplied(bool keepAlive, error_code ec, size_t n);
  void resetExchange();
  void doClose();
  void doLinger();
  void finalClose();
  void arm(Milliseconds timeout, Phase phase);  // the current phase must end within `timeout`
  void disarm();                                 // the current phase ended in time
  void startWait();
  void stopDeadline();                           // the session ends: no wait stays pending
  void onDeadline(uint64_t generation, error_code ec);
  std::string displayName() const;
  std::string publicName() const;  // in answers to clients

  // Upstream side (http_forward.cpp).
  void doForward();
  void holdOr(http::status status, std::string hint);
  void wakeFromHold();
  void onHoldWake();
  void doConnect(const tcp::endpoint& ep, uint64_t run);
  void onConnect(error_code ec);
  void doSendRequest();
  void onSent(error_code ec, size_t n);
  void doReadResponseHeader();
  void onResponseHeader(error_code ec, size_t n);
  void retryOrFail(error_code ec);
  void doRelayHeader();
  bool takeBufferedBody();
  void doRelay();
  void onRelayRead(error_code ec, size_t n);
  void doRelayWrite();
  void onRelayWrite(error_code ec, size_t n);
  void finishExchange();
  void abortExchange();
  void startTunnel();
  void dropUpstream();
  void countStatus(unsigned status);

  Worker& worker_;
  Stream client_;
  ClientSlot slot_;
  asio::ip::address peer_;
  bool tls_;
  asio::steady_timer deadline_;
  Phase phase_ = Phase::kNone;
  uint64_t generation_ = 0;  // of the pending wait
  bool waiting_ = false;     // a wait is pending (at deadline_.expiry() <= deadlineAt_ while a phase runs)
  std::chrono::steady_clock::time_point deadlineAt_{};
  bool timedOut_ = false;
  bool closed_ = false;
  bool firstRequest_ = true;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;

  // The current exchange.
  http::request<http::string_body> request_;
  std::string host_;
  Target target_;
  std::shared_ptr<const RouteTable> routes_;  // keeps route_ alive
  const RouteEntry* route_ = nullptr;
  bool upgrade_ = false;
  bool keepAlive_ = false;
  bool eventStream_ = false;
  TimePoint holdUntil_{};
  std::vector<tcp::endpoint> tried_;
  unsigned attempts_ = 0;
  std::string lastFailure_;  // why the last upstream tried did not answer, for the 502
  std::unique_ptr<UpstreamConn> upstream_;
  Upstreams::Lease lease_;
  bool reused_ = false;
  bool checkPooled_ = false;  // peek at every pooled connection before use (a pooled one failed)
  std::optional<http::response_parser<http::buffer_body>> response_;
  std::optional<http::response_serializer<http::buffer_body>> serializer_;
  std::unique_ptr<char[]> relayBuffer_;
  std::unique_ptr<http::response<http::string_body>> answer_;  // our own reply being written
};

}  // namespace hv::proxy
