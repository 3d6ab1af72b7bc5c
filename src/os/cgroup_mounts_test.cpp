#include "os/cgroup_mounts.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hv::os {
namespace {

const char* const kHybrid =
    "23 1 0:21 / /sys rw - sysfs sysfs rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n";

const char* const kUnified =
    "25 23 0:22 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

const char* const kLegacy =
    "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";

// Only a named v1 hierarchy beside cgroup2 (systemd's compatibility tree):
// no v1 controllers, so the host is unified for our purposes.
const char* const kUnifiedWithNamed =
    "25 23 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    "26 25 0:23 / /run/systemd/legacy rw - cgroup cgroup rw,xattr,name=systemd\n";

struct LayoutRow {
  const char* name;
  const char* mountinfo;
  CgroupLayout expected;
};

TEST(CgroupMounts, ClassifiesTheLayoutFromMountinfo) {
  const LayoutRow rows[] = {
      {"hybrid", kHybrid, CgroupLayout::kHybrid},
      {"unified", kUnified, CgroupLayout::kUnified},
      {"legacy", kLegacy, CgroupLayout::kLegacy},
      {"named v1 only", kUnifiedWithNamed, CgroupLayout::kUnified},
      {"none", "23 1 0:21 / /sys rw - sysfs sysfs rw\n", CgroupLayout::kNone},
      {"empty", "", CgroupLayout::kNone},
  };
  for (const LayoutRow& row : rows) {
    EXPECT_EQ(classify(parseMountinfo(row.mountinfo)), row.expected) << row.name;
  }
}

TEST(CgroupMounts, ReadsMountPointsAndControllers) {
  std::vector<CgroupMount> mounts = parseMountinfo(kHybrid);
  ASSERT_EQ(mounts.size(), 5u);
  EXPECT_EQ(mounts[0].mountPoint, "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(mounts[0].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_FALSE(mounts[0].v2);
  EXPECT_TRUE(mounts[3].controllers.empty()) << "name=systemd is not a controller";
  EXPECT_TRUE(mounts[4].v2);
  EXPECT_EQ(mounts[4].mountPoint, "/sys/fs/cgroup/unified");
  EXPECT_EQ(mounts[4].root, "/");
}

TEST(CgroupMounts, SeesTheFavordynmodsSuperOption) {
  std::vector<CgroupMount> mounts = parseMountinfo(
      "25 23 0:22 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw,nsdelegate,favordynmods,memory_recursiveprot\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory,favordynmods\n"
      "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n");
  ASSERT_EQ(mounts.size(), 3u);
  EXPECT_TRUE(mounts[0].favorDynmods);
  EXPECT_TRUE(mounts[1].favorDynmods);
  EXPECT_EQ(mounts[1].controllers, (std::vector<std::string>{"memory"}));
  EXPECT_FALSE(mounts[2].favorDynmods);
  for (const CgroupMount& m : parseMountinfo(kHybrid)) EXPECT_FALSE(m.favorDynmods) << m.mountPoint;
}

TEST(CgroupMounts, UnescapesPathsAndLetsTheCoveringMountWin) {
  std::vector<CgroupMount> mounts = parseMountinfo(
      "40 1 0:38 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n"
      "41 1 0:39 / /mnt/my\\040cg rw - cgroup cgroup rw,pids\n"
      "42 1 0:40 /x /mnt/back\\134slash rw - cgroup2 cgroup2 rw\n");
  ASSERT_EQ(mounts.size(), 2u);
  EXPECT_EQ(mounts[0].mountPoint, "/mnt/my cg");
  EXPECT_FALSE(mounts[0].v2) << "the later mount on the same point covers the first";
  EXPECT_EQ(mounts[1].mountPoint, "/mnt/back\\slash");
  EXPECT_EQ(mounts[1].root, "/x");
}

TEST(CgroupMounts, ParsesProcCgroupLines) {
  std::vector<CgroupMembership> lines =
      parseProcCgroup("9:name=systemd:/\n4:memory:/process_api/00f8\n1:cpu,cpuacct:/a\n0::/hv/web/run-1\n");
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_TRUE(lines[0].controllers.empty());
  EXPECT_EQ(lines[1].hierarchyId, 4);
  EXPECT_EQ(lines[1].path, "/process_api/00f8");
  EXPECT_EQ(lines[2].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ(lines[3].hierarchyId, 0);
  EXPECT_EQ(lines[3].path, "/hv/web/run-1");
}

TEST(CgroupMounts, MatchesMountsToMembership) {
  std::vector<CgroupMount> mounts = parseMountinfo(kHybrid);
  std::vector<CgroupMembership> lines = parseProcCgroup("4:memory:/m\n1:cpu,cpuacct:/c\n9:name=systemd:/s\n0::/u\n");
  const CgroupMembership* cpu = membershipFor(mounts[0], lines);
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->path, "/c");
  ASSERT_NE(membershipFor(mounts[1], lines), nullptr);
  EXPECT_EQ(membershipFor(mounts[1], lines)->path, "/m");
  EXPECT_EQ(membershipFor(mounts[2], lines), nullptr) << "no pids line";
  EXPECT_EQ(membershipFor(mounts[3], lines), nullptr) << "named hierarchies are not used";
  ASSERT_NE(membershipFor(mounts[4], lines), nullptr);
  EXPECT_EQ(membershipFor(mounts[4], lines)->path, "/u");
}

struct DirRow {
  const char* root;
  const char* path;
  std::optional<std::string> expected;
};

TEST(CgroupMounts, MapsACgroupPathToItsDirectory) {
  const DirRow rows[] = {
      {"/", "/", "/sys/fs/cgroup/memory"},
      {"/", "/a/b", "/sys/fs/cgroup/memory/a/b"},
      {"/lxc/c1", "/lxc/c1", "/sys/fs/cgroup/memory"},
      {"/lxc/c1", "/lxc/c1/run", "/sys/fs/cgroup/memory/run"},
      {"/lxc/c1", "/lxc/c10", std::nullopt},
      {"/lxc/c1", "/other", std::nullopt},
  };
  for (const DirRow& row : rows) {
    CgroupMount mount{"/sys/fs/cgroup/memory", row.root, false, {"memory"}};
    EXPECT_EQ(cgroupDir(mount, row.path), row.expected) << row.root << " " << row.path;
  }
}

TEST(CgroupMounts, ReadsThisHostsMountsAndMembership) {
  Result<std::vector<CgroupMount>> mounts = readCgroupMounts();
  ASSERT_TRUE(mounts) << mounts.error().message;
  Result<std::vector<CgroupMembership>> self = readMembership(0);
  ASSERT_TRUE(self) << self.error().message;
  for (const CgroupMount& m : *mounts) {
    if (!m.v2 && m.controllers.empty()) continue;
    EXPECT_NE(membershipFor(m, *self), nullptr) << m.mountPoint;
  }
  EXPECT_EQ(readMembership(999'999'999).error().code, Errc::kNotFound);
}

}  // namespace
}  // namespace hv::os
