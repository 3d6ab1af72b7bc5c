// WebSocketSession: one chat client after the HTTP upgrade on /chat/ws.
// Accepts the handshake, reads frames (at most kMaxMessageBytes each; larger
// ones close the connection with 1009), hands them to the room, and writes
// the room's broadcasts through a queue bounded at kMaxQueueBytes: a client
// that cannot keep up is dropped rather than allowed to grow our memory.
//
// Timeouts are Beast's suggested server settings (30 s handshake) with a 60 s
// idle timeout: Beast pings after half of it, so an idle peer gets a ping every
// 30 s and is closed if it has not answered by the end of the next 30 s.
//
// Owned by shared_ptr (the pending handlers hold it); single-threaded.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace hv::chat {

class ChatRoom;

class WebSocketSession : public std::enable_shared_from_this<WebSocketSession> {
 public:
  static constexpr size_t kMaxMessageBytes = 4 * 1024;
  static constexpr size_t kMaxQueueBytes = 1024 * 1024;
  static constexpr auto kIdleTimeout = std::chrono::seconds(60);
  static constexpr auto kGoingAway = boost::beast::websocket::close_code::going_away;

  WebSocketSession(boost::asio::ip::tcp::socket&& socket, ChatRoom& room);
  ~WebSocketSession();

  // Completes the upgrade that `request` asked for, then joins the room.
  void run(boost::beast::http::request<boost::beast::http::string_body> request);

  // Queues one text frame (shared by every recipient of a broadcast).
  void send(std::shared_ptr<const std::string> frame);
  // Starts the closing handshake once the frame being written is out.
  void close(boost::beast::websocket::close_code code);

  const std::string& name() const { return name_; }
  bool joined() const { return joined_; }

 private:
  void onAccept(boost::beast::error_code ec);
  void doRead();
  void onRead(boost::beast::error_code ec, size_t bytes);
  void handleFrame(std::string_view frame);
  void doWrite();
  void onWrite(boost::beast::error_code ec, size_t bytes);
  void doClose(boost::beast::websocket::close_code code);
  void onClose(boost::beast::error_code ec);
  void discardQueued();
  void drop(std::string_view why);

  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  boost::beast::flat_buffer buffer_;
  ChatRoom& room_;
  bool inRoom_ = false;
  std::string name_;
  bool joined_ = false;

  std::deque<std::shared_ptr<const std::string>> queue_;
  size_t queuedBytes_ = 0;
  bool writing_ = false;
  bool closing_ = false;  // no more frames are queued once set
  std::optional<boost::beast::websocket::close_code> closeAfterWrite_;
};

}  // namespace hv::chat
