// The states of an instance (PRODUCT.md) and their wire names.
#pragma once

#include <optional>
#include <string_view>

namespace hv::supervisor {

enum class State { kStopped, kStarting, kRunning, kBackoff, kStopping, kExited, kFatal };

std::string_view stateName(State state);

// Has a live process (or is about to have one again without the owner's word).
inline bool isActive(State s) {
  return s == State::kStarting || s == State::kRunning || s == State::kBackoff ||
         s == State::kStopping;
}

}  // namespace hv::supervisor
