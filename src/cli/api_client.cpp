#include "cli/api_client.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace hv::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr size_t kReadBytes = 64 * 1024;

// write(2) in a loop: a pipe may take less than asked.
Status writeAll(std::FILE* out, const char* data, size_t n) {
  const int fd = ::fileno(out);
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return failErrno("writing the answer", errno);
    data += w;
    n -= static_cast<size_t>(w);
  }
  return {};
}

std::unexpected<Error> talkError(const std::string& socketPath, const beast::error_code& ec) {
  return fail(Errc::kUnavailable, fmt::format("talking to the daemon at {}: {}", socketPath, ec.message()));
}

}  // namespace

namespace {

using Stream = beast::basic_stream<asio::local::stream_protocol>;

// Connects and sends the request; the stream then reads the answer.
Status sendRequest(Stream& stream, const std::string& socketPath, const std::string& token,
                         std::string_view method, const std::string& target, const std::string& body) {
  stream.expires_after(std::chrono::seconds(60));
  beast::error_code ec;
  stream.socket().connect(asio::local::stream_protocol::endpoint(socketPath), ec);
  if (ec)
    return fail(Errc::kUnavailable,
                fmt::format("cannot reach the hostvisor daemon at {}: {} (is `hostvisor serve` "
                            "running with this data dir? set --data-dir or HOSTVISOR_DATA_DIR)",
                            socketPath, ec.message()));
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::user_agent, "hostvisor-cli");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req, ec);
  if (ec) return talkError(socketPath, ec);
  return {};
}

}  // namespace

Result<ApiResponse> ApiClient::call(std::string_view method, const std::string& target,
                                    const std::string& body) {
  asio::io_context io;
  Stream stream(io);
  if (auto sent = sendRequest(stream, socketPath_, token_, method, target, body); !sent)
    return std::unexpected(sent.error());
  beast::flat_buffer buffer;
  buffer.reserve(kReadBytes);  // see stream()
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  beast::error_code ec;
  http::read(stream, buffer, parser, ec);
  if (ec) return talkError(socketPath_, ec);
  return ApiResponse{static_cast<int>(parser.get().result_int()), std::move(parser.get().body())};
}

Result<ApiResponse> ApiClient::stream(std::string_view method, const std::string& target, std::FILE* out) {
  asio::io_context io;
  Stream stream(io);
  if (auto sent = sendRequest(stream, socketPath_, token_, method, target, ""); !sent)
    return std::unexpected(sent.error());
  // Beast reads no more than the buffer's free capacity (else 512 bytes) per
  // recv: without room, a 580 KB list takes 1,100 recv calls instead of ~10.
  beast::flat_buffer buffer;
  buffer.reserve(kReadBytes);
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);  // it is not kept: no limit needed
  beast::error_code ec;
  http::read_header(stream, buffer, parser, ec);
  if (ec) return talkError(socketPath_, ec);
  ApiResponse res{static_cast<int>(parser.get().result_int()), {}};
  const bool ok = res.status < 400;
  if (ok && std::fflush(out) != 0) return failErrno("writing the answer", errno);  // then straight to its fd
  static constexpr size_t kChunk = 64 * 1024;
  // Not zeroed: recv writes it, and only as much of it as an answer needs is touched.
  auto chunk = std::make_unique_for_overwrite<char[]>(kChunk);
  while (!parser.is_done()) {
    parser.get().body().data = chunk.get();
    parser.get().body().size = kChunk;
    http::read(stream, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return talkError(socketPath_, ec);
    const size_t n = kChunk - parser.get().body().size;
    if (!ok) {
      res.body.append(chunk.get(), n);
      if (res.body.size() > (1u << 20)) return fail(Errc::kInternal, "the daemon's error answer is over 1 MiB");
    } else if (auto s = writeAll(out, chunk.get(), n); !s) {
      return std::unexpected(s.error());
    }
  }
  return res;
}

}  // namespace hv::cli
