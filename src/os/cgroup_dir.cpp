#include "os/cgroup_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace hv::os {
namespace {

std::optional<uint64_t> parseUint(std::string_view s) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

}  // namespace

bool isPlainCgroupName(std::string_view name) {
  return !name.empty() && name.size() <= 200 && name[0] != '.' && name.find('/') == std::string_view::npos &&
         name.find('\n') == std::string_view::npos;
}

Result<CgroupDir> CgroupDir::open(std::string path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return failErrno("open " + path, errno, errno == ENOENT ? Errc::kNotFound : Errc::kInternal);
  return CgroupDir(std::move(path), std::move(fd));
}

Result<CgroupDir> CgroupDir::make(std::string path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return failErrno("mkdir " + path, errno);
  return open(std::move(path));
}

std::string CgroupDir::filePath(std::string_view file) const { return path_ + "/" + std::string(file); }

// Relative to the open directory, or by path once release()d.
std::string CgroupDir::at(std::string_view file) const { return fd_ ? std::string(file) : filePath(file); }
int CgroupDir::base() const { return fd_ ? fd_.get() : AT_FDCWD; }

bool CgroupDir::has(std::string_view file) const { return ::faccessat(base(), at(file).c_str(), F_OK, 0) == 0; }

Result<UniqueFd> CgroupDir::openFile(std::string_view file, int flags) const {
  UniqueFd fd(::openat(base(), at(file).c_str(), flags | O_CLOEXEC));
  if (!fd) {
    return failErrno("open " + filePath(file), errno, errno == ENOENT ? Errc::kNotFound : Errc::kInternal);
  }
  return fd;
}

Result<std::string> CgroupDir::read(std::string_view file) const {
  Result<UniqueFd> fd = openFile(file, O_RDONLY);
  if (!fd) return std::unexpected(fd.error());
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd->get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  if (n < 0) return failErrno("read " + filePath(file), errno);
  return text;
}

Status CgroupDir::write(std::string_view file, std::string_view value) const {
  Result<UniqueFd> fd = openFile(file, O_WRONLY);
  if (!fd) return std::unexpected(fd.error());
  ssize_t n = ::write(fd->get(), value.data(), value.size());
  if (n < 0) return failErrno("write " + filePath(file), errno);
  if (static_cast<size_t>(n) != value.size()) return failErrno("write " + filePath(file), EIO);
  return {};
}

Status CgroupDir::rewrite(std::string_view file) const {
  Result<std::string> text = read(file);
  if (!text) return std::unexpected(text.error());
  return write(file, *text);
}

Result<std::vector<pid_t>> CgroupDir::procs() const {
  Result<std::string> text = read("cgroup.procs");
  if (!text) return std::unexpected(text.error());
  std::vector<pid_t> pids;
  size_t start = 0;
  while (start < text->size()) {
    size_t end = text->find('\n', start);
    if (end == std::string::npos) end = text->size();
    if (auto pid = parseUint(std::string_view(*text).substr(start, end - start))) {
      pids.push_back(static_cast<pid_t>(*pid));
    }
    start = end + 1;
  }
  return pids;
}

Status CgroupDir::remove() const {
  if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) return {};
  int err = errno;
  return failErrno("rmdir " + path_, err, err == EBUSY ? Errc::kConflict : Errc::kInternal);
}

std::optional<uint64_t> keyedValue(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ') {
      return parseUint(line.substr(key.size() + 1));
    }
    pos = end + 1;
  }
  return std::nullopt;
}

std::optional<uint64_t> plainValue(std::string_view text) {
  if (text.ends_with('\n')) text.remove_suffix(1);
  return parseUint(text);
}

std::string errnoName(int err) {
  const char* name = ::strerrorname_np(err);
  return name != nullptr ? name : "errno " + std::to_string(err);
}

}  // namespace hv::os
