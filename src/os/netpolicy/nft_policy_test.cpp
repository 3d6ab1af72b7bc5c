// NftPolicy: the rule text and listing parser (pure), then the real kernel
// (root): an attacker in a policed run cgroup, loopback only.
#include "os/netpolicy/nft_policy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

#include "os/netpolicy/netpolicy_test_helpers.h"

namespace hv::os::netpolicy {
namespace {

using namespace testing;  // netpolicy_test_helpers.h: attack, entry, listenOn, str, ...

TEST(NftRules, OutputAllowsListedPeersAndOwnPortThenResetsOrDrops) {
  InstancePolicy p{8080, {entry("127.0.0.1", 5432, 6), entry("0.0.0.0/0", 443), entry("::ffff:10.0.0.0/104", 0)}};
  const std::vector<std::string> got = nft::outputRules("r7", nft::unionOf({&p}));
  const std::vector<std::string> want = {
      "ip daddr 127.0.0.0/8 meta l4proto { tcp, udp } th dport 8080 accept",
      "ip6 daddr ::1 meta l4proto { tcp, udp } th dport 8080 accept",
      "ip daddr 127.0.0.1/32 meta l4proto tcp th dport 5432 accept",
      "ip daddr != 127.0.0.0/8 meta l4proto { tcp, udp } th dport 443 accept",  // never the host's own services
      "ip daddr != 127.0.0.0/8 ip daddr 10.0.0.0/8 accept",                      // v4-mapped is IPv4
      "meta l4proto tcp counter name \"r7-connect\" reject with tcp reset",
      "counter name \"r7-sendmsg\" drop"};
  EXPECT_EQ(got, want);
}

TEST(NftRules, InputResetsUnassignedListenersAndHearsOnlyListedUdpPeers) {
  InstancePolicy a{8080, {entry("::1", 53, 17), entry("10.0.0.1", 5432, 6)}};
  InstancePolicy b{8081, {entry("::1", 53, 17)}};
  const std::vector<std::string> got = nft::inputRules("u1001", nft::unionOf({&a, &b}));
  const std::vector<std::string> want = {"meta l4proto { tcp, udp } th dport { 8080, 8081 } return",
                                         "meta l4proto tcp counter name \"u1001-ingress\" reject with tcp reset",
                                         "ip6 daddr ::1/128 meta l4proto udp th sport 53 return",
                                         "meta l4proto udp counter name \"u1001-ingress\" drop"};
  // A source match reads saddr.
  std::vector<std::string> fixed = want;
  fixed[2] = "ip6 saddr ::1/128 meta l4proto udp th sport 53 return";
  EXPECT_EQ(got, fixed);
}

TEST(NftRules, ParsesTheListing) {
  const char* text = R"(table inet hostvisor-x { # handle 9
	counter r5-connect { # handle 2
		packets 3 bytes 180
	}
	chain output { # handle 1
		type filter hook output priority 0; policy accept;
		ct state established,related accept # handle 4
		ct state new socket cgroupv2 level 2 "unified/a/b" jump r5-out # handle 11
	}
	chain input { # handle 3
		ct state new socket cgroupv2 level 2 "unified/a/b" jump r5-in # handle 12
	}
	chain r5-out { # handle 5
		meta l4proto 6 counter name "r5-connect" reject with tcp reset # handle 13
	}
}
)";
  nft::Listing l = nft::parseListing(text);
  EXPECT_TRUE(l.hasOutput && l.hasInput);
  EXPECT_EQ(l.outputJumps, (std::map<std::string, uint64_t>{{"r5", 11}}));
  EXPECT_EQ(l.inputJumps, (std::map<std::string, uint64_t>{{"r5", 12}}));
  EXPECT_EQ(l.counters, (std::map<std::string, uint64_t>{{"r5-connect", 3}}));
  EXPECT_EQ(l.chains, (std::vector<std::string>{"output", "input", "r5-out"}));
}

// A cgroup root and an NftPolicy per test; TearDown removes both, and the
// table, whatever happened.
class NftPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "nftables and cgroups need root";
    static int counter = 0;
    name_ = "nft-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    Result<Cgroups> cgroups = Cgroups::open(name_);
    ASSERT_TRUE(cgroups) << cgroups.error().message;
    cgroups_.emplace(std::move(*cgroups));
    if (!cgroups_->usable()) GTEST_SKIP() << "no cgroups here";
    openPolicy();
  }
  void TearDown() override {
    if (cgroups_) (void)cgroups_->destroy();
    policy_.reset();
    if (name_.empty()) return;
    EXPECT_TRUE(NftPolicy::removeTable(name_));
    EXPECT_NE(std::system(("nft list table inet hostvisor-" + name_ + " >/dev/null 2>&1").c_str()), 0);
  }
  void openPolicy(bool perUser = false) {
    policy_.reset();
    auto p = NftPolicy::open({name_, perUser ? "" : cgroups_->rootPath(), perUser});
    ASSERT_TRUE(p) << p.error().message;
    policy_ = std::move(*p);
    if (!policy_->usable()) GTEST_SKIP() << "nftables unavailable: " << policy_->mechanisms().front().detail;
  }
  RunCgroup newRun() {
    Result<RunCgroup> run = cgroups_->createRun("web", ++runs_, {});
    EXPECT_TRUE(run) << run.error().message;
    return std::move(run).value();
  }
  RunTarget target(const RunCgroup& run) {
    return RunTarget{cgroupIdOf(run.path()).value_or(0), run.v2DirFd() >= 0 ? run.path() : "",
                     static_cast<uid_t>(testing::attackerUid)};
  }
  void set(const RunTarget& t, const InstancePolicy& p) {
    Status ok = policy_->set(t, p);
    ASSERT_TRUE(ok) << ok.error().message;
  }
  BlockedCounts counts(uint64_t key) { return policy_->blocked(key).value_or(BlockedCounts{}); }

  std::string name_;
  std::optional<Cgroups> cgroups_;
  std::unique_ptr<NftPolicy> policy_;
  uint64_t runs_ = 0;
};

TEST_F(NftPolicyTest, ProbeReportsWhatHoldsAndThatBindCannot) {
  for (const MechanismReport& row : policy_->mechanisms()) {
    std::printf("  %-15s %-9s %s\n", row.name.c_str(), row.enforced ? "enforced" : "DEGRADED", row.detail.c_str());
  }
  ASSERT_TRUE(policy_->perRun()) << "this host has cgroup2 under /sys/fs/cgroup";
  EXPECT_TRUE(policy_->enforcing());
  for (const MechanismReport& row : policy_->mechanisms()) {
    const bool bind = row.name == "net bind4" || row.name == "net bind6";
    EXPECT_EQ(row.enforced, !bind) << row.name << ": " << row.detail;
  }
  EXPECT_TRUE(policy_->policed().empty()) << "the probe's rules are gone";
}

TEST_F(NftPolicyTest, ConnectsOutsideTheAllowlistAreResetAtOnceAndSendsFail) {
  testing::Listener listed = listenOn("127.0.0.1");
  testing::Listener unlisted = listenOn("127.0.0.1");
  RunCgroup run = newRun();
  const RunTarget t = target(run);
  set(t, {freePort(), {entry("127.0.0.1", listed.port, 6)}});
  std::vector<std::string> ops = {"tcp", "127.0.0.1", str(listed.port),  "tcp", "127.0.0.1", str(unlisted.port),
                                  "tcp", "::ffff:127.0.0.1", str(unlisted.port), "udp", "127.0.0.1", str(unlisted.port),
                                  "tfo", "127.0.0.1", str(unlisted.port)};
  // TCP Fast Open: python's timeout socket is non-blocking, so the SYN's
  // reset arrives after sendto() said EINPROGRESS; nothing is delivered.
  std::vector<std::string> want = lines({"OK", "ECONNREFUSED", "ECONNREFUSED", "EPERM", "EINPROGRESS"});
  if (haveIpv6Loopback()) {
    testing::Listener six = listenOn("::1");
    ops.insert(ops.end(), {"tcp", "::1", str(six.port), "udp", "::1", str(six.port)});
    want.insert(want.end(), {"ECONNREFUSED", "EPERM"});
  }
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(attack(run, ops), want);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3)) << "a refusal hung";
  const BlockedCounts c = counts(t.cgroupId);
  EXPECT_EQ(c.connect, static_cast<uint64_t>(want.size() - 1 - (haveIpv6Loopback() ? 2 : 1)));
  EXPECT_EQ(c.sendmsg, haveIpv6Loopback() ? 2u : 1u);
  EXPECT_EQ(c.bind, 0u);
}

TEST_F(NftPolicyTest, ListenerOnAnUnassignedPortIsResetButItsOwnPortServes) {
  const uint16_t own = freePort();
  RunCgroup run = newRun();
  const RunTarget t = target(run);
  set(t, {own, {}});
  std::optional<testing::Attacker> a = startAttacker(run, {"listen", "0"});
  ASSERT_TRUE(a);
  const std::string line = a->line();
  ASSERT_TRUE(line.starts_with("PORT ")) << line;
  const uint16_t port = static_cast<uint16_t>(std::stoi(line.substr(5)));
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_NE(::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  EXPECT_EQ(errno, ECONNREFUSED);
  EXPECT_EQ(counts(t.cgroupId).ingress, 1u);
  a->input.reset();
  EXPECT_TRUE(os::testing::waitExit(a->child.pidfd.get()));
  // Its own port: a self-connect on loopback passes both ways.
  EXPECT_EQ(attack(run, {"self", str(own)}), lines({"OK"}));
}

TEST_F(NftPolicyTest, SurvivesARestartThenRetainOnlyDropsTheGone) {
  RunCgroup kept = newRun(), gone = newRun();
  const RunTarget k = target(kept), g = target(gone);
  set(k, {freePort(), {}});
  set(g, {freePort(), {}});
  testing::Listener l = listenOn("127.0.0.1");
  EXPECT_EQ(attack(kept, {"tcp", "127.0.0.1", str(l.port)}), lines({"ECONNREFUSED"}));
  openPolicy();  // a new daemon: the table (and counters) are still there
  EXPECT_EQ(policy_->policed(), (std::vector<uint64_t>{std::min(k.cgroupId, g.cgroupId), std::max(k.cgroupId, g.cgroupId)}));
  EXPECT_EQ(counts(k.cgroupId).connect, 1u);
  EXPECT_EQ(attack(kept, {"tcp", "127.0.0.1", str(l.port)}), lines({"ECONNREFUSED"}));
  set(k, {freePort(), {entry("127.0.0.1", l.port)}});  // re-set: counters kept, rule replaced
  EXPECT_EQ(attack(kept, {"tcp", "127.0.0.1", str(l.port)}), lines({"OK"}));
  EXPECT_EQ(counts(k.cgroupId).connect, 2u);
  auto all = policy_->blockedAll();  // every run's counters from one listing: the same numbers
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(all->size(), 2u);
  EXPECT_EQ(all->at(k.cgroupId), counts(k.cgroupId));
  EXPECT_EQ(all->at(g.cgroupId), counts(g.cgroupId));
  const uint64_t keep[] = {k.cgroupId};
  ASSERT_TRUE(policy_->retainOnly(keep));
  EXPECT_EQ(policy_->policed(), (std::vector<uint64_t>{k.cgroupId}));
  EXPECT_EQ(attack(gone, {"tcp", "127.0.0.1", str(l.port)}), lines({"OK"})) << "no rules left for a cleared run";
  ASSERT_TRUE(policy_->clear(k.cgroupId));
  EXPECT_EQ(counts(k.cgroupId), BlockedCounts{});
}

TEST_F(NftPolicyTest, PerUserRulesShareOneSetAndNeverPoliceTheDaemon) {
  testing::attackerUid = 61000 + ::getpid() % 4000;  // not nobody: see attackerUid
  openPolicy(/*perUser=*/true);
  ASSERT_FALSE(policy_->perRun());
  RunCgroup a = newRun(), b = newRun();
  testing::Listener l = listenOn("127.0.0.1");
  RunTarget ta = target(a), tb = target(b);
  set(ta, {freePort(), {entry("127.0.0.1", l.port)}});
  set(tb, {freePort(), {}});
  // The union: b may reach what a may.
  EXPECT_EQ(attack(b, {"tcp", "127.0.0.1", str(l.port), "tcp", "127.0.0.1", str(freePort())}),
            lines({"OK", "ECONNREFUSED"}));
  ASSERT_TRUE(policy_->clear(ta.cgroupId));
  EXPECT_EQ(attack(b, {"tcp", "127.0.0.1", str(l.port)}), lines({"ECONNREFUSED"}));
  EXPECT_EQ(counts(tb.cgroupId).connect, 2u);
  RunTarget root{12345, "", 0};
  EXPECT_EQ(policy_->set(root, {}).error().code, Errc::kUnavailable);
}

}  // namespace
}  // namespace hv::os::netpolicy
