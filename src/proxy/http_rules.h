// HTTP rules for messages crossing the proxy (RFC 9110, RFC 9112): request
// framing checks (the smuggling patterns nginx rejects), target parsing and
// canonical paths, hop-by-hop removal, X-Forwarded-* / Forwarded, and the
// response framing we send to clients. Pure functions; any thread.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace hv::proxy {

namespace http = boost::beast::http;

// True when the head (the bytes before the first empty line; all of `bytes`
// if none yet) contains obs-fold, CRLF followed by SP or HTAB. Beast accepts
// it; RFC 9112 5.2 lets a server reject it, and nginx does.
bool hasObsFold(std::string_view bytes);

// Why a parsed request head is refused with 400, or "" when it is acceptable:
// Transfer-Encoding with Content-Length, more than one of either, a
// Transfer-Encoding other than exactly "chunked", Transfer-Encoding in
// HTTP/1.0, a Content-Length that is not plain digits, no Host or several.
// Beast rejects differing Content-Lengths and bad chunk sizes itself.
std::string framingProblem(const http::request_header<>& req);

// A request target split into what routing needs.
struct Target {
  std::string host;   // from an absolute-form target ("http://h/p"), else ""
  std::string path;   // canonical: starts with '/', repeated slashes merged
  std::string query;  // "" or "?..."
};

// Parses origin-form ("/p?q") or absolute-form ("http://h/p?q") targets.
// nullopt for other forms, control characters, or a "." / ".." segment
// (also %2e-encoded or with '\' as separator): routes and their access rules
// must not be escaped by a path that the backend would resolve elsewhere.
std::optional<Target> parseTarget(std::string_view target);

bool isIdempotent(http::verb method);

// Removes Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding, Upgrade and every field named in Connection (RFC 9110
// 7.6.1) except the essential ones (Host, Content-Length, Content-Type,
// Authorization, Cookie, Set-Cookie), which no Connection option removes.
void removeHopByHop(http::fields& fields);

struct ClientInfo {
  boost::asio::ip::address address;
  bool tls = false;
};

// Rewrites a received request for the upstream: hop-by-hop fields removed,
// fields whose name has an underscore dropped (as nginx does),
// Expect dropped (the proxy answered 100-continue itself), the client's
// X-Forwarded-*/X-Real-IP/Forwarded replaced by ours (this proxy is the edge:
// what a client claims there cannot be trusted), the target set, and for a
// WebSocket upgrade "Connection: Upgrade" + its Upgrade field restored.
void prepareUpstreamRequest(http::request<http::string_body>& req, std::string_view target,
                            const ClientInfo& client, bool upgrade);

// Rewrites an upstream response head for the client. `chunked` = the upstream
// sent it chunked; `toEof` = its body ends when the upstream closes. Returns
// whether the client connection can stay open after it.
bool prepareClientResponse(http::response_header<>& res, bool clientKeepAlive, bool chunked, bool toEof);

}  // namespace hv::proxy
