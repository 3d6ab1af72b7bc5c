// Unix user lookups (getpwnam_r / getpwuid_r / getgrouplist). Thread-safe.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"

namespace hv::os {

struct UserInfo {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::vector<gid_t> groups;  // supplementary groups, including gid
};

Result<UserInfo> lookupUser(const std::string& name);  // kNotFound if no such user
Result<UserInfo> lookupUid(uid_t uid);

}  // namespace hv::os
