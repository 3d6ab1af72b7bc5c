#include "base/paths.h"

#include <unistd.h>

#include <cstdlib>

namespace hv {

std::string defaultDataDir() {
  if (const char* dir = std::getenv("HOSTVISOR_DATA_DIR"); dir && *dir) return dir;
  if (::geteuid() == 0) return "/var/lib/hostvisor";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return std::string(xdg) + "/hostvisor";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.local/share/hostvisor";
}

}  // namespace hv
