#include "supervisor/spawn_plan.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace hv::supervisor {
namespace {

store::AccountRecord ann() {
  store::AccountRecord a;
  a.name = "ann";
  a.user = "ann";
  a.uid = 1001;
  a.gid = 1001;
  a.home = "/home/ann";
  return a;
}

store::InstanceRecord chat() {
  store::InstanceRecord s;
  s.name = "chat";
  s.command = "/home/ann/chat/server";
  s.args = {"--listen", "127.0.0.1:{port}", "{port}{port}"};
  s.env = {{"MODE", "prod"}, {"HOME", "/home/ann/chat"}};
  s.port = 20007;
  return s;
}

bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(SpawnPlan, ReplacesPortPlaceholdersInArguments) {
  auto req = planSpawn(chat(), ann(), false);
  EXPECT_EQ(req.argv, (std::vector<std::string>{"/home/ann/chat/server", "--listen",
                                                 "127.0.0.1:20007", "2000720007"}));
}

TEST(SpawnPlan, CleanEnvironmentWithOwnVariablesAndPortLast) {
  auto req = planSpawn(chat(), ann(), false);
  EXPECT_TRUE(has(req.envp, "PORT=20007"));
  EXPECT_TRUE(has(req.envp, "MODE=prod"));
  EXPECT_TRUE(has(req.envp, "USER=ann"));
  EXPECT_TRUE(has(req.envp, "HOME=/home/ann/chat"));  // the instance's own value wins
  EXPECT_FALSE(has(req.envp, "HOME=/home/ann"));
  EXPECT_EQ(req.envp.back(), "PORT=20007");
}

TEST(SpawnPlan, WorkingDirectoryDefaultsToTheHome) {
  auto spec = chat();
  EXPECT_EQ(planSpawn(spec, ann(), false).cwd, "/home/ann");
  spec.cwd = "/home/ann/chat";
  EXPECT_EQ(planSpawn(spec, ann(), false).cwd, "/home/ann/chat");
}

TEST(SpawnPlan, DropsToTheAccountsCredentialsOnlyWhenAsked) {
  EXPECT_FALSE(planSpawn(chat(), ann(), false).uid.has_value());
  auto req = planSpawn(chat(), ann(), true);
  EXPECT_EQ(req.uid.value(), 1001u);
  EXPECT_EQ(req.gid.value(), 1001u);
}

}  // namespace
}  // namespace hv::supervisor
