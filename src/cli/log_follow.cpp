#include "cli/log_follow.h"

#include "cli/output.h"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdlib>
#include <iostream>

#include "api/wire/wire.h"

namespace hv::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

int followLogs(const ApiClient& client, const std::string& name, int lines) {
  // A plain request first, so a refusal comes back with the daemon's message.
  ApiClient probe = client;
  auto check = probe.call("GET", "/api/v1/instances/" + name);
  if (!check) {
    std::cerr << "hostvisor: error: " << check.error().message << "\n";
    return 3;
  }
  if (check->status >= 400) {
    auto message = api::wire::errorMessage(check->body);
    std::cerr << "hostvisor: error: " << (message ? *message : check->body) << "\n";
    return 1;
  }
  asio::io_context io;
  websocket::stream<asio::local::stream_protocol::socket> ws(io);
  beast::error_code ec;
  ws.next_layer().connect(asio::local::stream_protocol::endpoint(client.socketPath()), ec);
  const char* token = std::getenv("HOSTVISOR_TOKEN");
  ws.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
    req.set(beast::http::field::user_agent, "hostvisor-cli");
    if (token && *token) req.set(beast::http::field::authorization, std::string("Bearer ") + token);
  }));
  if (!ec) ws.handshake("localhost", fmt::format("/api/v1/instances/{}/logs?n={}", name, lines), ec);
  if (ec) {
    std::cerr << "hostvisor: error: cannot follow the log of " << name << ": " << ec.message() << "\n";
    return 1;
  }
  beast::flat_buffer buffer;
  for (;;) {
    ws.read(buffer, ec);
    if (ec == websocket::error::closed) {
      const auto reason = ws.reason();
      if (!reason.reason.empty()) std::cerr << "hostvisor: log stream ended: " << reason.reason << "\n";
      return 0;
    }
    if (ec) {
      std::cerr << "hostvisor: error: log stream broke: " << ec.message() << "\n";
      return 1;
    }
    const auto data = buffer.data();
    const std::string out = logForStdout({static_cast<const char*>(data.data()), data.size()});
    if (::write(STDOUT_FILENO, out.data(), out.size()) < 0) return 0;  // stdout closed (| head)
    buffer.consume(buffer.size());
  }
}

}  // namespace hv::cli
