// Listener: accepts TCP connections on one address and starts an HttpSession
// for each. A failed accept (EMFILE when the process is out of descriptors)
// is retried after kAcceptRetry instead of spinning.
//
// Owned by main; must outlive io_context::run(). Single-threaded.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <expected>
#include <string>

namespace hv::chat {

class ChatRoom;

class Listener {
 public:
  static constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

  Listener(boost::asio::io_context& io, ChatRoom& room);

  // Opens, binds and listens; the error names the failed step.
  std::expected<void, std::string> listen(const boost::asio::ip::tcp::endpoint& endpoint);
  boost::asio::ip::tcp::endpoint localEndpoint() const;
  // Stops accepting; connections already accepted carry on.
  void close();

 private:
  void doAccept();
  void onAccept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  ChatRoom& room_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_;
};

}  // namespace hv::chat
