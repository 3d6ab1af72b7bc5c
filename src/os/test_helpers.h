// Helpers shared by the os tests: pipes, bounded waits on pidfds and fds.
// Test-only; never sleeps — every wait is a poll() with a deadline.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "base/unique_fd.h"
#include "os/process.h"

namespace hv::os::testing {

inline constexpr int kWaitMs = 10'000;

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

inline Pipe makePipe() {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// True if `fd` becomes readable within `timeoutMs`.
inline bool waitReadable(int fd, int timeoutMs = kWaitMs) {
  struct pollfd pfd {fd, POLLIN, 0};
  return ::poll(&pfd, 1, timeoutMs) == 1;
}

// Waits (bounded) for the process behind `pidfd` to exit, then reaps it.
inline std::optional<ExitStatus> waitExit(int pidfd, int timeoutMs = kWaitMs) {
  if (!waitReadable(pidfd, timeoutMs)) return std::nullopt;
  auto status = reap(pidfd);
  if (!status) return std::nullopt;
  return *status;
}

// Reads until EOF (every writer closed) or until no data for `timeoutMs`.
inline std::string readAll(int fd, int timeoutMs = kWaitMs) {
  std::string out;
  char buf[512];
  while (waitReadable(fd, timeoutMs)) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Reads one '\n'-terminated line (without the newline).
inline std::string readLine(int fd, int timeoutMs = kWaitMs) {
  std::string out;
  char c;
  while (waitReadable(fd, timeoutMs) && ::read(fd, &c, 1) == 1 && c != '\n') out.push_back(c);
  return out;
}

// Kills (if still running) and reaps a child at scope exit, so no test leaves
// a process behind even when an assertion returns early.
class ChildReaper {
 public:
  explicit ChildReaper(int pidfd) : pidfd_(pidfd) {}
  ChildReaper(const ChildReaper&) = delete;
  ChildReaper& operator=(const ChildReaper&) = delete;
  ~ChildReaper() {
    auto status = reap(pidfd_);
    if (status && status->has_value()) return;
    (void)sendSignal(pidfd_, SIGKILL);
    (void)waitExit(pidfd_);
  }

 private:
  int pidfd_;
};

}  // namespace hv::os::testing
