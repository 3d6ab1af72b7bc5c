// AuditLog: one JSON line per change anyone makes through the API (who,
// what, on which target, allowed or refused and why), appended to
// DATA_DIR/audit.log (mode 0600) with a single write(2). Control thread only.
//
// Bounded: each field is cut to kFieldBytes (a refused create with a 900 KB
// command must not write 900 KB), and past kMaxBytes the file is rotated by
// rename (audit.log → audit.log.1 …, kKeep old files), like the instances' logs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace hv::api {

class AuditLog {
 public:
  static constexpr size_t kFieldBytes = 512;
  static constexpr int64_t kMaxBytes = 10 << 20;
  static constexpr int kKeep = 3;

  static Result<AuditLog> open(const std::string& path, int64_t maxBytes = kMaxBytes);
  // `who` says how the caller proved itself ("uid 1001", "admin token", ...).
  void record(std::string_view who, std::string_view action, std::string_view target,
              const Status& outcome) const;

 private:
  AuditLog(std::string path, UniqueFd fd, int64_t size, int64_t maxBytes)
      : path_(std::move(path)), fd_(std::move(fd)), size_(size), maxBytes_(maxBytes) {}
  void rotate() const;

  std::string path_;
  mutable UniqueFd fd_;
  mutable int64_t size_;
  int64_t maxBytes_;
};

}  // namespace hv::api
