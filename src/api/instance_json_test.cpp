#include "api/instance_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace hv::api {
namespace {

namespace json = boost::json;
using supervisor::InstanceStatus;

InstanceStatus sample() {
  InstanceStatus s;
  s.spec.name = "web";
  s.spec.account = "alice";
  s.spec.command = "/usr/bin/env";
  s.spec.args = {"--port", "{port}", "quote\" back\\slash"};
  s.spec.env = {{"K", "V"}, {"NL\n", "tab\there"}};
  s.spec.cwd = "/home/alice";
  s.spec.route = "/ws/";
  s.spec.access = {"allow 10.0.0.0/8", "deny all"};
  s.spec.port = 20001;
  s.spec.memoryBytes = 256LL << 20;
  s.spec.cpuPercent = 50;
  s.spec.maxProcs = 7;
  s.spec.createdAt = 1763790000;
  s.spec.restarts = 3;
  s.state = supervisor::State::kRunning;
  s.pid = 1234;
  s.restarts = 3;
  s.startedAt = 1763800000;
  s.uptimeSeconds = 12;
  s.reason = std::string("ctl\x01\x1f byte, é utf-8");
  s.cpuSeconds = 0.42;
  s.rssBytes = 9773056;
  s.blocked = {1, 2, 3, 4};
  s.output = {5, 6, 7};
  return s;
}

json::object parsed(const InstanceStatus& s) {
  const std::string text = instanceJson(s);
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << ec.message() << ": " << text;
  return v.is_object() ? v.as_object() : json::object{};
}

TEST(InstanceJson, EveryFieldWithItsValue) {
  const json::object o = parsed(sample());
  EXPECT_EQ(o.at("name"), "web");
  EXPECT_EQ(o.at("account"), "alice");
  EXPECT_EQ(o.at("command"), "/usr/bin/env");
  EXPECT_EQ(o.at("args"), (json::array{"--port", "{port}", "quote\" back\\slash"}));
  EXPECT_EQ(o.at("env"), (json::object{{"K", "V"}, {"NL\n", "tab\there"}}));
  EXPECT_EQ(o.at("cwd"), "/home/alice");
  EXPECT_EQ(o.at("route"), "/ws/");
  EXPECT_EQ(o.at("access"), (json::array{"allow 10.0.0.0/8", "deny all"}));
  EXPECT_EQ(o.at("strip_prefix"), false);
  EXPECT_EQ(o.at("restart"), "on-failure");
  EXPECT_EQ(o.at("autostart"), true);
  EXPECT_EQ(o.at("port"), 20001);
  EXPECT_EQ(o.at("state"), "running");
  EXPECT_EQ(o.at("pid"), 1234);
  EXPECT_EQ(o.at("restarts"), 3);
  EXPECT_EQ(o.at("uptime"), 12);
  EXPECT_EQ(o.at("started_at"), 1763800000);
  EXPECT_TRUE(o.at("exit_code").is_null());
  EXPECT_TRUE(o.at("exit_signal").is_null());
  EXPECT_EQ(o.at("reason"), "ctl\x01\x1f byte, é utf-8");
  EXPECT_EQ(o.at("last_output"), "");
  EXPECT_DOUBLE_EQ(o.at("cpu_seconds").to_number<double>(), 0.42);
  EXPECT_EQ(o.at("rss_bytes"), 9773056);
  EXPECT_EQ(o.at("blocked"), (json::object{{"bind", 1}, {"connect", 2}, {"sendmsg", 3}, {"ingress", 4}}));
  EXPECT_EQ(o.at("start_secs"), 1);
  EXPECT_EQ(o.at("ready"), "port");
  EXPECT_EQ(o.at("stop_signal"), 15);
  EXPECT_EQ(o.at("stop_grace_ms"), 10000);
  EXPECT_EQ(o.at("memory"), 256LL << 20);
  EXPECT_EQ(o.at("cpu"), 50);
  EXPECT_EQ(o.at("procs"), 7);
  EXPECT_EQ(o.at("created_at"), 1763790000);
  EXPECT_EQ(o.at("log"), (json::object{{"written_bytes", 5}, {"dropped_lines", 6}, {"dropped_bytes", 7}}));
  EXPECT_EQ(o.size(), 33u);  // none missing, none added
  // And none written twice (a parser keeps only one of duplicate keys).
  const std::string text = instanceJson(sample());
  for (const auto& [key, value] : o) {
    const std::string quoted = "\"" + std::string(key) + "\":";
    EXPECT_EQ(text.find(quoted), text.rfind(quoted)) << key;
  }
}

TEST(InstanceJson, NullsWhenNothingRuns) {
  InstanceStatus s = sample();
  s.state = supervisor::State::kExited;
  s.pid = 0;
  s.startedAt = 0;
  s.cpuSeconds.reset();
  s.rssBytes.reset();
  s.lastExit = supervisor::ExitInfo{.signaled = false, .code = 3};
  s.lastOutput = "last\nlines\n";
  json::object o = parsed(s);
  EXPECT_TRUE(o.at("pid").is_null());
  EXPECT_TRUE(o.at("started_at").is_null());
  EXPECT_TRUE(o.at("cpu_seconds").is_null());
  EXPECT_TRUE(o.at("rss_bytes").is_null());
  EXPECT_EQ(o.at("exit_code"), 3);
  EXPECT_TRUE(o.at("exit_signal").is_null());
  EXPECT_EQ(o.at("last_output"), "last\nlines\n");

  s.lastExit = supervisor::ExitInfo{.signaled = true, .code = 9};
  o = parsed(s);
  EXPECT_TRUE(o.at("exit_code").is_null());
  EXPECT_EQ(o.at("exit_signal"), 9);
}

TEST(InstanceJson, EmptyCollectionsAndAppending) {
  InstanceStatus s = sample();
  s.spec.args.clear();
  s.spec.env.clear();
  s.spec.access.clear();
  std::string out = "[";
  appendInstanceJson(out, s);
  out += ",";
  appendInstanceJson(out, sample());
  out += "]";
  json::value v = json::parse(out);
  ASSERT_EQ(v.as_array().size(), 2u);
  EXPECT_EQ(v.as_array()[0].at("args"), json::array{});
  EXPECT_EQ(v.as_array()[0].at("env"), json::object{});
  EXPECT_EQ(v.as_array()[1].at("env").as_object().size(), 2u);
}

// Attack: a program printed bytes that are not UTF-8; its last_output made
// `hostvisor ls` abort (boost.json) and Python's json.loads fail for every
// user, the admin included. Ill-formed bytes become U+FFFD.
TEST(InstanceJson, ProgramBytesThatAreNotUtf8StayValidJson) {
  InstanceStatus s = sample();
  s.lastOutput = std::string("boom \xFF\xFE\xC0\xAF end\n\xE2\x82");
  s.spec.args = {std::string("\x80x")};
  const json::object o = parsed(s);
  EXPECT_EQ(o.at("last_output"), "boom \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD end\n\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(o.at("args"), (json::array{"\xEF\xBF\xBDx"}));
  EXPECT_EQ(o.at("reason"), "ctl\x01\x1f byte, é utf-8");  // well-formed text is kept as it is
}

}  // namespace
}  // namespace hv::api
