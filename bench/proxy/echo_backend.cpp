// echo_backend: the one backend behind every side of the proxy benchmark
// (direct, hostvisor, nginx). Single-threaded Asio, plain TCP on 127.0.0.1.
//
//   echo_backend PORT
//
// HTTP/1.1: every request (Beast parser, keep-alive, pipelining) gets the same
// small "200 hello" answer. A WebSocket upgrade gets its 101 (accept key via
// OpenSSL SHA-1), then every data frame is echoed back unmasked with the same
// opcode and FIN bit; ping → pong, close → close + FIN. The frame loop is
// hand-written rather than beast::websocket so the backend costs as little
// CPU as possible: it shares a core with the load generator.
// GET /__bench/accepts answers the number of connections accepted so far (the
// benchmark asks directly, around a wrk run, to count new upstream connections).
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

const std::string kHello = "hello, world\n";
const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                              std::to_string(kHello.size()) + "\r\n\r\n" + kHello;

uint64_t g_accepts = 0;

std::string acceptKey(std::string_view key) {
  std::string in(key);
  in += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  unsigned char out[64];
  const int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket s) : socket_(std::move(s)) {}
  void start() { read(); }

 private:
  void read() {
    if (in_.size() - used_ < 2048) in_.resize(std::max<size_t>(in_.size() * 2, 4096));
    socket_.async_read_some(asio::buffer(in_.data() + used_, in_.size() - used_),
                            [self = shared_from_this()](error_code ec, size_t n) { self->onRead(ec, n); });
  }

  void onRead(error_code ec, size_t n) {
    if (ec) return;
    used_ += n;
    out_.clear();
    size_t consumed = ws_ ? frames() : requests();
    if (consumed == SIZE_MAX) return;  // protocol error or close: drop
    std::memmove(in_.data(), in_.data() + consumed, used_ - consumed);
    used_ -= consumed;
    if (out_.empty()) return closeAfter_ ? finish() : read();
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this()](error_code ec, size_t) {
      if (ec) return;
      if (self->closeAfter_) return self->finish();
      if (self->used_ > 0) return self->onRead({}, 0);  // a complete message may wait in the buffer
      self->read();
    });
  }

  void finish() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
  }

  // HTTP: answers every complete request in the buffer; returns bytes consumed.
  size_t requests() {
    size_t at = 0;
    while (at < used_ && !ws_ && !closeAfter_) {
      if (!parser_) {
        parser_.emplace();
        parser_->body_limit(1 << 20);
        parser_->eager(true);
      }
      error_code ec;
      const size_t n = parser_->put(asio::buffer(in_.data() + at, used_ - at), ec);
      at += n;
      if (ec == http::error::need_more) break;
      if (ec) return SIZE_MAX;
      if (!parser_->is_done()) {
        if (n == 0) break;
        continue;
      }
      auto req = parser_->release();
      parser_.reset();
      if (beast::websocket::is_upgrade(req)) {
        out_ += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " + acceptKey(req[http::field::sec_websocket_key]) + "\r\n\r\n";
        ws_ = true;
        break;
      }
      if (req.target() == "/__bench/accepts") {
        const std::string n = std::to_string(g_accepts);
        out_ += "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(n.size()) +
                "\r\n\r\n" + n;
      } else {
        out_ += kResponse;
      }
      if (!req.keep_alive()) closeAfter_ = true;
    }
    if (ws_ && at < used_) {  // frames sent right behind the upgrade request
      std::memmove(in_.data(), in_.data() + at, used_ - at);
      used_ -= at;
      at = 0;
      const size_t more = frames();
      return more == SIZE_MAX ? SIZE_MAX : more;
    }
    return at;
  }

  // WebSocket: echoes every complete frame in the buffer; returns bytes consumed.
  size_t frames() {
    size_t at = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(in_.data());
    while (used_ - at >= 2) {
      const unsigned char b0 = p[at], b1 = p[at + 1];
      const unsigned opcode = b0 & 0x0f;
      const bool masked = b1 & 0x80;
      uint64_t len = b1 & 0x7f;
      size_t head = 2;
      if (len == 126) {
        if (used_ - at < 4) break;
        len = (uint64_t(p[at + 2]) << 8) | p[at + 3];
        head = 4;
      } else if (len == 127) {
        if (used_ - at < 10) break;
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | p[at + 2 + i];
        head = 10;
      }
      if (len > (16u << 20)) return SIZE_MAX;
      const size_t maskAt = at + head;
      if (masked) head += 4;
      if (used_ - at < head + len) {
        if (in_.size() < head + len + 2048) in_.resize(head + len + 4096);
        break;
      }
      const unsigned char* payload = p + at + head;
      const unsigned char* mask = p + maskAt;
      unsigned char outOp = b0;
      if (opcode == 0x9) outOp = (b0 & 0xf0) | 0xA;  // ping → pong
      if (opcode == 0xA) {                            // unsolicited pong: ignore
        at += head + len;
        continue;
      }
      out_.push_back(static_cast<char>(outOp));
      if (len < 126) {
        out_.push_back(static_cast<char>(len));
      } else if (len < 65536) {
        out_.push_back(126);
        out_.push_back(static_cast<char>(len >> 8));
        out_.push_back(static_cast<char>(len & 0xff));
      } else {
        out_.push_back(127);
        for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
      }
      const size_t start = out_.size();
      out_.append(reinterpret_cast<const char*>(payload), len);
      if (masked)
        for (size_t i = 0; i < len; ++i) out_[start + i] = static_cast<char>(out_[start + i] ^ mask[i & 3]);
      at += head + len;
      if (opcode == 0x8) {
        closeAfter_ = true;
        break;
      }
    }
    return at;
  }

  tcp::socket socket_;
  std::vector<char> in_;
  size_t used_ = 0;
  std::string out_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool ws_ = false;
  bool closeAfter_ = false;
};

void accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](error_code ec, tcp::socket s) {
    if (!ec) {
      ++g_accepts;
      s.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(std::move(s))->start();
    } else if (ec == asio::error::no_descriptors) {
      std::fprintf(stderr, "echo_backend: accept: %s\n", ec.message().c_str());
    }
    accept(acceptor);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const char* portText = argc > 1 ? argv[1] : std::getenv("PORT");
  if (!portText) {
    std::fprintf(stderr, "usage: echo_backend PORT (or $PORT)\n");
    return 2;
  }
  asio::io_context io(1);
  tcp::acceptor acceptor(io);
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(std::atoi(portText)));
  acceptor.open(ep.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(ep);
  acceptor.listen(4096);
  accept(acceptor);
  asio::signal_set stop(io, SIGTERM, SIGINT);
  stop.async_wait([&](error_code, int) { io.stop(); });
  std::fprintf(stderr, "echo_backend: listening on 127.0.0.1:%s\n", portText);
  io.run();
  return 0;
}
