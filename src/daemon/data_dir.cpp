#include "daemon/data_dir.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace hv::daemon {

Status prepareDataDir(const std::string& dir) {
  if (dir.empty() || dir[0] != '/')
    return fail(Errc::kInvalidArgument, fmt::format("data dir '{}' must be an absolute path", dir));
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0711) != 0 && errno != EEXIST) return failErrno("mkdir " + prefix, errno);
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return failErrno("stat " + dir, errno);
  if (!S_ISDIR(st.st_mode)) return fail(Errc::kInvalidArgument, fmt::format("data dir {} is not a directory", dir));
  // Accounts reach api.sock by path: others may traverse the dir, never list
  // or write it (its secrets are 0600 files).
  if ((st.st_mode & 07777) != 0711 && ::chmod(dir.c_str(), 0711) != 0) return failErrno("chmod 0711 " + dir, errno);
  const std::string logs = dir + "/logs";
  if (::mkdir(logs.c_str(), 0750) != 0 && errno != EEXIST) return failErrno("mkdir " + logs, errno);
  return {};
}

Result<UniqueFd> lockDataDir(const std::string& dir) {
  const std::string path = dir + "/hostvisor.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) return failErrno("open " + path, errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return failErrno("lock " + path, errno);
    char buf[32] = {};
    ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
    while (!holder.empty() && holder.back() == '\n') holder.pop_back();
    return fail(Errc::kConflict,
                fmt::format("another hostvisor (pid {}) is serving data dir {}", holder, dir));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 || ::pwrite(fd.get(), pid.data(), pid.size(), 0) < 0)
    return failErrno("write " + path, errno);
  return fd;
}

}  // namespace hv::daemon
