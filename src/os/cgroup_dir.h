// CgroupDir: one open cgroup directory and its control files (cgroupfs).
// A building block of cgroup.h; owns the directory fd. Errors name the full
// path of the file, e.g. "write /sys/fs/cgroup/pids/hv/a/run-1/pids.max
// failed: Invalid argument". Thread-compatible (const methods only read).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace hv::os {

// What the daemon uses a hierarchy for: bits of a role set.
struct CgroupRole {
  static constexpr unsigned kTree = 1u << 0;     // v2 membership: cgroup.kill, BPF attach point
  static constexpr unsigned kMemory = 1u << 1;   // limit, usage, OOM count
  static constexpr unsigned kPids = 1u << 2;
  static constexpr unsigned kCpu = 1u << 3;      // quota
  static constexpr unsigned kCpuStat = 1u << 4;  // v2 cpu.stat or v1 cpuacct
  static constexpr unsigned kFreezer = 1u << 5;  // v2 cgroup.freeze or v1 freezer
};

// A single path component cgroupfs accepts and we can't confuse with a
// control file: not empty, no '/', no newline, no leading '.'.
bool isPlainCgroupName(std::string_view name);

class CgroupDir {
 public:
  // Opens an existing cgroup directory (O_RDONLY|O_DIRECTORY|O_CLOEXEC).
  static Result<CgroupDir> open(std::string path);
  // mkdir(2) (an existing directory is fine), then open().
  static Result<CgroupDir> make(std::string path);

  CgroupDir() = default;  // invalid until assigned from open()/make()

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }  // -1 once released
  // Closes the directory fd; later calls go by path. A daemon with thousands
  // of runs keeps thousands fewer descriptors, which every spawn's child
  // would otherwise copy and close again at exec.
  void release() { fd_.reset(); }

  bool has(std::string_view file) const;
  Result<std::string> read(std::string_view file) const;
  // One write(2) of the whole value: cgroupfs parses each write on its own.
  Status write(std::string_view file, std::string_view value) const;
  // Reads the file, then writes the same text back: proves the file is
  // writable without changing anything.
  Status rewrite(std::string_view file) const;
  Result<UniqueFd> openFile(std::string_view file, int flags) const;
  // The pids in cgroup.procs.
  Result<std::vector<pid_t>> procs() const;
  // rmdir(2); ENOENT counts as done. kConflict while processes are inside.
  Status remove() const;

 private:
  std::string at(std::string_view file) const;
  int base() const;
  CgroupDir(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string filePath(std::string_view file) const;

  std::string path_;
  UniqueFd fd_;
};

// The value of `key` in a flat keyed file ("usage_usec 1234\n...", "oom_kill 1").
std::optional<uint64_t> keyedValue(std::string_view text, std::string_view key);

// A whole unsigned decimal with optional trailing newline ("123\n").
std::optional<uint64_t> plainValue(std::string_view text);

// The errno's symbolic name: "EBUSY".
std::string errnoName(int err);

}  // namespace hv::os
