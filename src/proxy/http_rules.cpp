#include "proxy/http_rules.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <algorithm>
#include <array>
#include <vector>

namespace hv::proxy {

namespace beast = boost::beast;
using http::field;

namespace {

bool allDigits(std::string_view s) {
  return !s.empty() && s.size() <= 18 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool isDotSegment(std::string_view seg) {
  std::string decoded;
  for (size_t i = 0; i < seg.size(); ++i) {
    if (seg[i] == '%' && i + 2 < seg.size() && seg[i + 1] == '2' && (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
      decoded += '.';
      i += 2;
    } else {
      decoded += seg[i];
    }
  }
  return decoded == "." || decoded == "..";
}

// Merges repeated slashes; false if a segment is "." or "..".
bool canonicalPath(std::string_view raw, std::string& out) {
  out.clear();
  size_t start = 0;
  for (size_t i = 0; i <= raw.size(); ++i) {
    if (i < raw.size() && raw[i] != '/' && raw[i] != '\\') continue;
    if (isDotSegment(raw.substr(start, i - start))) return false;
    start = i + 1;
  }
  for (char c : raw)
    if (c != '/' || !out.ends_with('/')) out += c;
  return true;
}

std::string clientAddress(const boost::asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6()).to_string();
  return a.to_string();
}

}  // namespace

bool hasObsFold(std::string_view bytes) {
  size_t end = bytes.find("\r\n\r\n");
  if (end == std::string_view::npos) end = bytes.find("\n\n");
  const std::string_view head = end == std::string_view::npos ? bytes : bytes.substr(0, end + 1);
  for (size_t nl = head.find('\n'); nl != std::string_view::npos && nl + 1 < head.size(); nl = head.find('\n', nl + 1))
    if (head[nl + 1] == ' ' || head[nl + 1] == '\t') return true;
  return false;
}

std::string framingProblem(const http::request_header<>& req) {
  const size_t lengths = req.count(field::content_length);
  const size_t encodings = req.count(field::transfer_encoding);
  if (req.count(field::host) > 1) return "more than one Host field";
  if (req.version() >= 11 && req.count(field::host) == 0) return "no Host field (HTTP/1.1 requires one)";
  if (lengths > 1) return "more than one Content-Length field";
  if (lengths == 1 && !allDigits(req[field::content_length])) return "Content-Length is not a plain number";
  if (encodings == 0) return "";
  if (encodings > 1) return "more than one Transfer-Encoding field";
  if (lengths) return "both Transfer-Encoding and Content-Length";
  if (req.version() < 11) return "Transfer-Encoding in an HTTP/1.0 request";
  if (!beast::iequals(trim(req[field::transfer_encoding]), "chunked"))
    return "Transfer-Encoding other than \"chunked\"";
  return "";
}

std::optional<Target> parseTarget(std::string_view t) {
  if (std::any_of(t.begin(), t.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f || c == '#'; }))
    return std::nullopt;
  Target out;
  if (!t.starts_with('/')) {
    size_t scheme = 0;
    if (t.size() > 7 && beast::iequals(t.substr(0, 7), "http://")) scheme = 7;
    else if (t.size() > 8 && beast::iequals(t.substr(0, 8), "https://")) scheme = 8;
    else return std::nullopt;
    t.remove_prefix(scheme);
    const size_t end = std::min(t.find('/'), t.find('?'));
    out.host = std::string(t.substr(0, end));
    if (out.host.empty() || out.host.find('@') != std::string::npos) return std::nullopt;
    t = end == std::string_view::npos ? std::string_view("/") : t.substr(end);
  }
  const size_t q = t.find('?');
  std::string_view path = t.substr(0, q);
  if (path.empty()) path = "/";
  if (q != std::string_view::npos) out.query = std::string(t.substr(q));
  if (!canonicalPath(path, out.path) || !out.path.starts_with('/')) return std::nullopt;
  return out;
}

bool isIdempotent(http::verb m) {
  using http::verb;
  return m == verb::get || m == verb::head || m == verb::options || m == verb::put || m == verb::delete_ ||
         m == verb::trace;
}

void removeHopByHop(http::fields& fields) {
  // Fields the message cannot do without: a Connection option naming them is
  // ignored ("Connection: Host" must not strip the Host the route was chosen by).
  static constexpr std::array kEssential = {field::host, field::content_length, field::content_type,
                                            field::authorization, field::cookie, field::set_cookie};
  std::vector<std::string> named;
  for (auto it = fields.find(field::connection); it != fields.end() && it->name() == field::connection; ++it)
    for (auto token : http::token_list(it->value())) {
      const field f = http::string_to_field(token);
      if (std::find(kEssential.begin(), kEssential.end(), f) == kEssential.end()) named.emplace_back(token);
    }
  for (const std::string& name : named) fields.erase(name);
  static constexpr std::array kFixed = {field::connection,        field::keep_alive, field::proxy_connection,
                                        field::te,                field::trailer,    field::transfer_encoding,
                                        field::upgrade};
  for (field f : kFixed) fields.erase(f);
}

void prepareUpstreamRequest(http::request<http::string_body>& req, std::string_view target, const ClientInfo& client,
                            bool upgrade) {
  const std::string upgradeTo(req[field::upgrade]);
  const std::string host(req[field::host]);
  removeHopByHop(req.base());
  req.erase(field::expect);
  for (auto f : {"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Real-IP"})
    req.erase(f);
  req.erase(field::forwarded);
  // A name with '_' is dropped, as nginx does by default (underscores_in_headers
  // off): CGI-style backends map both '-' and '_' to the same variable, so
  // "X_Forwarded_For" would pass for the X-Forwarded-For we set.
  std::vector<std::string> underscored;
  for (const auto& f : req)
    if (f.name_string().find('_') != std::string_view::npos) underscored.emplace_back(f.name_string());
  for (const std::string& name : underscored) req.erase(name);
  const std::string ip = clientAddress(client.address);
  const char* proto = client.tls ? "https" : "http";
  req.set("X-Forwarded-For", ip);
  req.set("X-Real-IP", ip);
  req.set("X-Forwarded-Proto", proto);
  if (!host.empty()) req.set("X-Forwarded-Host", host);
  std::string forwarded = ip.find(':') == std::string::npos ? "for=" + ip : "for=\"[" + ip + "]\"";
  if (!host.empty()) forwarded += ";host=\"" + host + "\"";
  forwarded += std::string(";proto=") + proto;
  req.set(field::forwarded, forwarded);
  req.target(target);
  req.version(11);
  if (upgrade) {
    req.set(field::connection, "Upgrade");
    req.set(field::upgrade, upgradeTo);
  }
  // Set by hand: Beast's prepare_payload() throws on a TRACE with a body.
  const size_t n = req.body().size();
  const auto m = req.method();
  if (n > 0 || m == http::verb::post || m == http::verb::put || m == http::verb::patch)
    req.set(field::content_length, std::to_string(n));
  else
    req.erase(field::content_length);
}

bool prepareClientResponse(http::response_header<>& res, bool clientKeepAlive, bool chunked, bool toEof) {
  res.version(11);
  removeHopByHop(res);
  if (chunked || toEof) {
    res.erase(field::content_length);
    // A body of unknown length can be framed with chunks for an HTTP/1.1 client
    // that stays; otherwise it ends when we close.
    if (clientKeepAlive) res.set(field::transfer_encoding, "chunked");
  }
  if (!clientKeepAlive) res.set(field::connection, "close");
  return clientKeepAlive;
}

}  // namespace hv::proxy
