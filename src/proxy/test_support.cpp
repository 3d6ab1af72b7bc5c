#include "proxy/test_support.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <filesystem>
#include <sstream>

namespace hv::proxy::test {

using boost::system::error_code;

bool runUntil(asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  io.restart();
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    io.run_one_until(end);
    if (io.stopped()) io.restart();
  }
  return true;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// ---- Client ----

namespace {

tcp::endpoint parseAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  return {asio::ip::make_address(address.substr(0, colon)), static_cast<uint16_t>(std::stoi(address.substr(colon + 1)))};
}

}  // namespace

Client::Client(std::chrono::milliseconds limit) : limit_(limit), socket_(io_) {}

#define HV_AWAIT(start)                                                    \
  do {                                                                     \
    bool done = false;                                                     \
    start;                                                                 \
    if (!runUntil(io_, [&] { return done; }, limit_)) {                    \
      socket_.cancel();                                                    \
      runUntil(io_, [&] { return done; }, 1s);                             \
      ec_ = asio::error::timed_out;                                        \
    }                                                                      \
  } while (0)

bool Client::connect(const std::string& address) {
  HV_AWAIT(socket_.async_connect(parseAddress(address), [&](error_code ec) { ec_ = ec, done = true; }));
  return !ec_;
}

bool Client::write(std::string_view bytes) {
  HV_AWAIT(asio::async_write(socket_, asio::buffer(bytes), [&](error_code ec, size_t) { ec_ = ec, done = true; }));
  return !ec_;
}

std::optional<Response> Client::read(bool forHead) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  if (forHead) parser.skip(true);
  HV_AWAIT(http::async_read(socket_, buffer_, parser, [&](error_code ec, size_t) { ec_ = ec, done = true; }));
  if (ec_) return std::nullopt;
  return parser.release();
}

std::optional<Response> Client::request(Request req) {
  if (!req.has_content_length() && !req.body().empty()) req.prepare_payload();
  std::ostringstream out;
  out << req;
  if (!write(out.str())) return std::nullopt;
  return read(req.method() == http::verb::head);
}

std::optional<Response> Client::get(const std::string& target, const std::string& host) {
  Request req{http::verb::get, target, 11};
  req.set(http::field::host, host);
  return request(std::move(req));
}

std::string Client::readUntilClosed() {
  const auto data = buffer_.data();
  std::string out(static_cast<const char*>(data.data()), data.size());
  buffer_.consume(buffer_.size());
  for (;;) {
    char chunk[8192];
    size_t got = 0;
    HV_AWAIT(socket_.async_read_some(asio::buffer(chunk), [&](error_code ec, size_t n) { ec_ = ec, got = n, done = true; }));
    out.append(chunk, got);
    if (ec_) return out;
  }
}

bool Client::closedWithin(std::chrono::milliseconds limit) {
  const auto saved = limit_;
  limit_ = limit;
  readUntilClosed();
  limit_ = saved;
  return ec_ == asio::error::eof || ec_ == asio::error::connection_reset;
}

void Client::shutdownSend() {
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

#undef HV_AWAIT

// ---- WsClient ----

WsClient::WsClient() : ws_(io_) { ws_.read_message_max(8 << 20); }

#define HV_WS_AWAIT(start, limit)                                   \
  do {                                                              \
    bool done = false;                                              \
    start;                                                          \
    if (!runUntil(io_, [&] { return done; }, limit)) {              \
      beast::get_lowest_layer(ws_).cancel();                        \
      runUntil(io_, [&] { return done; }, 1s);                      \
      result = asio::error::timed_out;                              \
    }                                                               \
  } while (0)

bool WsClient::connect(const std::string& address, const std::string& host, const std::string& target) {
  error_code result;
  HV_WS_AWAIT(beast::get_lowest_layer(ws_).async_connect(parseAddress(address), [&](error_code ec) { result = ec, done = true; }),
              kWait);
  if (result) return false;
  HV_WS_AWAIT(ws_.async_handshake(host, target, [&](error_code ec) { result = ec, done = true; }), kWait);
  return !result;
}

bool WsClient::send(const std::string& message, bool binary) {
  error_code result;
  ws_.binary(binary);
  HV_WS_AWAIT(ws_.async_write(asio::buffer(message), [&](error_code ec, size_t) { result = ec, done = true; }), kWait);
  return !result;
}

std::optional<std::string> WsClient::receive(bool* binary) {
  error_code result;
  buffer_.clear();
  HV_WS_AWAIT(ws_.async_read(buffer_, [&](error_code ec, size_t) { result = ec, done = true; }), kWait);
  if (result) return std::nullopt;
  if (binary) *binary = ws_.got_binary();
  return beast::buffers_to_string(buffer_.data());
}

error_code WsClient::waitClosed(std::chrono::milliseconds limit) {
  error_code result;
  buffer_.clear();
  HV_WS_AWAIT(ws_.async_read(buffer_, [&](error_code ec, size_t) { result = ec, done = true; }), limit);
  return result;
}

bool WsClient::close() {
  error_code result;
  HV_WS_AWAIT(ws_.async_close(websocket::close_code::normal, [&](error_code ec) { result = ec, done = true; }), kWait);
  return !result;
}

#undef HV_WS_AWAIT

// ---- TlsClient ----

TlsClient::TlsClient() : ctx_(asio::ssl::context::tls_client), stream_(io_, ctx_) {
  ctx_.set_verify_mode(asio::ssl::verify_none);
}

bool TlsClient::connect(const std::string& address, const std::string& sni) {
  error_code result;
  bool done = false;
  stream_.lowest_layer().async_connect(parseAddress(address), [&](error_code ec) { result = ec, done = true; });
  if (!runUntil(io_, [&] { return done; }) || result) return false;
  if (!sni.empty()) SSL_set_tlsext_host_name(stream_.native_handle(), sni.c_str());
  done = false;
  stream_.async_handshake(asio::ssl::stream_base::client, [&](error_code ec) { result = ec, done = true; });
  return runUntil(io_, [&] { return done; }) && !result;
}

std::string TlsClient::peerCommonName() {
  X509* cert = SSL_get1_peer_certificate(stream_.native_handle());
  if (!cert) return "";
  char name[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof name);
  X509_free(cert);
  return name;
}

std::optional<Response> TlsClient::get(const std::string& target, const std::string& host) {
  Request req{http::verb::get, target, 11};
  req.set(http::field::host, host);
  error_code result;
  bool done = false;
  http::async_write(stream_, req, [&](error_code ec, size_t) { result = ec, done = true; });
  if (!runUntil(io_, [&] { return done; }) || result) return std::nullopt;
  Response res;
  done = false;
  http::async_read(stream_, buffer_, res, [&](error_code ec, size_t) { result = ec, done = true; });
  if (!runUntil(io_, [&] { return done; }) || result) return std::nullopt;
  return res;
}

// ---- files, certificates, helpers ----

TempDir::TempDir() {
  char tmpl[] = "/tmp/hv-proxy-test-XXXXXX";
  path_ = ::mkdtemp(tmpl);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

Certificate makeCertificate(const std::string& dir, const std::string& name, const std::string& commonName,
                            const std::string& host) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  static std::atomic<long> serial{1};
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME* subject = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(commonName.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(x, subject);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  const std::string san = "DNS:" + commonName;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x, key, EVP_sha256());
  Certificate c{host, dir + "/" + name + ".crt", dir + "/" + name + ".key"};
  FILE* certFile = std::fopen(c.certFile.c_str(), "w");
  PEM_write_X509(certFile, x);
  std::fclose(certFile);
  FILE* keyFile = std::fopen(c.keyFile.c_str(), "w");
  PEM_write_PrivateKey(keyFile, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(keyFile);
  X509_free(x);
  EVP_PKEY_free(key);
  return c;
}

std::unique_ptr<Proxy> startProxy(Limits limits, unsigned threads, std::string tlsListen,
                                  std::vector<Certificate> certificates, TunnelOffloadMode offload) {
  ProxyConfig config;
  config.listen = "127.0.0.1:0";
  config.tlsListen = std::move(tlsListen);
  config.threads = threads;
  config.limits = limits;
  config.certificates = std::move(certificates);
  config.tunnelOffload = offload;
  auto proxy = Proxy::start(std::move(config));
  if (!proxy) {
    ADD_FAILURE() << proxy.error().message;
    return nullptr;
  }
  return std::move(*proxy);
}

Route routeTo(const std::string& prefix, std::vector<uint16_t> ports, const std::string& host,
              const std::string& name) {
  Route r;
  r.name = name;
  r.host = host;
  r.pathPrefix = prefix;
  for (uint16_t port : ports) r.upstreams.push_back(Upstream{"127.0.0.1", port, Upstream::Health::kUp});
  return r;
}

uint16_t deadPort() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

std::string echoed(const std::string& body, const std::string& key) {
  const std::string needle = key + "=";
  size_t at = body.starts_with(needle) ? 0 : body.find("\n" + needle);
  if (at == std::string::npos) return "";
  if (at != 0 || !body.starts_with(needle)) ++at;
  at += needle.size();
  return body.substr(at, body.find('\n', at) - at);
}

}  // namespace hv::proxy::test
