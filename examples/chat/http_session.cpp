#include "http_session.h"

#include <boost/beast/websocket/rfc6455.hpp>

#include <string_view>

#include "chat_page.h"  // generated from index.html by embed_file.cmake
#include "websocket_session.h"

namespace hv::chat {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr std::string_view kServer = "hostvisor-chat";
constexpr std::string_view kWebSocketPath = "/chat/ws";

std::string_view indexHtml() {
  return {reinterpret_cast<const char*>(page::kIndexHtml), sizeof(page::kIndexHtml)};
}

// Inline script and style are the page's own; nothing may load from elsewhere.
// connect-src lists ws:/wss: because older browsers do not let 'self' cover them.
constexpr std::string_view kPageSecurityPolicy =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self' ws: wss:; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

std::string_view pathOf(std::string_view target) { return target.substr(0, target.find('?')); }

http::response<http::string_body> reply(const http::request<http::string_body>& request, http::status status,
                                        std::string_view contentType, std::string_view body) {
  http::response<http::string_body> res{status, request.version()};
  res.set(http::field::server, kServer);
  res.set(http::field::content_type, contentType);
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Content-Type-Options", "nosniff");
  res.keep_alive(request.keep_alive());
  if (request.method() == http::verb::head) {
    res.content_length(body.size());
  } else {
    res.body() = body;
    res.prepare_payload();
  }
  return res;
}

http::message_generator text(const http::request<http::string_body>& request, http::status status,
                             std::string_view body) {
  return reply(request, status, "text/plain; charset=utf-8", body);
}

}  // namespace

http::message_generator answer(const http::request<http::string_body>& request) {
  std::string_view path = pathOf(request.target());
  if (request.method() != http::verb::get && request.method() != http::verb::head) {
    http::response<http::string_body> res{http::status::method_not_allowed, request.version()};
    res.set(http::field::server, kServer);
    res.set(http::field::allow, "GET, HEAD");
    res.keep_alive(request.keep_alive());
    res.prepare_payload();
    return res;
  }
  if (path == "/chat" || path == "/chat/" || path == "/chat/index.html") {
    auto res = reply(request, http::status::ok, "text/html; charset=utf-8", indexHtml());
    res.set("Content-Security-Policy", kPageSecurityPolicy);
    res.set("Referrer-Policy", "no-referrer");
    return res;
  }
  if (path == "/chat/healthz") return text(request, http::status::ok, "ok");
  if (path == kWebSocketPath) return text(request, http::status::upgrade_required, "this is a WebSocket endpoint\n");
  if (path == "/") {
    http::response<http::string_body> res{http::status::found, request.version()};
    res.set(http::field::server, kServer);
    res.set(http::field::location, "/chat/");
    res.keep_alive(request.keep_alive());
    res.prepare_payload();
    return res;
  }
  return text(request, http::status::not_found, "not found\n");
}

HttpSession::HttpSession(asio::ip::tcp::socket&& socket, ChatRoom& room) : stream_(std::move(socket)), room_(room) {}

void HttpSession::run() { doRead(); }

void HttpSession::doRead() {
  parser_.emplace();  // a fresh parser per request: the limits apply to each
  parser_->header_limit(static_cast<uint32_t>(kMaxHeaderBytes));
  parser_->body_limit(kMaxBodyBytes);
  stream_.expires_after(kRequestTimeout);
  http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::onRead, shared_from_this()));
}

void HttpSession::onRead(beast::error_code ec, size_t) {
  if (ec == http::error::end_of_stream) return doClose();
  if (ec) return;  // timeout, reset, malformed or oversized request: drop the connection
  http::request<http::string_body>& request = parser_->get();
  if (beast::websocket::is_upgrade(request)) {
    if (pathOf(request.target()) == kWebSocketPath) {
      std::make_shared<WebSocketSession>(stream_.release_socket(), room_)->run(parser_->release());
      return;
    }
    request.keep_alive(false);
  }
  doWrite(answer(request));
}

void HttpSession::doWrite(http::message_generator response) {
  bool keepAlive = response.keep_alive();
  beast::async_write(stream_, std::move(response),
                     beast::bind_front_handler(&HttpSession::onWrite, shared_from_this(), keepAlive));
}

void HttpSession::onWrite(bool keepAlive, beast::error_code ec, size_t) {
  if (ec) return;
  if (!keepAlive) return doClose();
  doRead();
}

void HttpSession::doClose() {
  beast::error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

}  // namespace hv::chat
