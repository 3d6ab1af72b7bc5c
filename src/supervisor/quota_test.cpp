#include "supervisor/quota.h"

#include <gtest/gtest.h>

namespace hv::supervisor {
namespace {

store::AccountRecord ann() {
  store::AccountRecord a;
  a.name = "ann";
  a.maxMemoryBytes = 1LL << 30;
  a.maxCpuPercent = 50;
  a.maxProcs = 32;
  return a;
}

store::InstanceRecord withMemory(int64_t bytes) {
  store::InstanceRecord s;
  s.memoryBytes = bytes;
  return s;
}

TEST(Quota, CapsDefaultToTheAccounts) {
  store::InstanceRecord s;
  applyAccountDefaults(ann(), s, {});
  EXPECT_EQ(s.cpuPercent, 50);
  EXPECT_EQ(s.maxProcs, 32);
  EXPECT_EQ(s.memoryBytes, kDefaultInstanceMemory);
  s.cpuPercent = 20;
  applyAccountDefaults(ann(), s, {});
  EXPECT_EQ(s.cpuPercent, 20);
}

// Attack: an account PATCHed its instance to {"procs":0,"cpu":0} and 0 read
// as "unlimited"; 400 processes followed. 0 is the account's cap.
TEST(Quota, ZeroIsTheAccountsCapNeverUnlimited) {
  store::InstanceRecord s;
  s.maxProcs = 0;
  s.cpuPercent = 0;
  s.memoryBytes = 0;
  auto big = withMemory(900LL << 20);
  applyAccountDefaults(ann(), s, {&big});
  EXPECT_EQ(s.maxProcs, 32);
  EXPECT_EQ(s.cpuPercent, 50);
  EXPECT_EQ(s.memoryBytes, 124LL << 20);  // what is left of 1G, below the default
  EXPECT_TRUE(checkQuota(ann(), s, {&big}));
  auto full = withMemory(1LL << 30);
  store::InstanceRecord t;
  applyAccountDefaults(ann(), t, {&full});
  auto st = checkQuota(ann(), t, {&full});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("none of it is left"), std::string::npos) << st.error().message;
}

TEST(Quota, Table) {
  auto a = ann();
  auto big = withMemory(768LL << 20);
  auto full = withMemory(1LL << 30);
  struct Row {
    int64_t memory;
    int cpu, procs;
    std::vector<const store::InstanceRecord*> others;
    bool ok;
    const char* mentions;
  } rows[] = {
      {256LL << 20, 50, 32, {}, true, ""},
      {256LL << 20, 51, 32, {}, false, "cpu 51 is over the limit of account 'ann' (50)"},
      {256LL << 20, 50, 33, {}, false, "procs 33"},
      {0, 50, 32, {&full}, false, "none of it is left"},
      {256LL << 20, 50, 32, {&big}, true, ""},
      {512LL << 20, 50, 32, {&big}, false, "more than account 'ann' has left (256M of its 1G)"},
  };
  for (const Row& r : rows) {
    store::InstanceRecord s = withMemory(r.memory);
    s.cpuPercent = r.cpu;
    s.maxProcs = r.procs;
    auto st = checkQuota(a, s, r.others);
    EXPECT_EQ(st.has_value(), r.ok) << r.mentions;
    if (!st) {
      EXPECT_NE(st.error().message.find(r.mentions), std::string::npos) << st.error().message;
    }
  }
}

TEST(Quota, NoQuotaMeansNoLimit) {
  store::AccountRecord free;
  free.name = "free";
  EXPECT_TRUE(checkQuota(free, withMemory(0), {}));
}

}  // namespace
}  // namespace hv::supervisor
