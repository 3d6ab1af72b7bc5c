#include "os/mount_ns.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "os/spawn.h"

namespace hv::os {
namespace {

// Every world-writable directory a program could share with other accounts:
// each account gets its own (/run/lock is the FHS lock dir, world-writable).
constexpr const char* kTmpDirs[] = {"/tmp", "/var/tmp", "/dev/shm", "/run/lock"};

// `path` is `base` or lies below it; both canonical.
bool isUnder(std::string_view path, std::string_view base) {
  if (base == "/") return true;
  return path == base || (path.starts_with(base) && path.size() > base.size() && path[base.size()] == '/');
}

bool hasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// The canonical path, or "" when it does not exist or is itself a symbolic
// link (then its target is what matters, and is listed on its own).
Result<std::string> resolve(const std::string& path) {
  if (path.empty() || path.front() != '/' || hasNul(path)) {
    return fail(Errc::kInvalidArgument, "mount plan: \"" + path + "\" is not an absolute path");
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0 || S_ISLNK(st.st_mode)) return std::string();
  std::error_code ec;
  std::filesystem::path real = std::filesystem::canonical(path, ec);
  if (ec) return std::string();
  return real.string();
}

bool isDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// With a size, the inodes are capped too (one per 8 KiB, at least 1,024):
// tmpfs's default, half of RAM in pages, would let empty files alone use
// kernel memory the size does not count.
std::string tmpfsData(const char* mode, uint64_t sizeBytes) {
  std::string data = std::string("mode=") + mode;
  if (sizeBytes > 0) {
    data += ",size=" + std::to_string(sizeBytes);
    data += ",nr_inodes=" + std::to_string(std::max<uint64_t>(1024, sizeBytes / 8192));
  }
  return data;
}

// "64 MiB each"; "no size cap" for 0.
std::string describeTmpSize(uint64_t bytes) {
  if (bytes == 0) return "no size cap";
  if (bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB each";
  return std::to_string(bytes) + " bytes each";
}

// Child side of probePrivateMounts: report = {errno, failed step}.
void probeChild(const void* arg, int report[2]) {
  report[1] = 0;
  report[0] = static_cast<const MountPlan*>(arg)->apply(&report[1]);
}

}  // namespace

std::vector<std::string> defaultReadOnlyDirs() {
  return {"/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/boot", "/opt"};
}

int MountPlan::applyOp(const Op& op, int& tree) noexcept {
  const char* path = op.path.c_str();
  switch (op.kind) {
    case Kind::kMakePrivate:
      return ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0 ? errno : 0;
    case Kind::kCloneTree:
      tree = ::open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
      return tree < 0 ? errno : 0;
    case Kind::kReadOnly: {
      // A bind onto itself makes the path a mount point of its own; only then
      // may its attributes change without touching the mount above it.
      if (::mount(path, path, nullptr, MS_BIND | MS_REC, nullptr) < 0) return errno;
      struct mount_attr attr {};
      attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
      if (::mount_setattr(AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof attr) == 0) return 0;
      if (errno != ENOSYS) return errno;
      unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV;
      return ::mount(nullptr, path, nullptr, flags, nullptr) < 0 ? errno : 0;
    }
    case Kind::kTmpfs:
    case Kind::kHomesRoot:
    case Kind::kHide:
      return ::mount("tmpfs", path, "tmpfs", op.flags, op.data.c_str()) < 0 ? errno : 0;
    case Kind::kMkdir:
      // chmod as well: the daemon's umask (often 077) must not lock the account out.
      if (::mkdir(path, 0755) < 0 && errno != EEXIST) return errno;
      return ::chmod(path, 0755) < 0 ? errno : 0;
    case Kind::kPlaceTree: {
      int err = ::move_mount(tree, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) < 0 ? errno : 0;
      ::close(tree);
      tree = -1;
      return err;
    }
  }
  return EINVAL;
}

int MountPlan::apply(int* failedOp) const noexcept {
  int tree = -1;
  for (size_t i = 0; i < ops_.size(); ++i) {
    *failedOp = static_cast<int>(i);
    if (int err = applyOp(ops_[i], tree); err != 0) return err;
  }
  *failedOp = static_cast<int>(ops_.size());
  return ::chdir("/") < 0 ? errno : 0;
}

std::string MountPlan::describe(int op) const {
  if (op < 0 || static_cast<size_t>(op) >= ops_.size()) return "chdir /";
  const Op& o = ops_[static_cast<size_t>(op)];
  switch (o.kind) {
    case Kind::kMakePrivate: return "MS_REC|MS_PRIVATE of /";
    case Kind::kCloneTree: return "open_tree of " + o.path;
    case Kind::kReadOnly: return "read-only bind of " + o.path;
    case Kind::kTmpfs: return "tmpfs on " + o.path;
    case Kind::kHomesRoot: return "tmpfs over the homes in " + o.path;
    case Kind::kMkdir: return "mkdir " + o.path;
    case Kind::kPlaceTree: return "move_mount of the home to " + o.path;
    case Kind::kHide: return "hiding tmpfs on " + o.path;
  }
  return "step " + std::to_string(op);
}

std::string MountPlan::fingerprint() const {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 0x100000001b3ull;
    }
    h ^= 0xff;  // field separator: ("ab","c") and ("a","bc") differ
    h *= 0x100000001b3ull;
  };
  mix("hostvisor mount plan v1");
  for (const Op& op : ops_) {
    mix(std::to_string(static_cast<int>(op.kind)));
    mix(op.path);
    mix(op.data);
    mix(std::to_string(op.flags));
    mix(std::to_string(op.dev));
    mix(std::to_string(op.ino));
  }
  return fmt::format("{:016x}-{}", h, ops_.size());
}

std::string MountPlan::summary() const {
  std::string tmp, readOnly, homes, hidden;
  for (const Op& op : ops_) {
    if (op.kind == Kind::kTmpfs) tmp += " " + op.path;
    if (op.kind == Kind::kHomesRoot) homes = "; other homes in " + op.path + " hidden";
    if (op.kind == Kind::kReadOnly) readOnly += " " + op.path;
    if (op.kind == Kind::kHide) hidden += " " + op.path;
  }
  std::string out = "own mount namespace per account";
  if (!tmp.empty()) out += "; private" + tmp + " (" + describeTmpSize(tmpSizeBytes_) + ")";
  if (!readOnly.empty()) out += "; read-only" + readOnly;
  out += homes;
  if (!hidden.empty()) out += "; hidden" + hidden;
  return out;
}

// Fills a MountPlan in the order the header gives; paths resolved here, in
// the parent, so the child only replays the steps.
class MountPlanBuilder {
 public:
  using Op = MountPlan::Op;
  using Kind = MountPlan::Kind;

  explicit MountPlanBuilder(const MountOptions& options) : options_(options) {}

  Result<MountPlan> build() {
    add(Kind::kMakePrivate, "/");
    if (auto ok = resolveHomes(); !ok) return std::unexpected(ok.error());
    if (!home_.empty()) add(Kind::kCloneTree, home_);
    for (const auto& dir : options_.readOnly) {
      auto resolved = resolve(dir);
      if (!resolved) return std::unexpected(resolved.error());
      if (!resolved->empty()) add(Kind::kReadOnly, *resolved);
    }
    if (options_.privateTmp) addPrivateTmp();
    if (!homesRoot_.empty()) addHomes();
    for (const auto& path : options_.hidePaths) {
      if (auto ok = addHidden(path); !ok) return std::unexpected(ok.error());
    }
    return std::move(plan_);
  }

 private:
  void add(Kind kind, std::string path, std::string data = {}, unsigned long flags = 0) {
    struct stat st {};
    const bool exists = ::lstat(path.c_str(), &st) == 0;
    plan_.ops_.push_back(Op{kind, std::move(path), std::move(data), flags, exists ? static_cast<uint64_t>(st.st_dev) : 0,
                            exists ? static_cast<uint64_t>(st.st_ino) : 0});
  }

  // homesRoot_ (when hiding homes and it exists) and home_ (when it lies
  // below homesRoot_ and so must be put back).
  Status resolveHomes() {
    if (!options_.hideOtherHomes) return {};
    auto root = resolve(options_.homesRoot);
    if (!root) return std::unexpected(root.error());
    homesRoot_ = *root;
    if (options_.home.empty()) return {};
    auto home = resolve(options_.home);
    if (!home) return std::unexpected(home.error());
    if (home->empty() || !isDirectory(*home)) {
      return fail(Errc::kInvalidArgument, "mount plan: home " + options_.home + " is not a directory");
    }
    if (!homesRoot_.empty() && isUnder(*home, homesRoot_) && *home != homesRoot_) home_ = *home;
    return {};
  }

  void addPrivateTmp() {
    for (const char* dir : kTmpDirs) {
      auto resolved = resolve(dir);
      if (!resolved || resolved->empty() || !isDirectory(*resolved)) continue;
      freshDirs_.push_back(*resolved);
      add(Kind::kTmpfs, *resolved, tmpfsData("1777", options_.tmpSizeBytes), MS_NOSUID | MS_NODEV);
      plan_.tmpSizeBytes_ = options_.tmpSizeBytes;
    }
  }

  void addHomes() {
    freshDirs_.push_back(homesRoot_);
    add(Kind::kHomesRoot, homesRoot_, tmpfsData("0755", 1 << 20), MS_NOSUID | MS_NODEV | MS_NOEXEC);
    if (home_.empty()) return;
    // Each directory from below the homes root down to the home itself.
    for (size_t end = home_.find('/', homesRoot_.size() + 1);; end = home_.find('/', end + 1)) {
      add(Kind::kMkdir, home_.substr(0, end));
      if (end == std::string::npos) break;
    }
    add(Kind::kPlaceTree, home_);
  }

  Status addHidden(const std::string& path) {
    auto resolved = resolve(path);
    if (!resolved) return std::unexpected(resolved.error());
    if (resolved->empty()) return {};  // nothing there to hide
    if (!isDirectory(*resolved)) {
      return fail(Errc::kInvalidArgument, "mount plan: hidden path " + path + " is not a directory");
    }
    // Below a fresh tmpfs it is gone already — unless inside the home put back.
    bool covered = false;
    for (const auto& dir : freshDirs_) covered = covered || isUnder(*resolved, dir);
    if (!home_.empty() && isUnder(*resolved, home_)) covered = false;
    if (!covered) add(Kind::kHide, *resolved, "mode=0555,size=4k", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    return {};
  }

  const MountOptions& options_;
  MountPlan plan_;
  std::string homesRoot_, home_;
  std::vector<std::string> freshDirs_;  // replaced by a new tmpfs
};

Result<MountPlan> buildMountPlan(const MountOptions& options) { return MountPlanBuilder(options).build(); }

Result<MountNamespace> MountNamespace::make(MountPlan plan) {
  UniqueFd fd;
  auto outcome = runInNewMountNs(&probeChild, &plan, fd);
  if (!outcome) {
    Error e = outcome.error();
    if (e.sysErrno == EPERM) {
      e.code = Errc::kUnavailable;
      e.message = "a mount namespace needs CAP_SYS_ADMIN (a root daemon): " + e.message;
    }
    return std::unexpected(std::move(e));
  }
  auto [err, failedOp] = *outcome;
  if (err != 0) {
    Error e = Error::fromErrno("mount", err);
    e.message = "mount " + plan.describe(failedOp) + " failed: " + std::strerror(err);
    return std::unexpected(std::move(e));
  }
  return MountNamespace(std::move(plan), std::move(fd));
}

uint64_t MountNamespace::inode() const {
  struct stat st {};
  return ::fstat(fd_.get(), &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

MountTableWatch::MountTableWatch() : fd_(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)) {}

bool MountTableWatch::changed() {
  if (!fd_) return true;
  struct pollfd p {fd_.get(), POLLPRI, 0};
  if (::poll(&p, 1, 0) < 0) return true;
  return (p.revents & (POLLPRI | POLLERR)) != 0;
}

MechanismReport probePrivateMounts(const MountPlan& plan) {
  MechanismReport report{"private mounts", false, {}};
  auto outcome = runInChild(&probeChild, &plan, true);
  if (!outcome) {
    report.detail = outcome.error().message;
    if (outcome.error().sysErrno == EPERM) {
      report.detail += " (needs CAP_SYS_ADMIN: the daemon is not root); programs share the host's /tmp and "
                       "see every directory their user may read";
    }
    return report;
  }
  auto [err, failedOp] = *outcome;
  if (err != 0) {
    report.detail = "mount " + plan.describe(failedOp) + " failed: " + std::strerror(err);
    return report;
  }
  report.enforced = true;
  report.detail = plan.summary();
  return report;
}

}  // namespace hv::os
