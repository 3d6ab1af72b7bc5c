#include "supervisor/proc_time.h"

#include <unistd.h>

#include <fstream>
#include <string>

namespace hv::supervisor {

int64_t startTicksToWallSeconds(uint64_t startTicks) {
  static const int64_t bootTime = [] {
    std::ifstream stat("/proc/stat");
    std::string key;
    int64_t value = 0;
    while (stat >> key) {
      if (key == "btime" && stat >> value) return value;
      stat.ignore(1 << 16, '\n');
    }
    return int64_t{0};
  }();
  const long ticks = ::sysconf(_SC_CLK_TCK);
  if (bootTime == 0 || ticks <= 0) return 0;
  return bootTime + static_cast<int64_t>(startTicks / static_cast<uint64_t>(ticks));
}

}  // namespace hv::supervisor
