#include "supervisor/instance_state.h"

namespace hv::supervisor {

std::string_view stateName(State state) {
  switch (state) {
    case State::kStopped: return "stopped";
    case State::kStarting: return "starting";
    case State::kRunning: return "running";
    case State::kBackoff: return "backoff";
    case State::kStopping: return "stopping";
    case State::kExited: return "exited";
    case State::kFatal: return "fatal";
  }
  return "stopped";
}

}  // namespace hv::supervisor
