#include "base/clock.h"

namespace hv {

int64_t SystemClock::wallSeconds() const {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace hv
