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
  EXPECT_EQ(c.accounts[0].maxInstances, 3);
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
