// Private to the supervisor folder: the runtime record behind each instance,
// shared by supervisor.cpp (bookkeeping) and supervisor_lifecycle.cpp (processes).
#pragma once

#include <fmt/format.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "supervisor/supervisor.h"

namespace hv::supervisor {

struct Supervisor::Waiter {
  uint64_t id = 0;
  bool untilStopped = false;  // else: until no longer `starting`
  Done done;
  std::unique_ptr<boost::asio::steady_timer> timer;
};

struct Supervisor::Instance {
  explicit Instance(boost::asio::io_context& io) : timer(io), probeTimer(io) {}

  store::InstanceRecord spec;
  uint64_t serial = 0;  // this instance among all made in this daemon: a later one of the same name differs
  State state = State::kStopped;
  std::string reason;
  uint64_t run = 0;  // id of the current process; stale pidfd callbacks compare it
  int pid = 0;
  bool spawning = false;  // a SpawnPool job for `run` is in flight: no pid yet
  bool bootStart = false;  // that job is one of load()'s (Supervisor::bootInFlight_)
  std::unique_ptr<boost::asio::posix::stream_descriptor> pidfd;
  bool ownChild = false;  // false when adopted from an earlier daemon: no exit status
  boost::asio::steady_timer timer;  // start_secs, backoff or stop grace; one at a time
  uint64_t timerGen = 0;            // stale timer callbacks compare it
  boost::asio::steady_timer probeTimer;  // readiness: next connect attempt
  Clock::TimePoint startedAt{};
  int64_t startedWall = 0;
  int quickFailures = 0;
  bool startAfterStop = false;
  std::optional<ExitInfo> lastExit;
  std::string lastOutput;  // the log's last lines, kept when it went exited/fatal
  std::optional<os::RunCgroup> cgroup;  // of the current run
  uint64_t netId = 0;                   // its cgroup id in the network policy, 0 = none
  os::netpolicy::BlockedCounts blockedBefore;  // of earlier runs
  // Stats read from the cgroup at most once a second (status is from memory).
  mutable Clock::TimePoint statsAt{};
  mutable os::CgroupStats stats;
  std::vector<std::unique_ptr<Waiter>> waiters;
  uint64_t nextWaiter = 1;
};

inline Error notFoundError(const std::string& name) {
  return Error::make(Errc::kNotFound, fmt::format("no instance named '{}'", name));
}

}  // namespace hv::supervisor
