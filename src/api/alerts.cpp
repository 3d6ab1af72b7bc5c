#include "api/alerts.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include "api/event_stream.h"

namespace hv::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

struct Target {
  bool tls = false;
  std::string host, port, path;
};

std::optional<Target> parseUrl(const std::string& url) {
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u || u->host().empty()) return std::nullopt;
  Target t;
  t.tls = u->scheme() == "https";
  t.host = u->host();
  if (t.host.size() > 2 && t.host.front() == '[') t.host = t.host.substr(1, t.host.size() - 2);
  t.port = u->has_port() ? std::string(u->port()) : (t.tls ? "443" : "80");
  t.path = u->encoded_target().empty() ? "/" : std::string(u->encoded_target());
  return t;
}

// One POST, tried up to kAttempts times. Holds itself alive through its handlers.
class Delivery : public std::enable_shared_from_this<Delivery> {
 public:
  Delivery(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls, Target target, std::string url,
           std::string body, std::shared_ptr<uint64_t> delivered, std::shared_ptr<uint64_t> failed)
      : io_(io), tls_(std::move(tls)), target_(std::move(target)), url_(std::move(url)), body_(std::move(body)),
        resolver_(io), pause_(io), delivered_(std::move(delivered)), failed_(std::move(failed)) {}

  void start() { attempt(); }

 private:
  void attempt() {
    ++attempts_;
    plain_.reset();
    secure_.reset();
    if (target_.tls) {
      secure_.emplace(io_, *tls_);
      SSL_set_tlsext_host_name(secure_->native_handle(), target_.host.c_str());  // SNI
      secure_->set_verify_callback(asio::ssl::host_name_verification(target_.host));
    } else {
      plain_.emplace(io_);
    }
    lowest().expires_after(Alerts::kAttemptTimeout);
    resolver_.async_resolve(target_.host, target_.port,
                            [self = shared_from_this()](error_code ec, tcp::resolver::results_type r) {
                              if (ec) return self->retry("resolve: " + ec.message());
                              self->lowest().async_connect(r, [self](error_code ec2, const tcp::endpoint&) {
                                if (ec2) return self->retry("connect: " + ec2.message());
                                self->onConnected();
                              });
                            });
  }

  beast::tcp_stream& lowest() { return secure_ ? beast::get_lowest_layer(*secure_) : *plain_; }

  void onConnected() {
    if (!secure_) return send();
    secure_->async_handshake(asio::ssl::stream_base::client, [self = shared_from_this()](error_code ec) {
      if (ec) return self->retry("TLS: " + ec.message());
      self->send();
    });
  }

  void send() {
    request_ = {http::verb::post, target_.path, 11};
    request_.set(http::field::host, target_.host);
    request_.set(http::field::user_agent, "hostvisor-alerts");
    request_.set(http::field::content_type, "application/json");
    request_.body() = body_;
    request_.prepare_payload();
    auto onWritten = [self = shared_from_this()](error_code ec, size_t) {
      if (ec) return self->retry("send: " + ec.message());
      self->readAnswer();
    };
    if (secure_) http::async_write(*secure_, request_, onWritten);
    else http::async_write(*plain_, request_, onWritten);
  }

  void readAnswer() {
    auto onRead = [self = shared_from_this()](error_code ec, size_t) {
      if (ec) return self->retry("answer: " + ec.message());
      const unsigned status = self->response_.result_int();
      if (status / 100 != 2) return self->retry(fmt::format("answered {}", status));
      ++*self->delivered_;
      self->close();
    };
    response_ = {};
    if (secure_) http::async_read(*secure_, buffer_, response_, onRead);
    else http::async_read(*plain_, buffer_, response_, onRead);
  }

  void close() {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close();
  }

  void retry(const std::string& why) {
    close();
    if (attempts_ >= Alerts::kAttempts) {
      ++*failed_;
      spdlog::warn("alert webhook {}: given up after {} attempts: {}", url_, attempts_, why);
      return;
    }
    spdlog::info("alert webhook {}: attempt {} failed ({}); trying again", url_, attempts_, why);
    pause_.expires_after(std::chrono::seconds(attempts_ * attempts_));  // 1 s, then 4 s
    pause_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->attempt();
    });
  }

  asio::io_context& io_;
  std::shared_ptr<asio::ssl::context> tls_;
  Target target_;
  std::string url_, body_;
  tcp::resolver resolver_;
  asio::steady_timer pause_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  beast::flat_buffer buffer_;
  int attempts_ = 0;
  std::shared_ptr<uint64_t> delivered_, failed_;
};

}  // namespace

Alerts::Alerts(asio::io_context& io, store::Database& db, std::shared_ptr<EventHub> events)
    : io_(io), db_(db), events_(std::move(events)),
      tls_(std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client)) {
  tls_->set_default_verify_paths();
  tls_->set_verify_mode(asio::ssl::verify_peer);
}

void Alerts::raise(const std::string& instance, const std::string& account, std::string_view kind,
                   const std::string& reason) {
  const auto now = std::chrono::steady_clock::now();
  Quiet& q = quiet_[instance];
  // "fatal" always goes out: it is the last word (nothing restarts it) and
  // most often comes a few seconds after its "crash_loop".
  if (now < q.until && kind != "fatal") {
    ++q.suppressed;
    return;
  }
  const int suppressed = std::exchange(q.suppressed, 0);
  q.until = now + kQuiet;
  const auto wall = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  json::object alert{{"instance", instance}, {"account", account}, {"kind", kind}, {"reason", reason},
                     {"time", fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", wall)}, {"suppressed", suppressed}};
  spdlog::warn("alert: instance {} of account {}: {}: {}", instance, account, kind, reason);
  events_->broadcast(account, json::serialize(json::object{{"type", "alert"}, {"alert", alert}}));
  auto found = db_.findAccount(account);
  if (!found || !*found || (*found)->webhook.empty()) return;
  deliver((*found)->webhook, json::serialize(alert));
}

void Alerts::deliver(const std::string& url, std::string body) {
  auto target = parseUrl(url);
  if (!target) {
    ++*failed_;
    spdlog::warn("alert webhook {}: not an http(s) URL", url);
    return;
  }
  std::make_shared<Delivery>(io_, tls_, std::move(*target), url, std::move(body), delivered_, failed_)->start();
}

}  // namespace hv::api
