#include "cli/log_follow.h"

#include <iostream>

namespace hv::cli {

int followLogs(const ApiClient&, const std::string&, int) {
  std::cerr << "hostvisor: error: logs --follow is not built yet; use `hostvisor logs NAME -n N`\n";
  return 1;
}

}  // namespace hv::cli
