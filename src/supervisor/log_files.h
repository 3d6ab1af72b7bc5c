// LogFiles: where each instance's output goes, and reading it back.
//
// The program's stdout and stderr are the log file itself, opened O_APPEND
// and handed to the child: the program never blocks on a full pipe, and its
// output keeps flowing when the daemon is restarted or killed. The daemon adds
// its own lines about the instance ("[hostvisor] started pid 12 on port 20000")
// to the same file, so one file tells the whole story in order.
// Thread-compatible: no shared state besides the file system.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace hv::supervisor {

class LogFiles {
 public:
  explicit LogFiles(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  std::string pathOf(std::string_view instance) const;
  // O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, mode 0640.
  Result<UniqueFd> openForAppend(std::string_view instance) const;
  // Appends "[hostvisor TIMESTAMP] message\n" with one write(2) (atomic for O_APPEND).
  void appendEvent(std::string_view instance, std::string_view message) const;
  // The last `lines` lines (at most `maxBytes` bytes of them) of the first
  // `end` bytes of the log (end < 0: the whole file). If the log was just
  // rotated and holds fewer lines, the rest come from NAME.log.1.
  Result<std::string> tail(std::string_view instance, int lines, off_t end = -1,
                           size_t maxBytes = 4 << 20) const;
  // Removes NAME.log and its rotated files NAME.log.1 … NAME.log.9.
  void remove(std::string_view instance) const;

 private:
  Result<std::string> tailOf(const std::string& path, int lines, off_t end, size_t maxBytes) const;

  std::string dir_;
};

}  // namespace hv::supervisor
