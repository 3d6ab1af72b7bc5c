#include "os/users.h"

#include <sys/fsuid.h>
#include <unistd.h>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace hv::os {
namespace {

constexpr size_t kMaxPwBuffer = 1 << 20;  // give up on absurd passwd entries
constexpr int kMaxGroups = 1 << 16;       // NGROUPS_MAX on Linux

size_t initialPwBufferSize() {
  long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);  // -1 = no fixed limit (sysconf(3))
  return hint > 0 ? static_cast<size_t>(hint) : 1024;
}

// getgrouplist(3) returns -1 when the array is too small and then stores the
// size it needs in *ngroups.
Result<std::vector<gid_t>> groupsOf(const char* name, gid_t gid) {
  std::vector<gid_t> groups(32);
  for (;;) {
    int count = static_cast<int>(groups.size());
    if (::getgrouplist(name, gid, groups.data(), &count) >= 0) {
      groups.resize(static_cast<size_t>(count));
      return groups;
    }
    if (groups.size() >= static_cast<size_t>(kMaxGroups)) {
      return fail(Errc::kInternal, std::string("getgrouplist ") + name + ": too many groups");
    }
    size_t next = std::max(static_cast<size_t>(count), groups.size() * 2);
    groups.resize(std::min(next, static_cast<size_t>(kMaxGroups)));
  }
}

// `lookup` calls getpwnam_r or getpwuid_r with the given buffer; `what`
// describes the key for messages ("named 'x'", "with uid 7").
template <class Lookup>
Result<UserInfo> lookupWith(Lookup lookup, const char* step, const std::string& what) {
  std::vector<char> buffer(initialPwBufferSize());
  struct passwd pwd {};
  struct passwd* found = nullptr;
  int rc;
  while ((rc = lookup(&pwd, buffer.data(), buffer.size(), &found)) == ERANGE) {
    if (buffer.size() >= kMaxPwBuffer) return failErrno(step, rc);
    buffer.resize(buffer.size() * 2);
  }
  // getpwnam_r(3): "not found" is 0 with a null result; some NSS modules
  // report it as ENOENT or ESRCH instead.
  if (found == nullptr && (rc == 0 || rc == ENOENT || rc == ESRCH)) {
    return fail(Errc::kNotFound, "no Unix user " + what);
  }
  if (found == nullptr) return failErrno(step, rc);
  UserInfo user;
  user.name = pwd.pw_name;
  user.uid = pwd.pw_uid;
  user.gid = pwd.pw_gid;
  user.home = pwd.pw_dir;
  Result<std::vector<gid_t>> groups = groupsOf(pwd.pw_name, pwd.pw_gid);
  if (!groups) return std::unexpected(groups.error());
  user.groups = std::move(*groups);
  return user;
}

}  // namespace

Result<UserInfo> lookupUser(const std::string& name) {
  if (name.empty() || name.find('\0') != std::string::npos) {
    return fail(Errc::kNotFound, "no Unix user named '" + name + "'");
  }
  auto byName = [&](passwd* pwd, char* buf, size_t len, passwd** out) {
    return ::getpwnam_r(name.c_str(), pwd, buf, len, out);
  };
  return lookupWith(byName, "getpwnam_r", "named '" + name + "'");
}

Result<UserInfo> lookupUid(uid_t uid) {
  auto byUid = [&](passwd* pwd, char* buf, size_t len, passwd** out) {
    return ::getpwuid_r(uid, pwd, buf, len, out);
  };
  return lookupWith(byUid, "getpwuid_r", "with uid " + std::to_string(uid));
}

AsFileSystemUser::AsFileSystemUser(uid_t uid, gid_t gid) {
  if (::geteuid() != 0 || uid == 0) return;
  active_ = true;
  oldGid_ = static_cast<gid_t>(::setfsgid(gid));  // first, while still privileged
  oldUid_ = static_cast<uid_t>(::setfsuid(uid));
}

AsFileSystemUser::~AsFileSystemUser() {
  if (!active_) return;
  ::setfsuid(oldUid_);
  ::setfsgid(oldGid_);
}

}  // namespace hv::os
