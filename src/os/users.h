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

// For the calling thread only, and for its lifetime: file-system permission
// checks as `uid`/`gid` (setfsuid(2)/setfsgid(2); the root daemon's
// capabilities over files are dropped meanwhile). Validation looks at an
// account's paths with it, so a path the account cannot reach answers EACCES
// as it would for the account, and reveals nothing about other homes.
// Does nothing unless the process runs as root and uid != 0. The thread's
// supplementary groups stay the daemon's.
class AsFileSystemUser {
 public:
  AsFileSystemUser(uid_t uid, gid_t gid);
  ~AsFileSystemUser();
  AsFileSystemUser(const AsFileSystemUser&) = delete;
  AsFileSystemUser& operator=(const AsFileSystemUser&) = delete;

 private:
  bool active_ = false;
  uid_t oldUid_ = 0;
  gid_t oldGid_ = 0;
};

}  // namespace hv::os
