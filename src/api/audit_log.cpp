#include "api/audit_log.h"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>

namespace hv::api {

Result<AuditLog> AuditLog::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return failErrno("open audit log " + path, errno);
  return AuditLog(std::move(fd));
}

void AuditLog::record(std::string_view who, std::string_view action, std::string_view target,
                      const Status& outcome) const {
  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  boost::json::object line{{"time", fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", now)},
                           {"who", who},
                           {"action", action},
                           {"target", target},
                           {"ok", outcome.has_value()}};
  if (!outcome) line["error"] = outcome.error().message;
  const std::string text = boost::json::serialize(line) + "\n";
  (void)!::write(fd_.get(), text.data(), text.size());
}

}  // namespace hv::api
