// NetPolicy over time: UDP, runs without a policy, clear(), replacing a
// policy, retainOnly(), and a daemon restart (pinned links and maps).
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "os/netpolicy/netpolicy.h"
#include "os/netpolicy/netpolicy_test_helpers.h"

namespace hv::os::netpolicy {
namespace {

using os::testing::ChildReaper;
using namespace testing;  // netpolicy_test_helpers.h: attack, entry, listenOn, str, ...

void sendFrom(const testing::Listener& from, uint16_t to, const std::string& payload) {
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(to);
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::sendto(from.fd.get(), payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst),
            static_cast<ssize_t>(payload.size()));
}

TEST_F(NetPolicyTest, UdpSendsOnlyToTheAllowlist) {
  const uint16_t listed = freePort(), unlisted = freePort();
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  set(id, {freePort(), {entry("127.0.0.1", listed, 17)}});
  std::vector<std::string> ops = {"udp", "127.0.0.1", str(listed),     "udp", "127.0.0.1", str(unlisted),
                                  "udp", "127.0.0.53", "53",            // no DNS unless listed
                                  "udp", "::ffff:127.0.0.1", str(unlisted),
                                  "udpc", "127.0.0.1", str(unlisted)};  // connect() is the connect hook
  std::vector<std::string> want = lines({"OK", "EPERM", "EPERM", "EPERM", "EPERM"});
  if (haveIpv6Loopback()) {
    ops.insert(ops.end(), {"udp", "::1", str(unlisted)});
    want.push_back("EPERM");
  }
  EXPECT_EQ(attack(run, ops), want);
  BlockedCounts c = counts(id);
  EXPECT_EQ(c.connect, 1u);
  EXPECT_EQ(c.sendmsg, want.size() - 2);
}

TEST_F(NetPolicyTest, UdpClientSocketHearsOnlyListedPeers) {
  testing::Listener listed = listenOn("127.0.0.1", SOCK_DGRAM), stranger = listenOn("127.0.0.1", SOCK_DGRAM);
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  set(id, {freePort(), {entry("127.0.0.1", listed.port, 17)}});
  std::optional<testing::Attacker> a = startAttacker(run, {"udprecv"});
  ASSERT_TRUE(a);
  ChildReaper reaper(a->child.pidfd.get());
  std::string line = a->line();
  ASSERT_TRUE(line.starts_with("PORT ")) << line;
  const uint16_t port = static_cast<uint16_t>(std::stoi(line.substr(5)));
  sendFrom(stranger, port, "stranger");
  EXPECT_TRUE(waitFor([&] { return counts(id).ingress >= 1; }));
  sendFrom(listed, port, "listed");
  EXPECT_EQ(a->line(), "listed");  // the stranger's datagram, sent first, never arrived
  EXPECT_EQ(a->line(), "OK");
}

TEST_F(NetPolicyTest, RunWithoutPolicyIsUnaffected) {
  testing::Listener peer = listenOn("127.0.0.1");
  RunCgroup policed = newRun("web"), free = newRun("other");
  set(idOf(policed), {freePort(), {}});
  const std::string p = str(peer.port);
  EXPECT_EQ(attack(free, {"bindtcp", "127.0.0.1", str(freePort()), "tcp", "127.0.0.1", p, "udp", "127.0.0.1", p}),
            lines({"OK", "OK", "OK"}));
  std::optional<testing::Attacker> a = startAttacker(free, {"listen", "0"});
  ASSERT_TRUE(a);
  ChildReaper reaper(a->child.pidfd.get());
  std::string line = a->line();
  ASSERT_TRUE(line.starts_with("PORT ")) << line;
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(std::stoi(line.substr(5))));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);  // loopback: immediate
  EXPECT_EQ(counts(idOf(free)), BlockedCounts{});
}

TEST_F(NetPolicyTest, ClearLiftsTheRestrictions) {
  testing::Listener peer = listenOn("127.0.0.1");
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  set(id, {freePort(), {}});
  const std::vector<std::string> ops = {"bindtcp", "127.0.0.1", str(freePort()), "tcp", "127.0.0.1", str(peer.port)};
  EXPECT_EQ(attack(run, ops), lines({"EPERM", "EPERM"}));
  EXPECT_EQ(counts(id).total(), 2u);
  ASSERT_TRUE(policy_->clear(id));
  EXPECT_EQ(attack(run, ops), lines({"OK", "OK"}));
  EXPECT_EQ(counts(id), BlockedCounts{});
  EXPECT_EQ(policy_->policed().value_or(std::vector<uint64_t>{1}), std::vector<uint64_t>{});
}

TEST_F(NetPolicyTest, SetReplacesTheAllowlistAndKeepsTheCounters) {
  testing::Listener first = listenOn("127.0.0.1"), second = listenOn("127.0.0.1");
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  const std::string a = str(first.port), b = str(second.port);
  set(id, {freePort(), {entry("127.0.0.1", first.port)}});
  EXPECT_EQ(attack(run, {"tcp", "127.0.0.1", a, "tcp", "127.0.0.1", b}), lines({"OK", "EPERM"}));
  set(id, {freePort(), {entry("127.0.0.0/8", second.port, 6)}});
  EXPECT_EQ(attack(run, {"tcp", "127.0.0.1", a, "tcp", "127.0.0.1", b}), lines({"EPERM", "OK"}));
  EXPECT_EQ(counts(id).connect, 2u);
}

TEST_F(NetPolicyTest, RetainOnlyDropsEveryOtherPolicy) {
  RunCgroup keep = newRun("a"), drop = newRun("b");
  set(idOf(keep), {freePort(), {entry("10.0.0.0/8", 443)}});
  set(idOf(drop), {freePort(), {entry("10.0.0.0/8", 443)}});
  const uint64_t kept[] = {idOf(keep)};
  ASSERT_TRUE(policy_->retainOnly(kept));
  EXPECT_EQ(policy_->policed().value_or(std::vector<uint64_t>{}), std::vector<uint64_t>{idOf(keep)});
  EXPECT_EQ(attack(drop, {"bindtcp", "127.0.0.1", str(freePort())}), lines({"OK"}));
  EXPECT_EQ(attack(keep, {"bindtcp", "127.0.0.1", str(freePort())}), lines({"EPERM"}));
}

TEST_F(NetPolicyTest, PolicyOutlivesTheDaemonAndIsAdoptedAgain) {
  testing::Listener peer = listenOn("127.0.0.1");
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  const uint16_t assigned = freePort();
  set(id, {assigned, {}});
  const std::vector<std::string> ops = {"bindtcp", "127.0.0.1", str(freePort()), "tcp", "127.0.0.1", str(peer.port)};
  EXPECT_EQ(attack(run, ops), lines({"EPERM", "EPERM"}));
  const std::vector<uint32_t> links = linkIds_, maps = mapIds_;
  ASSERT_EQ(links.size(), 7u);
  ASSERT_EQ(maps.size(), 3u);

  policy_.reset();  // the daemon dies: only the pins hold the programs now
  EXPECT_EQ(attack(run, ops), lines({"EPERM", "EPERM"}));

  openPolicy();  // the daemon starts again
  EXPECT_EQ(linkIds_, links);  // the same links, now running the new programs
  EXPECT_EQ(mapIds_, maps);    // the same maps: policies and counters intact
  const MechanismReport* pinning = mechanism("net pinning");
  ASSERT_NE(pinning, nullptr);
  EXPECT_NE(pinning->detail.find("7 pinned link(s) reused"), std::string::npos) << pinning->detail;
  EXPECT_EQ(counts(id).total(), 4u);  // two of them counted while the daemon was down
  EXPECT_EQ(attack(run, ops), lines({"EPERM", "EPERM"}));
  set(id, {assigned, {entry("127.0.0.1", peer.port)}});
  EXPECT_EQ(attack(run, ops), lines({"EPERM", "OK"}));
}

TEST_F(NetPolicyTest, ReplacesPinnedMapsOfAnotherLayout) {
  policy_.reset();
  const std::string pin = "/sys/fs/bpf/hostvisor-" + name_ + "/policies";
  ASSERT_EQ(::unlink(pin.c_str()), 0);
  {  // as if an older build had pinned a policies map with 16-byte values
    UniqueFd old(bpf_map_create(BPF_MAP_TYPE_HASH, "policies", 8, 16, 16, nullptr));
    ASSERT_TRUE(old);
    ASSERT_EQ(bpf_obj_pin(old.get(), pin.c_str()), 0);
  }
  openPolicy();
  const MechanismReport* pinning = mechanism("net pinning");
  ASSERT_NE(pinning, nullptr);
  EXPECT_TRUE(pinning->enforced);
  EXPECT_NE(pinning->detail.find("incompatible pinned maps replaced"), std::string::npos) << pinning->detail;
  EXPECT_TRUE(policy_->enforcing());
  RunCgroup run = newRun();
  set(idOf(run), {freePort(), {}});
  EXPECT_EQ(attack(run, {"bindtcp", "127.0.0.1", str(freePort())}), lines({"EPERM"}));
}

}  // namespace
}  // namespace hv::os::netpolicy
