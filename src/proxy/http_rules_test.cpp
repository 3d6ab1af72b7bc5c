#include "proxy/http_rules.h"

#include <gtest/gtest.h>

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

namespace hv::proxy {
namespace {

namespace beast = boost::beast;

// Parses a request head with Beast; returns the parse error, or the framing problem.
std::string check(std::string_view head) {
  http::request_parser<http::empty_body> p;
  p.eager(false);
  beast::error_code ec;
  p.put(boost::asio::buffer(head.data(), head.size()), ec);
  if (ec) return "beast: " + ec.message();
  if (!p.is_header_done()) return "incomplete";
  return framingProblem(p.get());
}

TEST(HttpRules, FramingMatrix) {
  using namespace std::literals;
  struct Row {
    std::string_view head;
    bool ok;
  };
  const Row rows[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", true},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", true},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n\r\n", true},
      {"GET / HTTP/1.0\r\n\r\n", true},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", false},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", false},
      {"GET / HTTP/1.1\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"sv, false},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"sv, false},
  };
  for (const Row& row : rows) {
    const std::string result = check(row.head);
    EXPECT_EQ(result.empty(), row.ok) << row.head << " → " << result;
  }
}

TEST(HttpRules, DetectsObsFold) {
  EXPECT_TRUE(hasObsFold("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"));
  EXPECT_TRUE(hasObsFold("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"));
  EXPECT_TRUE(hasObsFold("GET / HTTP/1.1\r\n Host: a\r\n"));  // incomplete head counts too
  EXPECT_FALSE(hasObsFold("GET / HTTP/1.1\r\nHost: a\r\n\r\n body\r\n more"));  // body bytes are not the head
  EXPECT_FALSE(hasObsFold("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"));
}

TEST(HttpRules, ParsesTargets) {
  struct Row {
    const char* target;
    const char* host;
    const char* path;
    const char* query;
  };
  const Row rows[] = {
      {"/", "", "/", ""},
      {"/a/b?x=1&y=/..", "", "/a/b", "?x=1&y=/.."},
      {"//a///b/", "", "/a/b/", ""},
      {"http://Example.com:8080/x?q", "Example.com:8080", "/x", "?q"},
      {"https://example.com", "example.com", "/", ""},
      {"http://example.com?q", "example.com", "/", "?q"},
      {"/a/.b/c..d", "", "/a/.b/c..d", ""},
  };
  for (const Row& row : rows) {
    auto t = parseTarget(row.target);
    ASSERT_TRUE(t) << row.target;
    EXPECT_EQ(t->host, row.host) << row.target;
    EXPECT_EQ(t->path, row.path) << row.target;
    EXPECT_EQ(t->query, row.query) << row.target;
  }
  for (const char* bad : {"*", "example.com:443", "/a/../b", "/a/./b", "/..", "/a/%2e%2E/b", "/a/.%2e", "/a\\..\\b",
                          "ftp://x/", "http://user@x/", "/a#frag", "http:///x"})
    EXPECT_FALSE(parseTarget(bad)) << bad;
}

TEST(HttpRules, RemovesHopByHopIncludingNamedOnes) {
  http::fields f;
  f.set(http::field::connection, "keep-alive, X-Secret");
  f.insert(http::field::connection, "X-Other");
  f.set("X-Secret", "1");
  f.set("X-Other", "1");
  f.set(http::field::keep_alive, "timeout=5");
  f.set(http::field::proxy_connection, "keep-alive");
  f.set(http::field::te, "trailers");
  f.set(http::field::upgrade, "h2c");
  f.set("X-Kept", "1");
  removeHopByHop(f);
  EXPECT_EQ(std::distance(f.begin(), f.end()), 1);
  EXPECT_EQ(f["X-Kept"], "1");
}

TEST(HttpRules, UpstreamRequestCarriesForwardedAndDropsClientClaims) {
  http::request<http::string_body> req{http::verb::get, "/ws/chat", 11};
  req.set(http::field::host, "chat.example.com");
  req.set("X-Forwarded-For", "6.6.6.6");
  req.set(http::field::forwarded, "for=6.6.6.6");
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::upgrade, "websocket");
  req.set(http::field::expect, "100-continue");
  prepareUpstreamRequest(req, "/chat", ClientInfo{boost::asio::ip::make_address("::ffff:10.0.0.7"), true}, true);
  EXPECT_EQ(req.target(), "/chat");
  EXPECT_EQ(req["X-Forwarded-For"], "10.0.0.7");
  EXPECT_EQ(req["X-Real-IP"], "10.0.0.7");
  EXPECT_EQ(req["X-Forwarded-Proto"], "https");
  EXPECT_EQ(req["X-Forwarded-Host"], "chat.example.com");
  EXPECT_EQ(req[http::field::forwarded], "for=10.0.0.7;host=\"chat.example.com\";proto=https");
  EXPECT_EQ(req[http::field::connection], "Upgrade");
  EXPECT_EQ(req[http::field::upgrade], "websocket");
  EXPECT_EQ(req.count(http::field::expect), 0u);
  EXPECT_EQ(req.count(http::field::content_length), 0u);

  http::request<http::string_body> post{http::verb::post, "/x", 11};
  post.set(http::field::host, "h");
  post.set(http::field::transfer_encoding, "chunked");
  post.body() = "hello";
  prepareUpstreamRequest(post, "/x", ClientInfo{boost::asio::ip::make_address("2001:db8::1"), false}, false);
  EXPECT_EQ(post[http::field::content_length], "5");
  EXPECT_EQ(post.count(http::field::transfer_encoding), 0u);
  EXPECT_EQ(post.count(http::field::connection), 0u);
  EXPECT_EQ(post[http::field::forwarded], "for=\"[2001:db8::1]\";host=\"h\";proto=http");
}

// Attack: "Connection: Host" stripped the Host field the route was chosen by,
// and "X_Forwarded_For" reached the backend beside our X-Forwarded-For
// (CGI-style backends read both as HTTP_X_FORWARDED_FOR).
TEST(HttpRules, ConnectionCannotStripEssentialsAndUnderscoredNamesAreDropped) {
  http::request<http::string_body> req{http::verb::get, "/app/x", 11};
  req.set(http::field::host, "b.example.com");
  req.set(http::field::cookie, "session=1");
  req.set(http::field::connection, "Host, Cookie, Authorization, X-Hop");
  req.set(http::field::authorization, "Bearer t");
  req.set("X-Hop", "1");
  req.set("X_Forwarded_For", "6.6.6.6");
  req.set("x_real_ip", "6.6.6.6");
  prepareUpstreamRequest(req, "/app/x", ClientInfo{boost::asio::ip::make_address("10.0.0.7"), false}, false);
  EXPECT_EQ(req[http::field::host], "b.example.com");
  EXPECT_EQ(req[http::field::cookie], "session=1");
  EXPECT_EQ(req[http::field::authorization], "Bearer t");
  EXPECT_EQ(req.count("X-Hop"), 0u);
  EXPECT_EQ(req.count("X_Forwarded_For"), 0u);
  EXPECT_EQ(req.count("x_real_ip"), 0u);
  EXPECT_EQ(req["X-Forwarded-For"], "10.0.0.7");
}

TEST(HttpRules, ClientResponseFraming) {
  http::response_header<> res;
  res.result(http::status::ok);
  res.set(http::field::content_length, "10");
  res.set(http::field::connection, "keep-alive");
  EXPECT_TRUE(prepareClientResponse(res, true, false, false));
  EXPECT_EQ(res[http::field::content_length], "10");
  EXPECT_EQ(res.count(http::field::connection), 0u);

  http::response_header<> chunked;
  chunked.set(http::field::transfer_encoding, "chunked");
  EXPECT_TRUE(prepareClientResponse(chunked, true, true, false));
  EXPECT_EQ(chunked[http::field::transfer_encoding], "chunked");

  http::response_header<> toEof;  // upstream body ends at its close
  EXPECT_TRUE(prepareClientResponse(toEof, true, false, true));
  EXPECT_EQ(toEof[http::field::transfer_encoding], "chunked");

  http::response_header<> closing;
  closing.set(http::field::transfer_encoding, "chunked");
  EXPECT_FALSE(prepareClientResponse(closing, false, true, false));
  EXPECT_EQ(closing.count(http::field::transfer_encoding), 0u);
  EXPECT_EQ(closing[http::field::connection], "close");
}

TEST(HttpRules, Idempotence) {
  EXPECT_TRUE(isIdempotent(http::verb::get));
  EXPECT_TRUE(isIdempotent(http::verb::put));
  EXPECT_FALSE(isIdempotent(http::verb::post));
  EXPECT_FALSE(isIdempotent(http::verb::patch));
}

}  // namespace
}  // namespace hv::proxy
