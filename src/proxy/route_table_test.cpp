#include "proxy/route_table.h"

#include <gtest/gtest.h>

#include <boost/asio/ip/address.hpp>

namespace hv::proxy {
namespace {

Route route(std::string host, std::string prefix, std::string name) {
  Route r;
  r.host = std::move(host);
  r.pathPrefix = std::move(prefix);
  r.name = std::move(name);
  r.upstreams = {Upstream{"127.0.0.1", 9000, Upstream::Health::kUp}};
  return r;
}

RouteTable table() {
  auto t = RouteTable::build({
      route("", "/", "any-root"),
      route("", "/api/", "any-api"),
      route("chat.example.com", "/", "chat-root"),
      route("chat.example.com", "/ws/", "chat-ws"),
      route("chat.example.com", "/ws/admin", "chat-admin"),
      route("*.example.com", "/ws/", "wild-ws"),
      route("*.b.example.com", "/", "wild-b"),
  });
  EXPECT_TRUE(t.has_value()) << t.error().message;
  return std::move(*t);
}

struct MatchRow {
  const char* host;
  const char* path;
  const char* expect;  // route name, or "" for no match
};

TEST(RouteTable, MatchesMostSpecificHostThenLongestPrefix) {
  const RouteTable t = table();
  const MatchRow rows[] = {
      {"chat.example.com", "/ws/", "chat-ws"},
      {"chat.example.com", "/ws", "chat-ws"},  // "/ws/" also takes the bare "/ws"
      {"chat.example.com", "/ws/room/1", "chat-ws"},
      {"chat.example.com", "/wsx", "chat-root"},
      {"chat.example.com", "/ws/admin", "chat-admin"},
      {"chat.example.com", "/ws/admin/x", "chat-admin"},
      {"chat.example.com", "/ws/administrator", "chat-ws"},  // segment boundary
      {"CHAT.Example.COM:8443", "/ws/", "chat-ws"},          // case and port ignored
      {"chat.example.com.", "/ws/", "chat-ws"},              // trailing dot
      {"chat.example.com", "/api/x", "chat-root"},           // the exact host wins over any-host
      {"a.example.com", "/ws/x", "wild-ws"},
      {"x.y.example.com", "/ws/", "wild-ws"},
      {"a.example.com", "/api/x", "any-api"},   // wildcard has no match: fall through to any-host
      {"example.com", "/ws/", "any-root"},      // "*.example.com" does not take example.com
      {"c.b.example.com", "/ws/", "wild-b"},    // the longer wildcard suffix is the more specific host
      {"c.b.example.com", "/x", "wild-b"},
      {"other.org", "/", "any-root"},
      {"", "/api", "any-api"},
      {"", "/apix", "any-root"},
  };
  for (const MatchRow& row : rows) {
    const RouteEntry* e = t.match(row.host, row.path);
    ASSERT_NE(e, nullptr) << row.host << row.path;
    EXPECT_EQ(e->route.name, row.expect) << row.host << row.path;
  }
}

TEST(RouteTable, NoMatchWithoutACatchAll) {
  auto t = RouteTable::build({route("chat.example.com", "/ws/", "chat")});
  ASSERT_TRUE(t);
  EXPECT_EQ(t->match("chat.example.com", "/other"), nullptr);
  EXPECT_EQ(t->match("else.example.com", "/ws/"), nullptr);
  EXPECT_EQ(t->match("chat.example.com:80", "/ws/a")->route.name, "chat");
}

TEST(RouteTable, RejectsBadRoutes) {
  struct Row {
    Route r;
    const char* why;
  };
  auto with = [](auto change) {
    Route r = route("", "/", "x");
    change(r);
    return r;
  };
  const Row rows[] = {
      {with([](Route& r) { r.pathPrefix = "ws/"; }), "must start with '/'"},
      {with([](Route& r) { r.pathPrefix = "/a/../b"; }), "'..'"},
      {with([](Route& r) { r.pathPrefix = "/a b"; }), "space"},
      {with([](Route& r) { r.pathPrefix = "/a?x"; }), "'?'"},
      {with([](Route& r) { r.host = "chat.example.com:80"; }), "without a port"},
      {with([](Route& r) { r.host = "a..b"; }), "host name"},
      {with([](Route& r) { r.host = "*"; }), "host name"},
      {with([](Route& r) { r.upstreams[0].host = "localhost"; }), "not an IP address"},
      {with([](Route& r) { r.upstreams[0].port = 0; }), "port 0"},
  };
  for (const Row& row : rows) {
    auto t = RouteTable::build({row.r});
    ASSERT_FALSE(t) << row.why;
    EXPECT_NE(t.error().message.find(row.why), std::string::npos) << t.error().message;
  }
  auto dup = RouteTable::build({route("A.example.com", "/x", "a"), route("a.example.com", "/x", "b")});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, Errc::kConflict);
}

TEST(RouteTable, HostNormalization) {
  const std::pair<const char*, const char*> rows[] = {
      {"Example.COM", "example.com"}, {"example.com:8080", "example.com"}, {"example.com.", "example.com"},
      {"[::1]:80", "[::1]"},           {"127.0.0.1:80", "127.0.0.1"},      {" a.b ", "a.b"},
      {"a b", ""},                     {"a/b", ""},                        {"example.com:80x", ""},
      {"::1", ""},                     {"[::1", ""},                       {"", ""},
  };
  for (auto [in, out] : rows) EXPECT_EQ(normalizeHost(in), out) << in;
}

TEST(RouteTable, PrefixStrip) {
  const std::tuple<const char*, const char*, const char*> rows[] = {
      {"/ws/", "/ws/chat", "/chat"}, {"/ws/", "/ws/", "/"}, {"/ws/", "/ws", "/"},
      {"/app", "/app/x/y", "/x/y"},  {"/app", "/app", "/"}, {"/", "/x", "/x"},
  };
  for (auto [prefix, path, out] : rows) {
    ASSERT_TRUE(pathMatches(prefix, path)) << prefix << " " << path;
    EXPECT_EQ(stripPathPrefix(prefix, path), out) << prefix << " " << path;
  }
}

TEST(RouteTable, ParsesRouteSpecs) {
  auto a = parseRouteSpec("Chat.Example.com/ws/");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first, "chat.example.com");
  EXPECT_EQ(a->second, "/ws/");
  auto b = parseRouteSpec("/api/");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->first, "");
  auto c = parseRouteSpec("chat.example.com");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->second, "/");
  EXPECT_FALSE(parseRouteSpec("chat.example.com:80/ws/"));
  EXPECT_FALSE(parseRouteSpec(""));
  EXPECT_FALSE(parseRouteSpec("/a//b"));
}

std::array<uint8_t, 16> ip(const char* text) {
  auto a = boost::asio::ip::make_address(text);
  if (a.is_v4()) return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, a.to_v4()).to_bytes();
  return a.to_v6().to_bytes();
}

TEST(CidrRule, ParsesAndMatches) {
  struct Row {
    const char* rule;
    const char* address;
    bool matches;
  };
  const Row rows[] = {
      {"allow 10.0.0.0/8", "10.1.2.3", true},    {"allow 10.0.0.0/8", "11.0.0.1", false},
      {"deny 192.168.1.7", "192.168.1.7", true}, {"deny 192.168.1.7", "192.168.1.8", false},
      {"allow 10.1.2.3/16", "10.1.99.1", true},  // host bits are dropped
      {"deny all", "8.8.8.8", true},             {"deny all", "2001:db8::1", true},
      {"allow 2001:db8::/32", "2001:db8:1::1", true}, {"allow 2001:db8::/32", "2001:db9::1", false},
      {"allow 127.0.0.1", "::ffff:127.0.0.1", true},  {"ALLOW  0.0.0.0/0", "1.2.3.4", true},
      {"allow 0.0.0.0/0", "2001:db8::1", false},  // an IPv4 rule never takes IPv6 peers
  };
  for (const Row& row : rows) {
    auto rule = CidrRule::parse(row.rule);
    ASSERT_TRUE(rule) << row.rule << ": " << rule.error().message;
    EXPECT_EQ(rule->matches(ip(row.address)), row.matches) << row.rule << " vs " << row.address;
  }
  for (const char* bad : {"permit 1.2.3.4", "allow", "allow 1.2.3.4/33", "deny 300.1.1.1", "allow 1.2.3.4/x",
                          "allow ::1/129"})
    EXPECT_FALSE(CidrRule::parse(bad)) << bad;
  EXPECT_EQ(CidrRule::parse("allow 10.1.2.3/16")->toString(), "allow 10.1.0.0/16");
  EXPECT_EQ(CidrRule::parse("deny all")->toString(), "deny all");
  EXPECT_EQ(CidrRule::parse("deny 2001:db8::/32")->toString(), "deny 2001:db8::/32");
}

TEST(CidrRule, FirstMatchWinsDefaultAllows) {
  std::vector<CidrRule> rules = {*CidrRule::parse("allow 10.0.0.0/8"), *CidrRule::parse("deny all")};
  EXPECT_TRUE(accessAllowed(rules, ip("10.9.9.9")));
  EXPECT_FALSE(accessAllowed(rules, ip("192.168.0.1")));
  EXPECT_TRUE(accessAllowed({}, ip("192.168.0.1")));
  EXPECT_TRUE(accessAllowed({*CidrRule::parse("deny 10.0.0.0/8")}, ip("192.168.0.1")));
}

}  // namespace
}  // namespace hv::proxy
