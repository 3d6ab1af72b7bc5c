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
  applyAccountDefaults(ann(), s);
  EXPECT_EQ(s.cpuPercent, 50);
  EXPECT_EQ(s.maxProcs, 32);
  s.cpuPercent = 20;
  applyAccountDefaults(ann(), s);
  EXPECT_EQ(s.cpuPercent, 20);
}

TEST(Quota, Table) {
  auto a = ann();
  auto big = withMemory(768LL << 20);
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
      {0, 50, 32, {}, false, "give the instance a memory limit (--memory; 1G left)"},
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
