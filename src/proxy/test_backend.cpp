// TestBackend: the in-process HTTP / WebSocket backend of the loopback tests.
#include <sys/socket.h>

#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <sstream>

#include "proxy/test_support.h"

namespace hv::proxy::test {

using boost::system::error_code;

TestBackend::TestBackend(std::string name, Mode mode)
    : name_(std::move(name)), mode_(mode), acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
  port_ = acceptor_.local_endpoint().port();
  acceptThread_ = std::thread([this] { acceptLoop(); });
}

TestBackend::~TestBackend() { stop(); }

void TestBackend::stop() {
  if (stopping_.exchange(true)) return;
  ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes the blocking accept
  {
    std::lock_guard lock(mutex_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  acceptThread_.join();
  for (auto& t : threads_) t.join();
}

void TestBackend::closeConnections() {
  std::lock_guard lock(mutex_);
  for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
}

void TestBackend::acceptLoop() {
  for (;;) {
    error_code ec;
    tcp::socket socket(io_);
    acceptor_.accept(socket, ec);
    if (ec || stopping_) return;
    ++connections_;
    std::lock_guard lock(mutex_);
    fds_.push_back(socket.native_handle());
    threads_.emplace_back([this, s = std::move(socket)]() mutable { serve(std::move(s)); });
  }
}

namespace {

Response echoResponse(const std::string& name, const Request& req) {
  Response res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain");
  const std::string target(req.target());
  auto number = [&](std::string_view prefix) { return std::stoul(target.substr(prefix.size())); };
  if (target.starts_with("/size/") || target.starts_with("/chunked/")) {
    res.body() = std::string(number(target.starts_with("/size/") ? "/size/" : "/chunked/"), 'x');
    if (target.starts_with("/chunked/")) res.chunked(true);
  } else {
    std::ostringstream out;
    out << "backend=" << name << "\nmethod=" << req.method_string() << "\ntarget=" << target << "\n";
    for (const auto& f : req) {
      std::string key(f.name_string());
      for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out << "header:" << key << "=" << f.value() << "\n";
    }
    out << "body=" << req.body() << "\n";
    res.body() = out.str();
  }
  if (target == "/hop") {
    res.set(http::field::connection, "X-Secret");
    res.set("X-Secret", "1");
    res.set(http::field::keep_alive, "timeout=5");
    res.set(http::field::proxy_connection, "keep-alive");
    res.set("X-Kept", "1");
  }
  if (!res.chunked()) res.prepare_payload();
  return res;
}

}  // namespace

void TestBackend::serve(tcp::socket socket) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    error_code ec;
    http::read(socket, buffer, parser, ec);
    if (ec) break;
    Request req = parser.release();
    ++requests_;
    if (mode_ == Mode::kReset) {
      socket.set_option(asio::socket_base::linger(true, 0), ec);
      break;
    }
    if (beast::websocket::is_upgrade(req)) {
      serveUpgrade(socket, buffer, req);
      break;
    }
    const std::string target(req.target());
    if (target.starts_with("/eof/")) {
      const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
      asio::write(socket, asio::buffer(head + std::string(std::stoul(target.substr(5)), 'e')), ec);
      break;
    }
    Response res = echoResponse(name_, req);
    http::write(socket, res, ec);
    if (ec || !req.keep_alive()) break;
  }
  std::lock_guard lock(mutex_);
  std::erase(fds_, socket.native_handle());
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

bool TestBackend::serveUpgrade(tcp::socket& socket, beast::flat_buffer& buffer, Request& req) {
  error_code ec;
  if (mode_ == Mode::kRawUpgrade) {
    asio::write(socket,
                asio::buffer(std::string_view("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                              "Connection: Upgrade\r\n\r\nwelcome\n")),
                ec);
    char data[4096];
    for (;;) {
      const size_t n = socket.read_some(asio::buffer(data), ec);
      if (ec) break;
      asio::write(socket, asio::buffer(data, n), ec);
    }
    if (ec != asio::error::eof) return false;
    asio::write(socket, asio::buffer(std::string_view("bye\n")), ec);
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.read_some(asio::buffer(data), ec);  // until the proxy closes
    return true;
  }
  websocket::stream<tcp::socket&> ws(socket);
  ws.read_message_max(8 << 20);
  ws.accept(req, ec);
  while (!ec) {
    buffer.clear();
    ws.read(buffer, ec);
    if (ec) break;
    ws.text(ws.got_text());
    ws.write(buffer.data(), ec);
  }
  return true;
}

}  // namespace hv::proxy::test
