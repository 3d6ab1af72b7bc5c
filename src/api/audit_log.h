// AuditLog: one JSON line per change anyone makes through the API (who,
// what, on which target, allowed or refused and why), appended to
// DATA_DIR/audit.log (mode 0600) with a single write(2). Control thread only.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace hv::api {

class AuditLog {
 public:
  static Result<AuditLog> open(const std::string& path);
  // `who` says how the caller proved itself ("uid 1001", "admin token", ...).
  void record(std::string_view who, std::string_view action, std::string_view target,
              const Status& outcome) const;

 private:
  explicit AuditLog(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace hv::api
