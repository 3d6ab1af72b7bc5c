#include "supervisor/restart_policy.h"

#include <fmt/format.h>
#include <string.h>

#include <algorithm>

namespace hv::supervisor {
namespace {

bool isCleanExit(const ExitInfo& exit) { return !exit.signaled && exit.code == 0; }

Millis backoff(const RestartParams& params, int quickFailures, double jitter) {
  Millis delay = params.baseDelay;
  for (int i = 1; i < quickFailures && delay < params.maxDelay; ++i) delay *= 2;
  delay = std::min(delay, params.maxDelay);
  return Millis(static_cast<long long>(delay.count() * (0.8 + 0.4 * jitter)));
}

}  // namespace

std::string describeExit(const ExitInfo& exit) {
  if (exit.outOfMemory) return "killed: out of memory (it went over its memory limit)";
  if (exit.signaled) {
    const char* abbrev = sigabbrev_np(exit.code);
    return abbrev ? fmt::format("killed by signal {} (SIG{})", exit.code, abbrev)
                  : fmt::format("killed by signal {}", exit.code);
  }
  if (exit.code < 0) return "exited (status unknown)";
  return fmt::format("exited with code {}", exit.code);
}

Decision decide(const RestartParams& params, const ExitInfo& exit, int quickFailures,
                double jitter) {
  Decision d;
  const std::string how = describeExit(exit);
  const bool wantsRestart =
      params.mode == store::RestartMode::kAlways ||
      (params.mode == store::RestartMode::kOnFailure && !isCleanExit(exit));
  if (!wantsRestart) {
    d.action = Action::kExited;
    d.reason = how;
    return d;
  }
  if (exit.uptime >= params.startSecs) {
    d.action = Action::kRestart;
    d.reason = how + "; restarting";
    return d;
  }
  d.quickFailures = quickFailures + 1;
  if (d.quickFailures >= params.maxQuickFailures) {
    d.action = Action::kFatal;
    d.reason = fmt::format("crash loop: {} quick exits in a row (each within start_secs {}ms); "
                           "last {}; fix the program and start it again",
                           d.quickFailures, params.startSecs.count(), how);
    return d;
  }
  d.action = Action::kRestart;
  d.delay = backoff(params, d.quickFailures, jitter);
  d.reason = fmt::format("{}; restarting in {}ms", how, d.delay.count());
  return d;
}

}  // namespace hv::supervisor
