// Egress with a recording Enforcer and a scripted lookup: host names open
// their addresses once resolved (off the loop), changes re-apply, failures
// open nothing; and the real getaddrinfo on /etc/hosts' localhost.
#include "supervisor/egress.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <map>
#include <mutex>
#include <thread>

namespace hv::supervisor {
namespace {

namespace np = os::netpolicy;

struct FakeEnforcer : np::Enforcer {
  std::map<uint64_t, np::InstancePolicy> policies;
  std::vector<uint64_t> retained;
  int sets = 0;
  std::vector<os::MechanismReport> rows;
  const char* kind() const override { return "fake"; }
  const std::vector<os::MechanismReport>& mechanisms() const override { return rows; }
  bool usable() const override { return true; }
  bool enforcing() const override { return true; }
  Status set(const np::RunTarget& run, const np::InstancePolicy& p) override {
    ++sets;
    policies[run.cgroupId] = p;
    return {};
  }
  Status clear(uint64_t key) override {
    policies.erase(key);
    return {};
  }
  Status retainOnly(std::span<const uint64_t> keep) override {
    retained.assign(keep.begin(), keep.end());
    return {};
  }
  Result<np::BlockedCounts> blocked(uint64_t) const override { return np::BlockedCounts{}; }
};

np::Cidr ip(const char* text) { return np::Cidr::parse(text).value(); }

struct Harness {
  boost::asio::io_context io;
  FakeEnforcer* fake = nullptr;
  std::mutex mutex;
  std::map<std::string, std::vector<np::Cidr>> dns;  // absent = does not resolve
  std::atomic<std::thread::id> lookupThread{};
  std::unique_ptr<Egress> egress;

  explicit Harness(std::chrono::milliseconds refresh = std::chrono::minutes(5)) {
    auto e = std::make_unique<FakeEnforcer>();
    fake = e.get();
    Egress::Options o;
    o.refresh = refresh;
    o.lookup = [this](const std::string& host) -> Result<std::vector<np::Cidr>> {
      lookupThread = std::this_thread::get_id();
      std::lock_guard lock(mutex);
      auto it = dns.find(host);
      if (it == dns.end()) return fail(Errc::kNotFound, "does not resolve");
      return it->second;
    };
    egress = std::make_unique<Egress>(io, std::move(e), o);
  }
  // Runs the loop until `done` or 2 s.
  template <class F>
  bool runUntil(F done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(std::chrono::milliseconds(5));
    }
    return done();
  }
};

TEST(Egress, CidrEntriesApplyAtOnceAndNamesOnceResolvedOffTheLoop) {
  Harness h;
  h.dns["db.internal"] = {ip("10.1.2.3"), ip("fd00::5")};
  ASSERT_TRUE(h.egress->police({7, "", 1000}, 8080, "ann", {"192.168.0.0/16:443", "db.internal:5432"}));
  EXPECT_EQ(h.fake->policies[7].listenPort, 8080);
  EXPECT_EQ(h.fake->policies[7].allow.size(), 1u) << "the name is not resolved yet: it opens nothing";
  ASSERT_TRUE(h.runUntil([&] { return h.fake->policies[7].allow.size() == 3; }));
  EXPECT_NE(h.lookupThread.load(), std::this_thread::get_id());
  EXPECT_EQ(h.fake->policies[7].allow[1], (np::AllowEntry{ip("10.1.2.3"), 5432, 0}));
  EXPECT_EQ(h.fake->policies[7].allow[2], (np::AllowEntry{ip("fd00::5"), 5432, 0}));
  // A second run of the account: the cache answers at once.
  ASSERT_TRUE(h.egress->police({8, "", 1000}, 8081, "ann", {"db.internal:5432"}));
  EXPECT_EQ(h.fake->policies[8].allow.size(), 2u);
  ASSERT_EQ(h.egress->names().size(), 1u);
  EXPECT_EQ(h.egress->names()[0].addresses, (std::vector<std::string>{"10.1.2.3", "fd00::5"}));
  h.egress->unpolice(7);
  EXPECT_FALSE(h.fake->policies.contains(7));
}

TEST(Egress, ChangedAddressesReapplyAndFailuresOpenNothing) {
  Harness h(std::chrono::milliseconds(20));
  h.dns["api.example"] = {ip("10.0.0.1")};
  ASSERT_TRUE(h.egress->police({1, "", 1000}, 0, "ann", {"api.example:443", "nowhere.invalid:80"}));
  ASSERT_TRUE(h.runUntil([&] { return h.fake->policies[1].allow.size() == 1; }));
  {
    std::lock_guard lock(h.mutex);
    h.dns["api.example"] = {ip("10.0.0.2")};
  }
  ASSERT_TRUE(h.runUntil([&] {
    return h.fake->policies[1].allow.size() == 1 && h.fake->policies[1].allow[0].prefix == ip("10.0.0.2");
  }));
  bool sawError = false;
  for (const EgressName& n : h.egress->names()) {
    if (n.host == "nowhere.invalid") sawError = !n.error.empty() && n.addresses.empty();
  }
  EXPECT_TRUE(sawError);
  {
    std::lock_guard lock(h.mutex);
    h.dns.erase("api.example");
  }
  ASSERT_TRUE(h.runUntil([&] { return h.fake->policies[1].allow.empty(); })) << "a name that stops resolving closes";
}

TEST(Egress, ClearsSurvivorsNobodyClaimedAfterTheFirstLoopTurn) {
  Harness h;
  ASSERT_TRUE(h.egress->police({42, "", 1000}, 1, "ann", {}));
  h.io.run_for(std::chrono::milliseconds(10));
  EXPECT_EQ(h.fake->retained, (std::vector<uint64_t>{42}));
}

TEST(Egress, SystemLookupReadsEtcHosts) {
  Result<std::vector<np::Cidr>> got = Egress::systemLookup("localhost");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_NE(std::find(got->begin(), got->end(), ip("127.0.0.1")), got->end());
  EXPECT_FALSE(Egress::systemLookup("no-such-host.invalid"));
}

}  // namespace
}  // namespace hv::supervisor
