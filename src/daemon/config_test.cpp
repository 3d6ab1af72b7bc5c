#include "daemon/config.h"

#include <gtest/gtest.h>

namespace hv::daemon {
namespace {

TEST(Config, EmbeddedDefaults) {
  auto c = loadConfig(std::nullopt, {}).value();
  EXPECT_EQ(c.apiListen, "127.0.0.1:8070");
  EXPECT_EQ(c.proxyListen, "127.0.0.1:8080");
  EXPECT_EQ(c.portLo, 20000);
  EXPECT_EQ(c.portHi, 29999);
  EXPECT_TRUE(c.accounts.empty());
}

TEST(Config, ParsesEverySection) {
  auto c = parseConfigText(R"(
data_dir = "/srv/hv"
stop_instances_on_exit = true
[api]
listen = "127.0.0.1:9000"
[proxy]
listen = "0.0.0.0:80"
tls_listen = "0.0.0.0:443"
hold_ms = 500
[[proxy.certificates]]
host = "chat.example.com"
cert = "/etc/hv/chat.pem"
key = "/etc/hv/chat.key"
[ports]
range = "30000-30099"
[logs]
max_size = "1M"
keep = 5
[[accounts]]
name = "ann"
user = "ann"
max_instances = 3
)", "t.toml").value();
  EXPECT_EQ(c.dataDir, "/srv/hv");
  EXPECT_TRUE(c.stopInstancesOnExit);
  EXPECT_EQ(c.apiListen, "127.0.0.1:9000");
  EXPECT_EQ(c.proxyListen, "0.0.0.0:80");
  EXPECT_EQ(c.proxyTlsListen, "0.0.0.0:443");
  EXPECT_EQ(c.proxyHoldMs, 500);
  ASSERT_EQ(c.certificates.size(), 1u);
  EXPECT_EQ(c.certificates[0].host, "chat.example.com");
  EXPECT_EQ(c.portLo, 30000);
  EXPECT_EQ(c.portHi, 30099);
  EXPECT_EQ(c.logMaxBytes, 1 << 20);
  EXPECT_EQ(c.logKeep, 5);
  ASSERT_EQ(c.accounts.size(), 1u);
  EXPECT_EQ(c.accounts[0].limits.maxInstances, 3);
  EXPECT_EQ(c.accounts[0].limits.maxProcs, AccountLimits{}.maxProcs);  // [account_defaults]
}

TEST(Config, ErrorsNameTheKeyAndPosition) {
  auto unknown = parseConfigText("[api]\nlisten = \"x\"\nlisen = \"y\"\n", "t.toml");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message, "t.toml:3:1: unknown key 'api.lisen'");
  auto type = parseConfigText("data_dir = 5\n", "t.toml");
  ASSERT_FALSE(type);
  EXPECT_NE(type.error().message.find("'data_dir' has the wrong type"), std::string::npos);
  auto syntax = parseConfigText("data_dir = \n", "t.toml");
  ASSERT_FALSE(syntax);
  EXPECT_EQ(syntax.error().message.rfind("t.toml:1:", 0), 0u);
  EXPECT_FALSE(parseConfigText("[ports]\nrange = \"9-1\"\n", "t.toml"));
  EXPECT_FALSE(parseConfigText("[[accounts]]\nname = \"x\"\n", "t.toml"));
  EXPECT_FALSE(parseConfigText("[logs]\nmax_size = \"12Q\"\n", "t.toml"));
  EXPECT_FALSE(parseConfigText("[logs]\nkeep = 10\n", "t.toml"));
}

TEST(Config, SandboxTmpSize) {
  EXPECT_EQ(parseConfigText("", "t.toml").value().sandboxTmpBytes, 64 << 20);
  EXPECT_EQ(parseConfigText("[sandbox]\ntmp_size = \"256M\"\n", "t.toml").value().sandboxTmpBytes, 256 << 20);
  for (const char* bad : {"\"512K\"", "\"lots\"", "\"\"x"}) {
    auto c = parseConfigText(std::string("[sandbox]\ntmp_size = ") + bad + "\n", "t.toml");
    ASSERT_FALSE(c) << bad;
  }
  auto small = parseConfigText("[sandbox]\ntmp_size = \"512K\"\n", "t.toml");
  EXPECT_EQ(small.error().message, "t.toml:2:12: 'sandbox.tmp_size' must be a size of at least 1M, like \"64M\"");
}

TEST(Config, ProxyTuningKeys) {
  auto defaults = parseConfigText("", "t.toml").value();
  EXPECT_EQ(defaults.proxyThreads, 0u);
  EXPECT_EQ(defaults.proxyMaxClientConnections, 256);
  EXPECT_EQ(defaults.proxyTunnelIdleMs, 3'600'000);
  EXPECT_EQ(defaults.proxyTunnelLifetimeMs, 0);
  EXPECT_EQ(defaults.proxyHandshakeTimeoutMs, 10'000);
  EXPECT_EQ(defaults.proxyTunnelOffload, "auto");
  auto c = parseConfigText(R"([proxy]
tunnel_offload = "sockmap"
threads = 3
max_client_connections = 5000
tunnel_idle_ms = 86400000
tunnel_lifetime_ms = 604800000
handshake_timeout_ms = 2500
)", "t.toml").value();
  EXPECT_EQ(c.proxyThreads, 3u);
  EXPECT_EQ(c.proxyMaxClientConnections, 5000);
  EXPECT_EQ(c.proxyTunnelIdleMs, 86'400'000);
  EXPECT_EQ(c.proxyTunnelLifetimeMs, 604'800'000);
  EXPECT_EQ(c.proxyHandshakeTimeoutMs, 2500);
  EXPECT_EQ(c.proxyTunnelOffload, "sockmap");
  EXPECT_EQ(parseConfigText("[proxy]\ntunnel_offload = \"auto\"\n", "t.toml").value().proxyTunnelOffload, "auto");
  auto badMode = parseConfigText("[proxy]\ntunnel_offload = \"kernel\"\n", "t.toml");
  ASSERT_FALSE(badMode);
  EXPECT_EQ(badMode.error().message, "t.toml:2:18: 'tunnel_offload' must be \"auto\", \"sockmap\" or \"off\"");
  EXPECT_FALSE(parseConfigText("[proxy]\ntunnel_offload = true\n", "t.toml"));
  EXPECT_EQ(defaults.proxyTlsTakeover, "auto");
  EXPECT_EQ(parseConfigText("[proxy]\ntls_takeover = \"off\"\n", "t.toml").value().proxyTlsTakeover, "off");
  EXPECT_FALSE(parseConfigText("[proxy]\ntls_takeover = \"on\"\n", "t.toml"));
  auto bad = parseConfigText("[proxy]\nthreads = -1\n", "t.toml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "t.toml:2:11: 'threads' must be a whole number from 0 to 256");
  for (const char* text : {"[proxy]\nmax_client_connections = 0\n", "[proxy]\ntunnel_idle_ms = \"1h\"\n",
                           "[proxy]\nhandshake_timeout_ms = 10\n", "[proxy]\ntreads = 2\n"})
    EXPECT_FALSE(parseConfigText(text, "t.toml")) << text;
}

TEST(Config, StaticUpstreams) {
  auto c = parseConfigText(R"([proxy]
[[proxy.upstreams]]
route = "api.example.com/v1/"
servers = ["127.0.0.1:9000", "[::1]:9001"]
balance = "least-conn"
strip_prefix = true
access = ["allow 10.0.0.0/8", "deny all"]
[[proxy.upstreams]]
name = "files"
route = "/files/"
servers = ["10.1.2.3:80"]
)", "t.toml").value();
  ASSERT_EQ(c.staticUpstreams.size(), 2u);
  const auto& api = c.staticUpstreams[0];
  EXPECT_EQ(api.name, "api.example.com/v1/");
  EXPECT_EQ(api.servers, (std::vector<std::string>{"127.0.0.1:9000", "[::1]:9001"}));
  EXPECT_TRUE(api.leastConn);
  EXPECT_TRUE(api.stripPrefix);
  EXPECT_EQ(api.access.size(), 2u);
  EXPECT_EQ(api.where, "t.toml:2:1");
  EXPECT_EQ(c.staticUpstreams[1].name, "files");
  EXPECT_FALSE(c.staticUpstreams[1].leastConn);
}

TEST(Config, BadStaticUpstreamsNameWhatAndWhere) {
  struct Row { const char* body; const char* says; };
  const Row rows[] = {
      {"route = \"/a/\"\n", "t.toml:1:1: an upstream needs 'servers'"},
      {"route = \"/a/\"\nservers = [\"localhost:80\"]\n", "server 'localhost:80' is not IP:PORT"},
      {"route = \"/a/\"\nservers = [\"127.0.0.1:0\"]\n", "server '127.0.0.1:0' is not IP:PORT"},
      {"route = \"/a/\"\nservers = [\"::1:80\"]\n", "server '::1:80' is not IP:PORT"},
      {"route = \"/a/\"\nservers = [80]\n", "'servers' must be a list of strings"},
      {"route = \"a b\"\nservers = [\"127.0.0.1:80\"]\n", "upstream route 'a b'"},
      {"route = \"/a/\"\nservers = [\"127.0.0.1:80\"]\nbalance = \"random\"\n", "balance 'random'"},
      {"route = \"/a/\"\nservers = [\"127.0.0.1:80\"]\naccess = [\"allow 10.0.0.0/33\"]\n", "access rule 'allow 10.0.0.0/33'"},
      {"route = \"/a/\"\nservers = [\"127.0.0.1:80\"]\nweight = 2\n", "unknown key 'proxy.upstreams.weight'"},
  };
  for (const Row& row : rows) {
    auto r = parseConfigText(std::string("[[proxy.upstreams]]\n") + row.body, "t.toml");
    ASSERT_FALSE(r) << row.body;
    EXPECT_NE(r.error().message.find(row.says), std::string::npos) << r.error().message;
  }
  auto twice = parseConfigText(R"([[proxy.upstreams]]
route = "x.test/a/"
servers = ["127.0.0.1:80"]
[[proxy.upstreams]]
route = "X.test/a/"
servers = ["127.0.0.1:81"]
)", "t.toml");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message, "t.toml:4:1: route 'X.test/a/' is already the upstream route at t.toml:1:1");
}

TEST(Config, FlagsOverrideTheFile) {
  ConfigOverrides flags;
  flags.portRange = "40000-40010";
  flags.apiListen = "127.0.0.1:0";
  auto c = loadConfig(std::nullopt, flags).value();
  EXPECT_EQ(c.portLo, 40000);
  EXPECT_EQ(c.apiListen, "127.0.0.1:0");
  flags.portRange = "40000";
  auto bad = loadConfig(std::nullopt, flags);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("--port-range"), std::string::npos);
}

TEST(Config, PortRange) {
  EXPECT_EQ(parsePortRange("1-65535").value(), (std::pair<uint16_t, uint16_t>{1, 65535}));
  for (const char* bad : {"", "0-10", "10-5", "a-b", "1-70000", "5"}) EXPECT_FALSE(parsePortRange(bad)) << bad;
}

TEST(Config, SandboxNetworkPicksTheMechanism) {
  EXPECT_EQ(loadConfig(std::nullopt, {}).value().sandboxNetwork, "auto");
  EXPECT_EQ(parseConfigText("[sandbox]\nnetwork = \"nftables\"\n", "t.toml").value().sandboxNetwork, "nftables");
  auto bad = parseConfigText("[sandbox]\nnetwork = \"iptables\"\n", "t.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("t.toml:2:11: 'sandbox.network' must be"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(parseConfigText("[sandbox]\nnetwrk = \"off\"\n", "t.toml"));
}

}  // namespace
}  // namespace hv::daemon
