#include "os/users.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace hv::os {
namespace {

TEST(Users, LookupRootByName) {
  Result<UserInfo> root = lookupUser("root");
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_EQ(root->name, "root");
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->gid, 0u);
  EXPECT_EQ(root->home, "/root");
  EXPECT_NE(std::find(root->groups.begin(), root->groups.end(), 0u), root->groups.end());
}

TEST(Users, LookupUidZeroIsRoot) {
  Result<UserInfo> root = lookupUid(0);
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_EQ(root->name, "root");
}

TEST(Users, UnknownNameIsNotFound) {
  Result<UserInfo> user = lookupUser("hv-no-such-user-xq7");
  ASSERT_FALSE(user);
  EXPECT_EQ(user.error().code, Errc::kNotFound);
  EXPECT_EQ(user.error().message, "no Unix user named 'hv-no-such-user-xq7'");
}

TEST(Users, UnknownUidIsNotFound) {
  Result<UserInfo> user = lookupUid(3'999'999'999u);
  ASSERT_FALSE(user);
  EXPECT_EQ(user.error().code, Errc::kNotFound);
}

TEST(Users, EmptyNameIsNotFound) {
  EXPECT_EQ(lookupUser("").error().code, Errc::kNotFound);
}

}  // namespace
}  // namespace hv::os
