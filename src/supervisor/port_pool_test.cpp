#include "supervisor/port_pool.h"

#include <gtest/gtest.h>

#include <set>

namespace hv::supervisor {
namespace {

class PortPoolTest : public ::testing::Test {
 protected:
  FakeClock clock;
};

TEST_F(PortPoolTest, AllocatesEachPortOnceThenReportsExhaustion) {
  PortPool pool(20000, 20002, nullptr, clock);
  std::set<uint16_t> got;
  for (int i = 0; i < 3; ++i) got.insert(pool.allocate().value());
  EXPECT_EQ(got, (std::set<uint16_t>{20000, 20001, 20002}));
  auto none = pool.allocate();
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::kExhausted);
  EXPECT_NE(none.error().message.find("20000-20002"), std::string::npos);
}

TEST_F(PortPoolTest, SkipsPortsHeldByOtherPrograms) {
  PortPool pool(20000, 20003, [](uint16_t p) { return p == 20000 || p == 20002; }, clock);
  std::set<uint16_t> got{pool.allocate().value(), pool.allocate().value()};
  EXPECT_EQ(got, (std::set<uint16_t>{20001, 20003}));
  auto none = pool.allocate();
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("2 in use by other programs"), std::string::npos);
}

TEST_F(PortPoolTest, ReservedPortsFromTheStoreAreNeverHandedOut) {
  PortPool pool(20000, 20001, nullptr, clock);
  pool.reserve(20000);
  EXPECT_EQ(pool.allocate().value(), 20001);
  EXPECT_FALSE(pool.allocate());
}

// Attack (issue: traffic hijack through pooled upstream connections): an
// account deleted its instance and another account's next create took the
// freed port at once, while the proxy still held connections to it.
TEST_F(PortPoolTest, ReleasedPortCoolsDownBeforeAnyoneGetsItAgain) {
  PortPool pool(20000, 20001, nullptr, clock);
  const uint16_t first = pool.allocate().value();
  const uint16_t other = pool.allocate().value();
  pool.release(first);
  auto none = pool.allocate();
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("1 freed less than 60 s ago"), std::string::npos) << none.error().message;
  clock.advance(PortPool::kCooldown - std::chrono::seconds(1));
  EXPECT_FALSE(pool.allocate());
  clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(pool.allocate().value(), first);
  pool.unreserve(other);  // a create that failed before use: free at once
  EXPECT_EQ(pool.allocate().value(), other);
}

// The cursor used to move one step per create, so an account could aim its
// creates at the port below another account's instance. The search now
// starts at a random place: over many pools, the first port varies.
TEST_F(PortPoolTest, TheFirstPortHandedOutIsNotPredictable) {
  std::set<uint16_t> firsts;
  for (int i = 0; i < 64; ++i) firsts.insert(PortPool(20000, 20999, nullptr, clock).allocate().value());
  EXPECT_GT(firsts.size(), 32u);
}

TEST_F(PortPoolTest, SinglePortRangeWorks) {
  PortPool pool(65535, 65535, nullptr, clock);
  EXPECT_EQ(pool.allocate().value(), 65535);
  EXPECT_FALSE(pool.allocate());
  pool.release(65535);
  clock.advance(PortPool::kCooldown);
  EXPECT_EQ(pool.allocate().value(), 65535);
}

}  // namespace
}  // namespace hv::supervisor
