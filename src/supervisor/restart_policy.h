// RestartPolicy: what to do when an instance's process exits. Pure functions:
// given the policy, how the process ended and how long it lived, returns a
// Decision (restart after a delay, stay exited, or give up as fatal) with the
// reason in words. No clock, no I/O: the caller passes time and randomness in.
#pragma once

#include <chrono>
#include <string>

#include "store/records.h"

namespace hv::supervisor {

using Millis = std::chrono::milliseconds;

struct ExitInfo {
  bool signaled = false;
  int code = 0;       // exit code, or signal number when signaled; -1 = unknown
  Millis uptime{0};   // how long the process ran; negative = it never started (spawn failed)
  bool outOfMemory = false;  // its cgroup counted an OOM kill during the run
};

struct RestartParams {
  store::RestartMode mode = store::RestartMode::kOnFailure;
  Millis startSecs{1000};     // a run shorter than this is a "quick" failure
  int maxQuickFailures = 5;   // this many quick failures in a row → fatal
  Millis baseDelay{100};      // first backoff after a quick failure
  Millis maxDelay{30000};     // backoff cap
};

enum class Action { kRestart, kExited, kFatal };

struct Decision {
  Action action = Action::kExited;
  Millis delay{0};
  int quickFailures = 0;  // the new count of quick failures in a row
  std::string reason;     // "exited with code 1; restarting in 200ms"
};

// "exited with code 3", "killed by signal 9 (SIGKILL)", "exited (status unknown)"
std::string describeExit(const ExitInfo& exit);

// `jitter` in [0, 1) spreads restarts of many instances: the delay is scaled
// by 0.8 + 0.4 * jitter. A run that outlived startSecs resets the failure
// count and restarts at once.
Decision decide(const RestartParams& params, const ExitInfo& exit, int quickFailures,
                double jitter);

}  // namespace hv::supervisor
