#include "api/audit_log.h"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "base/strings.h"

namespace hv::api {
namespace {

UniqueFd openAppend(const std::string& path) {
  return UniqueFd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
}

// At most kFieldBytes of `s` (never cutting a UTF-8 sequence), and how much was cut.
std::string bounded(std::string_view s) {
  if (s.size() <= AuditLog::kFieldBytes) return toValidUtf8(s);
  size_t keep = AuditLog::kFieldBytes;
  while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xC0) == 0x80) --keep;
  return fmt::format("{}… ({} more bytes)", toValidUtf8(s.substr(0, keep)), s.size() - keep);
}

}  // namespace

Result<AuditLog> AuditLog::open(const std::string& path, int64_t maxBytes) {
  UniqueFd fd = openAppend(path);
  if (!fd) return failErrno("open audit log " + path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return failErrno("stat audit log " + path, errno);
  return AuditLog(path, std::move(fd), st.st_size, maxBytes);
}

void AuditLog::rotate() const {
  for (int i = kKeep - 1; i >= 1; --i)
    (void)::rename(fmt::format("{}.{}", path_, i).c_str(), fmt::format("{}.{}", path_, i + 1).c_str());
  if (::rename(path_.c_str(), (path_ + ".1").c_str()) != 0) {
    spdlog::error("audit log: rotate {}: {}", path_, std::strerror(errno));
    return;
  }
  UniqueFd fd = openAppend(path_);
  if (!fd) {
    spdlog::error("audit log: reopen {}: {}", path_, std::strerror(errno));
    return;  // keep writing to the renamed file rather than lose lines
  }
  fd_ = std::move(fd);
  size_ = 0;
}

void AuditLog::record(std::string_view who, std::string_view action, std::string_view target,
                      const Status& outcome) const {
  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  boost::json::object line{{"time", fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", now)},
                           {"who", bounded(who)},
                           {"action", bounded(action)},
                           {"target", bounded(target)},
                           {"ok", outcome.has_value()}};
  if (!outcome) line["error"] = bounded(outcome.error().message);
  const std::string text = boost::json::serialize(line) + "\n";
  if (size_ > 0 && size_ + static_cast<int64_t>(text.size()) > maxBytes_) rotate();
  if (::write(fd_.get(), text.data(), text.size()) > 0) size_ += static_cast<int64_t>(text.size());
}

}  // namespace hv::api
