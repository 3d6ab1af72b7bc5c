// LogRotator: keeps each instance's log under a size, with N older files.
//
// The program writes straight into NAME.log (O_APPEND; see log_files.h), so
// the file cannot be renamed under it: rotation copies NAME.log to
// NAME.log.1 (after shifting .1→.2 …, dropping the oldest) and truncates it
// to 0; the program's next write lands at the new start. Bytes written in
// the instant between the last copy and the truncate are lost; the copy is
// repeated until the size is stable to keep that window to microseconds.
// Woken by inotify (IN_MODIFY on the logs directory), never by a timer.
// Runs on the control io_context's thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "base/result.h"
#include "supervisor/log_files.h"

namespace hv::supervisor {

struct RotationPolicy {
  int64_t maxBytes = 10 << 20;  // rotate when NAME.log grows past this
  int keep = 3;                 // NAME.log.1 … NAME.log.N
};

class LogRotator {
 public:
  LogRotator(boost::asio::io_context& io, const LogFiles& logs, RotationPolicy policy);
  Status start();
  // Rotates NAME.log if it is over the size (or always, if `force`).
  Status rotateIfNeeded(const std::string& instance, bool force = false);
  uint64_t rotations() const { return rotations_; }
  // How many times NAME.log was rotated since the daemon started. A follower
  // that sees it change reads the rest of what it had not sent from
  // NAME.log.1, an exact copy at the same offsets, then the fresh NAME.log.
  uint64_t generation(const std::string& instance) const;

 private:
  void doWatch();
  void onEvents(size_t bytes);

  const LogFiles& logs_;
  RotationPolicy policy_;
  boost::asio::posix::stream_descriptor inotify_;
  std::array<char, 16 * 1024> events_{};
  uint64_t rotations_ = 0;
  std::unordered_map<std::string, uint64_t> generations_;
};

}  // namespace hv::supervisor
