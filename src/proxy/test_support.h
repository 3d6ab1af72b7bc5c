// Test support for the proxy's loopback tests: in-process backends on
// 127.0.0.1:0 and clients whose every wait is bounded (default 5 s), plus
// self-signed certificates made at run time. Test code only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "proxy/proxy.h"

namespace hv::proxy::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using Response = http::response<http::string_body>;
using Request = http::request<http::string_body>;

constexpr std::chrono::milliseconds kWait = 5s;

// Runs `io` until `done()` is true or `limit` has passed; returns done().
bool runUntil(asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds limit = kWait);

// Polls `condition` every few ms until true or `limit`; for state that has no event to wait on.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = kWait);

// A backend on 127.0.0.1:0, one thread per connection.
//  kEcho: answers every request with lines "backend=NAME", "method=..",
//    "target=..", "body=..", and "NAME: value" per received field; special
//    targets: /size/N (N bytes), /chunked/N, /eof/N (no length, closes),
//    /hop (hop-by-hop response fields). A WebSocket upgrade gets an echo
//    server that answers each message with the same message.
//  kRawUpgrade: answers an upgrade with a raw 101 followed at once by
//    "welcome\n", echoes raw bytes, and on EOF writes "bye\n" and shuts down.
//  kReset: reads a request, then resets the connection without answering.
class TestBackend {
 public:
  enum class Mode { kEcho, kRawUpgrade, kReset };
  explicit TestBackend(std::string name = "backend", Mode mode = Mode::kEcho);
  ~TestBackend();

  uint16_t port() const { return port_; }
  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }
  void stop();
  // Closes every connection it serves (a keep-alive timeout, a restart) and
  // keeps listening.
  void closeConnections();

 private:
  void acceptLoop();
  void serve(tcp::socket socket);
  bool serveUpgrade(tcp::socket& socket, beast::flat_buffer& buffer, Request& req);

  std::string name_;
  Mode mode_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<int> requests_{0}, connections_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread acceptThread_;
};

// A plain HTTP/1.1 client; each call waits at most `limit`.
class Client {
 public:
  explicit Client(std::chrono::milliseconds limit = kWait);
  bool connect(const std::string& address);  // "127.0.0.1:PORT"
  bool write(std::string_view bytes);
  std::optional<Response> read(bool forHead = false);
  std::optional<Response> request(Request req);
  std::optional<Response> get(const std::string& target, const std::string& host = "app.test");
  std::string readUntilClosed();  // everything until EOF or reset (or the limit)
  bool closedWithin(std::chrono::milliseconds limit);
  void shutdownSend();
  boost::system::error_code error() const { return ec_; }
  tcp::socket& socket() { return socket_; }

 private:
  std::chrono::milliseconds limit_;
  asio::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  boost::system::error_code ec_;
};

// A WebSocket client (Beast) through the proxy.
class WsClient {
 public:
  WsClient();
  bool connect(const std::string& address, const std::string& host, const std::string& target);
  bool send(const std::string& message, bool binary);
  std::optional<std::string> receive(bool* binary = nullptr);
  // Waits for the connection to end; returns the error that ended it.
  boost::system::error_code waitClosed(std::chrono::milliseconds limit);
  bool close();

 private:
  asio::io_context io_;
  websocket::stream<tcp::socket> ws_;
  beast::flat_buffer buffer_;
};

// A TLS client that sets SNI and verifies nothing (the certificates are ours).
class TlsClient {
 public:
  TlsClient();
  bool connect(const std::string& address, const std::string& sni);
  std::string peerCommonName();
  std::optional<Response> get(const std::string& target, const std::string& host);

 private:
  asio::io_context io_;
  asio::ssl::context ctx_;
  asio::ssl::stream<tcp::socket> stream_;
  beast::flat_buffer buffer_;
};

// A temporary directory, removed with its files on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes a self-signed P-256 certificate for `commonName` (also its SAN) into
// dir/NAME.crt and dir/NAME.key; returns them as a Certificate for `host`.
Certificate makeCertificate(const std::string& dir, const std::string& name, const std::string& commonName,
                            const std::string& host);

// A proxy on 127.0.0.1:0 with one loop (deterministic balancing) unless told.
std::unique_ptr<Proxy> startProxy(Limits limits = {}, unsigned threads = 1, std::string tlsListen = "",
                                  std::vector<Certificate> certificates = {},
                                  TunnelOffloadMode offload = TunnelOffloadMode::kOff);

// A route to upstreams on 127.0.0.1 at `ports`, all up.
Route routeTo(const std::string& prefix, std::vector<uint16_t> ports, const std::string& host = "",
              const std::string& name = "app");

// A port on 127.0.0.1 where nothing listens (bound, then closed).
uint16_t deadPort();

// The value of "key=..." or "key: ..." lines in an echo body ("" if absent).
std::string echoed(const std::string& body, const std::string& key);

}  // namespace hv::proxy::test
