// NetPolicy on the real kernel (root): an attacker in a policed run cgroup
// tries to listen and to reach peers it was not given, on loopback only.
#include "os/netpolicy/netpolicy.h"

#include <gtest/gtest.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cstdio>

#include "os/netpolicy/netpolicy_test_helpers.h"

namespace hv::os::netpolicy {
namespace {

using os::testing::ChildReaper;
using namespace testing;  // netpolicy_test_helpers.h: attack, entry, listenOn, str, ...

// A non-blocking connect from here (a cgroup without policy) to 127.0.0.1:port.
UniqueFd connectFromOutside(uint16_t port) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to);
  EXPECT_TRUE(rc == 0 || errno == EINPROGRESS) << errno;
  return s;
}

int tcpState(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 ? info.tcpi_state : -1;
}

uint16_t portFromLine(const std::string& line) {
  return line.starts_with("PORT ") ? static_cast<uint16_t>(std::stoi(line.substr(5))) : 0;
}

TEST_F(NetPolicyTest, ProbesAndEnforcesEveryHookHere) {
  for (const MechanismReport& row : policy_->mechanisms()) {
    std::printf("  %-15s %-9s %s\n", row.name.c_str(), row.enforced ? "enforced" : "DEGRADED", row.detail.c_str());
  }
  for (const char* row : {"net bind4", "net bind6", "net connect4", "net connect6", "net sendmsg4", "net sendmsg6",
                          "net listen gap", "net pinning"}) {
    const MechanismReport* m = mechanism(row);
    ASSERT_NE(m, nullptr) << row;
    EXPECT_TRUE(m->enforced) << row << ": " << m->detail;
  }
  EXPECT_TRUE(policy_->enforcing());
  // The probe cleaned up after itself.
  EXPECT_NE(::access((cgroups_->rootPath() + "/.netpolicy-probe").c_str(), F_OK), 0);
  EXPECT_EQ(policy_->policed().value_or(std::vector<uint64_t>{1}), std::vector<uint64_t>{});
}

TEST_F(NetPolicyTest, BindsOnlyTheAssignedPort) {
  const uint16_t assigned = freePort(), other = freePort();
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  set(id, {assigned, {}});
  std::vector<std::string> ops = {"bindtcp", "127.0.0.1", str(assigned), "bindtcp", "0.0.0.0", str(other),
                                  "bindtcp", "127.0.0.1", "0", "bindudp", "127.0.0.1", "0",
                                  "bindudp", "127.0.0.1", str(other)};
  std::vector<std::string> want = lines({"OK", "EPERM", "EPERM", "OK", "EPERM"});
  if (haveIpv6Loopback()) {
    ops.insert(ops.end(), {"bindtcp", "::", str(assigned), "bindtcp", "::1", str(other)});
    want.insert(want.end(), {"OK", "EPERM"});
  }
  EXPECT_EQ(attack(run, ops), want);
  EXPECT_EQ(counts(id).bind, static_cast<uint64_t>(std::count(want.begin(), want.end(), "EPERM")));
  EXPECT_EQ(counts(id).connect, 0u);
}

TEST_F(NetPolicyTest, ListenWithoutBindGetsNoConnections) {
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  set(id, {freePort(), {}});
  std::optional<testing::Attacker> a = startAttacker(run, {"listen", "0"});
  ASSERT_TRUE(a);
  ChildReaper reaper(a->child.pidfd.get());
  const uint16_t port = portFromLine(a->line());
  ASSERT_NE(port, 0);  // listen() itself works: the kernel autobound a port
  UniqueFd s = connectFromOutside(port);
  EXPECT_TRUE(waitFor([&] { return counts(id).ingress >= 1; })) << "no SYN drop counted";
  // The SYN was dropped, so no SYN-ACK: the connection cannot be established.
  EXPECT_EQ(tcpState(s.get()), TCP_SYN_SENT);
}

TEST_F(NetPolicyTest, ListenerOnTheAssignedPortIsReachable) {
  const uint16_t assigned = freePort();
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  set(id, {assigned, {}});
  std::optional<testing::Attacker> a = startAttacker(run, {"listen", str(assigned)});
  ASSERT_TRUE(a);
  ChildReaper reaper(a->child.pidfd.get());
  ASSERT_EQ(portFromLine(a->line()), assigned);
  UniqueFd s = connectFromOutside(assigned);
  EXPECT_TRUE(waitFor([&] { return tcpState(s.get()) == TCP_ESTABLISHED; }));
  EXPECT_EQ(counts(id).ingress, 0u);
}

TEST_F(NetPolicyTest, ConnectsOnlyToTheAllowlistAndItsOwnPort) {
  testing::Listener listed = listenOn("127.0.0.1"), unlisted = listenOn("127.0.0.1");
  const uint16_t assigned = freePort();
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  set(id, {assigned, {entry("127.0.0.1", listed.port)}});
  const std::string a = str(listed.port), b = str(unlisted.port);
  std::vector<std::string> ops = {"tcp", "127.0.0.1", a,             // listed
                                  "tcp", "127.0.0.1", b,             // not listed
                                  "tcp", "0.0.0.0", b,               // 0.0.0.0 means loopback
                                  "tcp", "127.0.0.2", b,             // rest of 127/8
                                  "tfo", "127.0.0.1", b,             // TCP Fast Open sendto
                                  "tcp", "::ffff:127.0.0.1", a,      // v4-mapped is IPv4: listed
                                  "tcp", "::ffff:127.0.0.1", b,      // v4-mapped, not listed
                                  "self", str(assigned)};            // its own port on loopback
  std::vector<std::string> want = lines({"OK", "EPERM", "EPERM", "EPERM", "EPERM", "OK", "EPERM", "OK"});
  testing::Listener six;
  if (haveIpv6Loopback()) {
    six = listenOn("::1");
    ops.insert(ops.end(), {"tcp", "::1", str(six.port), "tcp", "::", str(six.port)});
    want.insert(want.end(), {"EPERM", "EPERM"});
  }
  EXPECT_EQ(attack(run, ops), want);
  EXPECT_EQ(counts(id).connect, static_cast<uint64_t>(std::count(want.begin(), want.end(), "EPERM")));
}

// A list of every instance reads all counters at once, in batches: the same
// numbers as one lookup per run, wherever the batches split.
TEST_F(NetPolicyTest, BatchReadSeesEveryRunsCounters) {
  testing::Listener unlisted = listenOn("127.0.0.1");
  std::vector<RunCgroup> runs;
  std::vector<uint64_t> ids;
  for (const char* name : {"a", "b", "c"}) {
    runs.push_back(newRun(name));
    ids.push_back(idOf(runs.back()));
    set(ids.back(), {freePort(), {}});
    std::vector<std::string> ops;
    for (size_t j = 0; j < runs.size(); ++j) ops.insert(ops.end(), {"tcp", "127.0.0.1", str(unlisted.port)});
    EXPECT_EQ(attack(runs.back(), ops), std::vector<std::string>(runs.size(), "EPERM"));
  }
  for (uint32_t batch : {1u, 2u, 256u}) {
    auto all = policy_->blockedAllBatched(batch);
    ASSERT_TRUE(all) << all.error().message;
    for (size_t i = 0; i < ids.size(); ++i) {
      ASSERT_TRUE(all->contains(ids[i])) << "batch " << batch << ", run " << i;
      EXPECT_EQ(all->at(ids[i]).connect, i + 1) << "batch " << batch;
      EXPECT_EQ(all->at(ids[i]), counts(ids[i])) << "batch " << batch;
    }
  }
}

TEST_F(NetPolicyTest, WideEntriesDoNotOpenLoopback) {
  testing::Listener local = listenOn("127.0.0.1");
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  set(id, {freePort(), {entry("0.0.0.0/0", 0), entry("::/0", 0), entry("::ffff:0:0/96", local.port, 17)}});
  const std::string p = str(local.port);
  EXPECT_EQ(attack(run, {"tcp", "127.0.0.1", p, "tcp", "0.0.0.0", p, "tcp", "::ffff:127.0.0.1", p}),
            lines({"EPERM", "EPERM", "EPERM"}));
  set(id, {freePort(), {entry("127.0.0.0/8", 0)}});  // loopback named explicitly
  EXPECT_EQ(attack(run, {"tcp", "127.0.0.1", p, "tcp", "0.0.0.0", p}), lines({"OK", "OK"}));
}

TEST_F(NetPolicyTest, ProtocolAndPortOfAnEntryMustMatch) {
  testing::Listener tcp = listenOn("127.0.0.1"), other = listenOn("127.0.0.1");
  RunCgroup run = newRun();
  const uint64_t id = idOf(run);
  set(id, {freePort(), {entry("127.0.0.1", tcp.port, 17)}});
  const std::string p = str(tcp.port);
  EXPECT_EQ(attack(run, {"tcp", "127.0.0.1", p, "udp", "127.0.0.1", p, "udp", "127.0.0.1", str(other.port)}),
            lines({"EPERM", "OK", "EPERM"}));
  Status bad = policy_->set(id, {1, {entry("127.0.0.1", 80, 1)}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace hv::os::netpolicy
