// Private to src/api: one request in flight (its parsed target and the way
// to answer), shared by the instance and account handlers.
#pragma once

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <map>
#include <string>
#include <vector>

#include "api/api.h"
#include "api/wire/wire.h"
#include "base/strings.h"

namespace hv::api {

namespace http = boost::beast::http;
namespace json = boost::json;

// One request in flight: its parsed target and the way to answer.
struct Api::Call {
  const Request& req;
  Respond respond;
  std::vector<std::string> segments;
  std::map<std::string, std::string> query;

  void send(int status, std::string body, std::string_view type = "application/json") {
    Response res{static_cast<http::status>(status), req.version()};
    res.set(http::field::server, "hostvisor");
    res.set(http::field::content_type, type);
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(req.keep_alive());
    // JSON carries names and messages that may hold any bytes (a path, a
    // program's words): ill-formed UTF-8 becomes U+FFFD, so clients can parse it.
    res.body() = type == "application/json" ? toValidUtf8(body) : std::move(body);
    res.prepare_payload();
    respond(std::move(res));
  }
  void sendJson(int status, const json::value& v) { send(status, json::serialize(v) + "\n"); }
  void sendError(const Error& e) {
    send(wire::httpStatusOf(e.code), wire::errorBody(errcName(e.code), e.message) + "\n");
  }
  void sendError(int status, std::string_view code, std::string_view message) {
    send(status, wire::errorBody(code, message) + "\n");
  }
  bool flag(const std::string& key) const {
    auto it = query.find(key);
    return it != query.end() && (it->second == "1" || it->second == "true" || it->second.empty());
  }
};


// The body as a JSON object, or an error naming what is wrong with it.
inline Result<json::object> parseObject(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return fail(Errc::kInvalidArgument, "the body is not valid JSON: " + ec.message());
  if (!v.is_object()) return fail(Errc::kInvalidArgument, "the body must be a JSON object");
  return std::move(v.as_object());
}

}  // namespace hv::api
