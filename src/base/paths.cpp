#include "base/paths.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "base/unique_fd.h"

namespace hv {

std::string defaultDataDir() {
  if (const char* dir = std::getenv("HOSTVISOR_DATA_DIR"); dir && *dir) return dir;
  if (::geteuid() == 0) return "/var/lib/hostvisor";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return std::string(xdg) + "/hostvisor";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.local/share/hostvisor";
}

Status writeFileAtomic(const std::string& path, const std::string& text, int mode) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return failErrno("create " + tmp, errno);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return failErrno("write " + tmp, errno);
  if (::fsync(fd.get()) != 0) return failErrno("fsync " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return failErrno("rename " + tmp, errno);
  return {};
}

}  // namespace hv
