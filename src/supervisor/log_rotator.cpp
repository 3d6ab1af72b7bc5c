#include "supervisor/log_rotator.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"

namespace hv::supervisor {

namespace {

// Appends bytes [from, to) of `in` to `out`.
Status copyRange(int in, int out, off_t from, off_t to) {
  off_t pos = from;
  while (pos < to) {
    ssize_t n = ::copy_file_range(in, &pos, out, nullptr, static_cast<size_t>(to - pos), 0);
    if (n < 0) return failErrno("copy_file_range", errno);
    if (n == 0) break;
  }
  return {};
}

}  // namespace

LogRotator::LogRotator(boost::asio::io_context& io, const LogFiles& logs, RotationPolicy policy)
    : logs_(logs), policy_(policy), inotify_(io) {}

Status LogRotator::start() {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return failErrno("inotify_init1", errno);
  if (::inotify_add_watch(fd, logs_.dir().c_str(), IN_MODIFY) < 0) {
    ::close(fd);
    return failErrno("inotify_add_watch " + logs_.dir(), errno);
  }
  inotify_.assign(fd);
  doWatch();
  return {};
}

void LogRotator::doWatch() {
  inotify_.async_read_some(boost::asio::buffer(events_), [this](boost::system::error_code ec, size_t n) {
    if (ec) return;
    onEvents(n);
    doWatch();
  });
}

void LogRotator::onEvents(size_t bytes) {
  for (size_t pos = 0; pos + sizeof(inotify_event) <= bytes;) {
    const auto* ev = reinterpret_cast<const inotify_event*>(events_.data() + pos);
    pos += sizeof(inotify_event) + ev->len;
    if (ev->len == 0) continue;
    const std::string file(ev->name);
    if (!file.ends_with(".log")) continue;
    if (auto s = rotateIfNeeded(file.substr(0, file.size() - 4)); !s)
      spdlog::warn("log rotation of {}: {}", file, s.error().message);
  }
}

Status LogRotator::rotateIfNeeded(const std::string& instance, bool force) {
  const std::string path = logs_.pathOf(instance);
  UniqueFd in(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!in) return errno == ENOENT ? Status{} : failErrno("open " + path, errno);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return failErrno("fstat " + path, errno);
  if (!force && st.st_size <= policy_.maxBytes) return {};
  if (policy_.keep <= 0) {
    if (::ftruncate(in.get(), 0) != 0) return failErrno("truncate " + path, errno);
    ++rotations_;
    ++generations_[instance];
    return {};
  }
  for (int k = policy_.keep; k > 1; --k) {
    const std::string from = path + "." + std::to_string(k - 1);
    ::rename(from.c_str(), (path + "." + std::to_string(k)).c_str());  // ENOENT: fewer kept so far
  }
  const std::string first = path + ".1";
  UniqueFd out(::open(first.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640));
  if (!out) return failErrno("create " + first, errno);
  // Copy until the size stops moving, then cut: a chatty program loses at
  // most what it writes between the last fstat and the ftruncate.
  off_t copied = 0;
  for (int round = 0; round < 4 && copied < st.st_size; ++round) {
    if (auto s = copyRange(in.get(), out.get(), copied, st.st_size); !s) return s;
    copied = st.st_size;
    if (::fstat(in.get(), &st) != 0) return failErrno("fstat " + path, errno);
  }
  if (::ftruncate(in.get(), 0) != 0) return failErrno("truncate " + path, errno);
  ++rotations_;
  ++generations_[instance];
  return {};
}

uint64_t LogRotator::generation(const std::string& instance) const {
  auto it = generations_.find(instance);
  return it == generations_.end() ? 0 : it->second;
}

}  // namespace hv::supervisor
