// NetPolicyTest: setup and the cleanup that must hold even after a failed
// assertion (gtest runs TearDown whatever happened in the test body).
#include <bpf/bpf.h>
#include <dirent.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "os/netpolicy/netpolicy_test_helpers.h"

namespace hv::os::netpolicy::testing {
namespace {

bool isCgroup2(const std::string& path) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  return names;
}

}  // namespace

void NetPolicyTest::SetUp() {
  if (::geteuid() != 0) GTEST_SKIP() << "BPF and cgroups need root";
  static int counter = 0;
  name_ = "np-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  Result<Cgroups> cgroups = Cgroups::open(name_);
  ASSERT_TRUE(cgroups) << cgroups.error().message;
  cgroups_.emplace(std::move(*cgroups));
  if (!cgroups_->usable() || !isCgroup2(cgroups_->rootPath())) GTEST_SKIP() << "no cgroup2 tree on this host";
  openPolicy();
}

void NetPolicyTest::openPolicy() {
  Result<NetPolicy> policy = NetPolicy::open(cgroups_->rootPath(), name_);
  ASSERT_TRUE(policy) << policy.error().message;
  policy_.emplace(std::move(*policy));
  if (!policy_->usable()) GTEST_SKIP() << "BPF unavailable: " << policy_->mechanisms().front().detail;
  mapIds_.clear();
  linkIds_.clear();
  for (const std::string& pin : entries(policy_->pinDir())) {
    UniqueFd fd(bpf_obj_get((policy_->pinDir() + "/" + pin).c_str()));
    ASSERT_TRUE(fd) << pin;
    if (pin.starts_with("link_")) {
      bpf_link_info info{};
      uint32_t len = sizeof info;
      ASSERT_EQ(bpf_obj_get_info_by_fd(fd.get(), &info, &len), 0) << pin;
      linkIds_.push_back(info.id);
    } else {
      bpf_map_info info{};
      uint32_t len = sizeof info;
      ASSERT_EQ(bpf_obj_get_info_by_fd(fd.get(), &info, &len), 0) << pin;
      mapIds_.push_back(info.id);
    }
  }
  std::sort(mapIds_.begin(), mapIds_.end());
  std::sort(linkIds_.begin(), linkIds_.end());
}

void NetPolicyTest::TearDown() {
  if (cgroups_) {
    Status ok = cgroups_->destroy();  // kills every attacker left
    EXPECT_TRUE(ok) << ok.error().message;
  }
  policy_.reset();
  if (name_.empty()) return;
  Status removed = NetPolicy::removePins(name_);
  EXPECT_TRUE(removed) << removed.error().message;
  EXPECT_NE(::access(("/sys/fs/bpf/hostvisor-" + name_).c_str(), F_OK), 0);
  // The kernel frees links, then programs, then maps, asynchronously.
  for (uint32_t id : linkIds_) {
    EXPECT_TRUE(waitFor([id] {
      UniqueFd fd(bpf_link_get_fd_by_id(id));
      return !fd && errno == ENOENT;
    })) << "link " << id << " still exists";
  }
  for (uint32_t id : mapIds_) {
    EXPECT_TRUE(waitFor([id] {
      UniqueFd fd(bpf_map_get_fd_by_id(id));
      return !fd && errno == ENOENT;
    })) << "map " << id << " still exists";
  }
}

RunCgroup NetPolicyTest::newRun(const std::string& instance) {
  Result<RunCgroup> run = cgroups_->createRun(instance, ++runs_, {});
  EXPECT_TRUE(run) << run.error().message;
  return std::move(run).value();  // throws (a test failure) if createRun failed
}

uint64_t NetPolicyTest::idOf(const RunCgroup& run) {
  Result<uint64_t> id = cgroupIdOf(run.path());
  EXPECT_TRUE(id) << id.error().message;
  return id.value_or(0);
}

BlockedCounts NetPolicyTest::counts(uint64_t id) {
  Result<BlockedCounts> c = policy_->blocked(id);
  EXPECT_TRUE(c) << c.error().message;
  return c.value_or(BlockedCounts{});
}

void NetPolicyTest::set(uint64_t id, const InstancePolicy& p) {
  Status ok = policy_->set(id, p);
  ASSERT_TRUE(ok) << ok.error().message;
}

const MechanismReport* NetPolicyTest::mechanism(const std::string& row) const {
  const auto& rows = policy_->mechanisms();
  auto it = std::find_if(rows.begin(), rows.end(), [&](const MechanismReport& m) { return m.name == row; });
  return it == rows.end() ? nullptr : &*it;
}

}  // namespace hv::os::netpolicy::testing
