#include "listener.h"

#include <iostream>
#include <memory>

#include "http_session.h"

namespace hv::chat {

namespace asio = boost::asio;
using asio::ip::tcp;

Listener::Listener(asio::io_context& io, ChatRoom& room) : io_(io), room_(room), acceptor_(io), retry_(io) {}

std::expected<void, std::string> Listener::listen(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  auto fail = [&](std::string_view step) {
    return std::unexpected(std::string(step) + " " + endpoint.address().to_string() + ":" +
                           std::to_string(endpoint.port()) + ": " + ec.message());
  };
  if (acceptor_.open(endpoint.protocol(), ec)) return fail("open");
  // A restart must not wait out TIME_WAIT connections of the previous run.
  if (acceptor_.set_option(asio::socket_base::reuse_address(true), ec)) return fail("setsockopt on");
  if (acceptor_.bind(endpoint, ec)) return fail("bind");
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec)) return fail("listen on");
  doAccept();
  return {};
}

tcp::endpoint Listener::localEndpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void Listener::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  retry_.cancel();
}

void Listener::doAccept() {
  acceptor_.async_accept(io_, [this](boost::system::error_code ec, tcp::socket socket) {
    onAccept(ec, std::move(socket));
  });
}

void Listener::onAccept(boost::system::error_code ec, tcp::socket socket) {
  if (!acceptor_.is_open()) return;
  if (ec) {
    std::cerr << "accept: " << ec.message() << "; retrying" << std::endl;
    retry_.expires_after(kAcceptRetry);
    retry_.async_wait([this](boost::system::error_code waitEc) {
      if (!waitEc && acceptor_.is_open()) doAccept();
    });
    return;
  }
  std::make_shared<HttpSession>(std::move(socket), room_)->run();
  doAccept();
}

}  // namespace hv::chat
