#include "cli/api_client.h"

#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace hv::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

Result<ApiResponse> ApiClient::call(std::string_view method, const std::string& target,
                                    const std::string& body) {
  asio::io_context io;
  beast::basic_stream<asio::local::stream_protocol> stream(io);
  stream.expires_after(std::chrono::seconds(60));
  beast::error_code ec;
  stream.socket().connect(asio::local::stream_protocol::endpoint(socketPath_), ec);
  if (ec)
    return fail(Errc::kUnavailable,
                fmt::format("cannot reach the hostvisor daemon at {}: {} (is `hostvisor serve` "
                            "running with this data dir? set --data-dir or HOSTVISOR_DATA_DIR)",
                            socketPath_, ec.message()));
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::user_agent, "hostvisor-cli");
  if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req, ec);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  if (!ec) http::read(stream, buffer, parser, ec);
  if (ec) return fail(Errc::kUnavailable, fmt::format("talking to the daemon at {}: {}", socketPath_, ec.message()));
  return ApiResponse{static_cast<int>(parser.get().result_int()), std::move(parser.get().body())};
}

}  // namespace hv::cli
