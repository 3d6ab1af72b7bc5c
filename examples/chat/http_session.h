// HttpSession: one accepted TCP connection speaking HTTP/1.1 (keep-alive).
// Serves the page and the health check, and hands a WebSocket upgrade on
// /chat/ws over to a WebSocketSession. Limits per request: 8 KiB of head,
// 1 KiB of body (nothing here takes a body), 30 s to arrive.
//
// Routes (the front proxy forwards /chat/... unchanged; the query is ignored):
//   GET|HEAD /chat, /chat/, /chat/index.html   the page (embedded at build time)
//   GET|HEAD /chat/healthz                     "ok"
//   GET /chat/ws + Upgrade: websocket          the chat
//   GET|HEAD /                                 302 to /chat/ (handy without the proxy)
//
// Owned by shared_ptr (the pending handlers hold it); single-threaded.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>

namespace hv::chat {

class ChatRoom;

// The answer to a plain (non-upgrade) request; pure, exposed for reading.
boost::beast::http::message_generator answer(
    const boost::beast::http::request<boost::beast::http::string_body>& request);

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  static constexpr size_t kMaxHeaderBytes = 8 * 1024;
  static constexpr size_t kMaxBodyBytes = 1024;
  static constexpr auto kRequestTimeout = std::chrono::seconds(30);

  HttpSession(boost::asio::ip::tcp::socket&& socket, ChatRoom& room);

  void run();

 private:
  void doRead();
  void onRead(boost::beast::error_code ec, size_t bytes);
  void doWrite(boost::beast::http::message_generator response);
  void onWrite(bool keepAlive, boost::beast::error_code ec, size_t bytes);
  void doClose();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  ChatRoom& room_;
};

}  // namespace hv::chat
