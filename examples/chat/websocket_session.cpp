#include "websocket_session.h"

#include <iostream>

#include "chat_room.h"
#include "protocol.h"

namespace hv::chat {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

WebSocketSession::WebSocketSession(boost::asio::ip::tcp::socket&& socket, ChatRoom& room)
    : ws_(std::move(socket)), room_(room) {}

WebSocketSession::~WebSocketSession() {
  if (inRoom_) room_.remove(*this);
}

void WebSocketSession::run(http::request<http::string_body> request) {
  // The websocket stream has its own timeouts; the TCP stream's would fire
  // in the middle of a long, healthy conversation.
  beast::get_lowest_layer(ws_).expires_never();
  auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
  timeouts.idle_timeout = kIdleTimeout;
  ws_.set_option(timeouts);
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "hostvisor-chat"); }));
  ws_.read_message_max(kMaxMessageBytes);
  ws_.text(true);
  ws_.async_accept(request, beast::bind_front_handler(&WebSocketSession::onAccept, shared_from_this()));
}

void WebSocketSession::onAccept(beast::error_code ec) {
  if (ec) return;  // a failed handshake is the peer's problem; nothing to log
  inRoom_ = true;
  room_.add(*this);
  doRead();
}

void WebSocketSession::doRead() {
  ws_.async_read(buffer_, beast::bind_front_handler(&WebSocketSession::onRead, shared_from_this()));
}

void WebSocketSession::onRead(beast::error_code ec, size_t) {
  // Any error ends the session: websocket::error::closed (a normal close),
  // message_too_big (Beast has already sent 1009), a timeout, a reset.
  if (ec) return;
  if (!ws_.got_text()) return close(websocket::close_code::unknown_data);
  auto data = buffer_.cdata();
  handleFrame({static_cast<const char*>(data.data()), data.size()});
  buffer_.consume(buffer_.size());
  doRead();
}

void WebSocketSession::handleFrame(std::string_view frame) {
  auto message = parseClientMessage(frame);
  if (!message) return send(std::make_shared<const std::string>(encodeError(message.error())));
  if (message->type == ClientMessage::Type::kHello) {
    if (joined_) return send(std::make_shared<const std::string>(encodeError("already joined")));
    name_ = sanitizeName(message->value);
    joined_ = true;
    return room_.join(*this);
  }
  if (!joined_) return send(std::make_shared<const std::string>(encodeError("send hello first")));
  std::string text = cleanText(message->value);
  if (!text.empty()) room_.say(*this, std::move(text));
}

void WebSocketSession::send(std::shared_ptr<const std::string> frame) {
  if (closing_) return;
  if (queuedBytes_ + frame->size() > kMaxQueueBytes) return drop("its send queue is over 1 MiB");
  queuedBytes_ += frame->size();
  queue_.push_back(std::move(frame));
  if (!writing_) doWrite();
}

void WebSocketSession::doWrite() {
  writing_ = true;
  ws_.async_write(boost::asio::buffer(*queue_.front()),
                  beast::bind_front_handler(&WebSocketSession::onWrite, shared_from_this()));
}

void WebSocketSession::onWrite(beast::error_code ec, size_t) {
  writing_ = false;
  if (ec) return;  // the read side sees the same failure and ends the session
  queuedBytes_ -= queue_.front()->size();
  queue_.pop_front();
  if (closeAfterWrite_) return doClose(*closeAfterWrite_);
  if (!queue_.empty()) doWrite();
}

void WebSocketSession::close(websocket::close_code code) {
  if (closing_) return;
  closing_ = true;
  // Beast allows one write-type operation at a time: the close frame waits
  // for the frame in flight; what is still queued is not worth sending.
  discardQueued();
  if (writing_) {
    closeAfterWrite_ = code;
    return;
  }
  doClose(code);
}

void WebSocketSession::doClose(websocket::close_code code) {
  closeAfterWrite_.reset();
  ws_.async_close(code, beast::bind_front_handler(&WebSocketSession::onClose, shared_from_this()));
}

void WebSocketSession::onClose(beast::error_code) {
  // Nothing to do: the pending read completes too, and the session ends
  // when the last handler lets go of it.
}

void WebSocketSession::discardQueued() {
  // The frame being written stays: the write reads from it until it completes.
  size_t keep = writing_ ? 1 : 0;
  while (queue_.size() > keep) {
    queuedBytes_ -= queue_.back()->size();
    queue_.pop_back();
  }
}

void WebSocketSession::drop(std::string_view why) {
  std::cout << "drop " << (joined_ ? name_ : std::string("(no name)")) << ": " << why << std::endl;
  closing_ = true;
  discardQueued();
  // A client this far behind would not read a close frame either.
  beast::error_code ignored;
  beast::get_lowest_layer(ws_).socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(ws_).close();
}

}  // namespace hv::chat
