// hostvisor-chat: the WebSocket chat of the hosting case study, as a
// hostvisor instance. One process, one thread, one room.
//
//   PORT=8101 hostvisor-chat              listens on 127.0.0.1:8101
//   hostvisor-chat --listen ADDR:PORT     anywhere else ([::1]:8101 for IPv6)
//
// stdout is the instance log: one line when listening, one per join, leave
// and dropped client. SIGTERM (or SIGINT) closes every WebSocket with 1001
// "going away" and exits 0, within kShutdownGrace even if peers do not answer.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <expected>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "chat_room.h"
#include "listener.h"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using hv::chat::ChatRoom;
using hv::chat::Listener;

constexpr auto kShutdownGrace = std::chrono::seconds(3);

constexpr std::string_view kUsage =
    "usage: hostvisor-chat [--listen ADDR:PORT]\n"
    "\n"
    "A WebSocket chat room served under /chat/ (page at /chat/, socket at /chat/ws).\n"
    "Listens on 127.0.0.1:$PORT, the port hostvisor assigns, unless --listen is given.\n";

std::expected<unsigned short, std::string> parsePort(std::string_view text) {
  unsigned port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port == 0 || port > 65535)
    return std::unexpected("\"" + std::string(text) + "\" is not a port number (1-65535)");
  return static_cast<unsigned short>(port);
}

// "127.0.0.1:8101", "[::1]:8101"
std::expected<tcp::endpoint, std::string> parseListen(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::unexpected("--listen wants ADDR:PORT, got \"" + std::string(text) + "\"");
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return std::unexpected("--listen: \"" + std::string(host) + "\" is not an IP address");
  auto port = parsePort(text.substr(colon + 1));
  if (!port) return std::unexpected("--listen: " + port.error());
  return tcp::endpoint(address, *port);
}

// The endpoint from the command line, else from $PORT; nullopt for --help.
std::expected<std::optional<tcp::endpoint>, std::string> endpointFrom(int argc, char** argv) {
  std::optional<std::string_view> listen;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return std::nullopt;
    if (arg == "--listen") {
      if (i + 1 == argc) return std::unexpected(std::string("--listen needs ADDR:PORT"));
      listen = argv[++i];
    } else if (arg.starts_with("--listen=")) {
      listen = arg.substr(std::string_view("--listen=").size());
    } else {
      return std::unexpected("unknown argument \"" + std::string(arg) + "\"");
    }
  }
  if (listen) return parseListen(*listen);
  const char* env = std::getenv("PORT");
  if (!env) return std::unexpected(std::string("PORT is not set: run me under hostvisor, or give --listen ADDR:PORT"));
  auto port = parsePort(env);
  if (!port) return std::unexpected("PORT: " + port.error());
  return tcp::endpoint(asio::ip::address_v4::loopback(), *port);
}

}  // namespace

int main(int argc, char** argv) {
  auto endpoint = endpointFrom(argc, argv);
  if (!endpoint) {
    std::cerr << "hostvisor-chat: " << endpoint.error() << "\n\n" << kUsage;
    return 2;
  }
  if (!*endpoint) {
    std::cout << kUsage;
    return 0;
  }

  // Declaration order is teardown order, reversed: sessions still pending in
  // the io_context leave the room when it is destroyed, so the room comes first.
  ChatRoom room;
  asio::io_context io{1};
  Listener listener(io, room);
  if (auto listening = listener.listen(**endpoint); !listening) {
    std::cerr << "hostvisor-chat: cannot " << listening.error() << std::endl;
    return 1;
  }
  auto bound = listener.localEndpoint();
  std::string host = bound.address().to_string();
  if (bound.address().is_v6()) host = "[" + host + "]";
  std::cout << "chat: listening on " << host << ":" << bound.port() << std::endl;

  asio::steady_timer deadline(io);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    std::cout << "chat: " << (signal == SIGTERM ? "SIGTERM" : "SIGINT") << ", closing " << room.size()
              << " connection(s)" << std::endl;
    listener.close();
    // Idle keep-alive HTTP connections are not tracked: stopping the loop ends them.
    deadline.expires_after(kShutdownGrace);
    deadline.async_wait([&](boost::system::error_code waitEc) {
      if (!waitEc) io.stop();
    });
    room.closeAll([&] { io.stop(); });
  });

  io.run();
  std::cout << "chat: stopped" << std::endl;
  return 0;
}
