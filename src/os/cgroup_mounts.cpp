#include "os/cgroup_mounts.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>

#include "base/unique_fd.h"

namespace hv::os {
namespace {

// The v1 controllers of cgroups(7); other super options (rw, xattr,
// name=systemd, release_agent=...) are not controllers.
constexpr std::array<std::string_view, 14> kV1Controllers = {
    "cpuset", "cpu",      "cpuacct",  "blkio",   "memory", "devices", "freezer",
    "net_cls", "perf_event", "net_prio", "hugetlb", "pids",   "rdma",    "misc"};

std::vector<std::string_view> fields(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

bool isOctal(char c) { return c >= '0' && c <= '7'; }

// mountinfo escapes space, tab, newline and backslash as \ooo (proc(5)).
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && isOctal(s[i + 1]) && isOctal(s[i + 2]) && isOctal(s[i + 3])) {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string> controllersOf(std::string_view list) {
  std::vector<std::string> out;
  for (std::string_view opt : fields(list, ',')) {
    if (std::find(kV1Controllers.begin(), kV1Controllers.end(), opt) != kV1Controllers.end()) {
      out.emplace_back(opt);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// "36 35 98:0 /root /mnt rw,noatime master:1 - cgroup cgroup rw,memory":
// the fields after " - " are fstype, source, super options.
std::optional<CgroupMount> parseMountLine(std::string_view line) {
  size_t dash = line.find(" - ");
  if (dash == std::string_view::npos) return std::nullopt;
  std::vector<std::string_view> head = fields(line.substr(0, dash), ' ');
  std::vector<std::string_view> tail = fields(line.substr(dash + 3), ' ');
  if (head.size() < 6 || tail.size() < 3) return std::nullopt;
  bool v2 = tail[0] == "cgroup2";
  if (!v2 && tail[0] != "cgroup") return std::nullopt;
  CgroupMount mount;
  mount.root = unescape(head[3]);
  mount.mountPoint = unescape(head[4]);
  mount.v2 = v2;
  if (!v2) mount.controllers = controllersOf(tail[2]);
  for (std::string_view opt : fields(tail[2], ',')) mount.favorDynmods |= opt == "favordynmods";
  return mount;
}

bool isCgroupFs(const CgroupMount& mount) {
  struct statfs fs {};
  if (::statfs(mount.mountPoint.c_str(), &fs) != 0) return false;
  auto magic = static_cast<unsigned long>(fs.f_type);
  return mount.v2 ? magic == CGROUP2_SUPER_MAGIC : magic == CGROUP_SUPER_MAGIC;
}

Result<std::string> readSmallFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return failErrno("open " + path, errno, errno == ENOENT ? Errc::kNotFound : Errc::kInternal);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  if (n < 0) return failErrno("read " + path, errno);
  return text;
}

}  // namespace

std::string_view layoutName(CgroupLayout layout) {
  switch (layout) {
    case CgroupLayout::kUnified: return "unified";
    case CgroupLayout::kHybrid: return "hybrid";
    case CgroupLayout::kLegacy: return "legacy";
    case CgroupLayout::kNone: return "none";
  }
  return "none";
}

std::vector<CgroupMount> parseMountinfo(std::string_view text) {
  std::vector<CgroupMount> mounts;
  for (std::string_view line : fields(text, '\n')) {
    std::optional<CgroupMount> mount = parseMountLine(line);
    if (!mount) continue;
    std::erase_if(mounts, [&](const CgroupMount& m) { return m.mountPoint == mount->mountPoint; });
    mounts.push_back(std::move(*mount));
  }
  return mounts;
}

std::vector<CgroupMembership> parseProcCgroup(std::string_view text) {
  std::vector<CgroupMembership> lines;
  for (std::string_view line : fields(text, '\n')) {
    size_t first = line.find(':');
    size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    CgroupMembership m;
    std::string_view id = line.substr(0, first);
    auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), m.hierarchyId);
    if (ec != std::errc() || end != id.data() + id.size()) continue;
    m.controllers = controllersOf(line.substr(first + 1, second - first - 1));
    m.path = std::string(line.substr(second + 1));
    lines.push_back(std::move(m));
  }
  return lines;
}

CgroupLayout classify(const std::vector<CgroupMount>& mounts) {
  bool v2 = std::any_of(mounts.begin(), mounts.end(), [](const CgroupMount& m) { return m.v2; });
  bool v1 = std::any_of(mounts.begin(), mounts.end(),
                        [](const CgroupMount& m) { return !m.v2 && !m.controllers.empty(); });
  if (v2) return v1 ? CgroupLayout::kHybrid : CgroupLayout::kUnified;
  return v1 ? CgroupLayout::kLegacy : CgroupLayout::kNone;
}

const CgroupMembership* membershipFor(const CgroupMount& mount, const std::vector<CgroupMembership>& lines) {
  for (const CgroupMembership& line : lines) {
    if (mount.v2 && line.hierarchyId == 0) return &line;
    if (!mount.v2 && line.hierarchyId != 0 && !mount.controllers.empty() && line.controllers == mount.controllers) {
      return &line;
    }
  }
  return nullptr;
}

std::optional<std::string> cgroupDir(const CgroupMount& mount, std::string_view path) {
  std::string_view root = mount.root;
  if (root.ends_with('/')) root.remove_suffix(1);
  if (!path.starts_with(root)) return std::nullopt;
  std::string_view rest = path.substr(root.size());
  if (!rest.empty() && rest[0] != '/') return std::nullopt;  // "/a" must not match "/ab"
  std::string dir = mount.mountPoint;
  if (rest != "/") dir += rest;
  return dir;
}

Result<std::vector<CgroupMount>> readCgroupMounts() {
  Result<std::string> text = readSmallFile("/proc/self/mountinfo");
  if (!text) return std::unexpected(text.error());
  std::vector<CgroupMount> mounts = parseMountinfo(*text);
  std::erase_if(mounts, [](const CgroupMount& m) { return !isCgroupFs(m); });
  return mounts;
}

Result<std::vector<CgroupMembership>> readMembership(pid_t pid) {
  std::string path = pid == 0 ? "/proc/self/cgroup" : "/proc/" + std::to_string(pid) + "/cgroup";
  Result<std::string> text = readSmallFile(path);
  if (!text) return std::unexpected(text.error());
  return parseProcCgroup(*text);
}

}  // namespace hv::os
