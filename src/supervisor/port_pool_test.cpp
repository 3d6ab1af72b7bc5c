#include "supervisor/port_pool.h"

#include <gtest/gtest.h>

#include <set>

namespace hv::supervisor {
namespace {

TEST(PortPool, AllocatesEachPortOnceThenReportsExhaustion) {
  PortPool pool(20000, 20002, nullptr);
  std::set<uint16_t> got;
  for (int i = 0; i < 3; ++i) got.insert(pool.allocate().value());
  EXPECT_EQ(got, (std::set<uint16_t>{20000, 20001, 20002}));
  auto none = pool.allocate();
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::kExhausted);
  EXPECT_NE(none.error().message.find("20000-20002"), std::string::npos);
}

TEST(PortPool, SkipsPortsHeldByOtherPrograms) {
  PortPool pool(20000, 20003, [](uint16_t p) { return p == 20000 || p == 20002; });
  EXPECT_EQ(pool.allocate().value(), 20001);
  EXPECT_EQ(pool.allocate().value(), 20003);
  auto none = pool.allocate();
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("2 in use by other programs"), std::string::npos);
}

TEST(PortPool, ReservedPortsFromTheStoreAreNeverHandedOut) {
  PortPool pool(20000, 20001, nullptr);
  pool.reserve(20000);
  EXPECT_EQ(pool.allocate().value(), 20001);
  EXPECT_FALSE(pool.allocate());
}

TEST(PortPool, ReleasedPortIsReusedOnlyAfterTheCursorWrapsAround) {
  PortPool pool(20000, 20002, nullptr);
  EXPECT_EQ(pool.allocate().value(), 20000);
  pool.release(20000);
  EXPECT_EQ(pool.allocate().value(), 20001);
  EXPECT_EQ(pool.allocate().value(), 20002);
  EXPECT_EQ(pool.allocate().value(), 20000);
}

TEST(PortPool, SinglePortRangeWorks) {
  PortPool pool(65535, 65535, nullptr);
  EXPECT_EQ(pool.allocate().value(), 65535);
  EXPECT_FALSE(pool.allocate());
  pool.release(65535);
  EXPECT_EQ(pool.allocate().value(), 65535);
}

}  // namespace
}  // namespace hv::supervisor
