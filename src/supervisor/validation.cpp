#include "supervisor/validation.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/strings.h"
#include "os/users.h"
#include "supervisor/quota.h"

namespace hv::supervisor {
namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

Status invalid(std::string message) { return fail(Errc::kInvalidArgument, std::move(message)); }

// What the front proxy can serve: a lowercase host name, optionally "*."
// for its subdomains, without a port (the proxy has one listening port).
Status validateHost(std::string_view host) {
  if (host.size() > 253) return invalid("route host is longer than 253 characters");
  if (host.find(':') != std::string_view::npos)
    return invalid(fmt::format("route host '{}' has a port: write the host alone; the proxy serves it on "
                               "its own port", host));
  std::string_view name = host.starts_with("*.") ? host.substr(2) : host;
  if (name.empty()) return invalid(fmt::format("route '{}' has an empty host", host));
  for (char c : name) {
    if (c >= 'A' && c <= 'Z')
      return invalid(fmt::format("route host '{}' must be lowercase", host));
    if (!isLowerAlnum(c) && c != '-' && c != '.')
      return invalid(fmt::format("route host '{}' has an invalid character '{}'", host, c));
  }
  if (name.front() == '.' || name.back() == '.' || name.find("..") != std::string_view::npos)
    return invalid(fmt::format("route host '{}' has an empty label", host));
  return {};
}

Status validatePath(std::string_view path, std::string_view route) {
  for (char c : path) {
    const bool ok = isAlpha(c) || isDigit(c) || std::strchr("/-._~%!$&'()*+,;=:@", c);
    if (!ok || c == '\0')
      return invalid(fmt::format("route '{}' has a character not allowed in a path: '{}'", route, c));
  }
  if (path.find("/../") != std::string_view::npos || path.ends_with("/..") ||
      path.find("//") != std::string_view::npos)
    return invalid(fmt::format("route '{}' has an empty or '..' path segment", route));
  return {};
}

// Nobody but the account (or root) may be able to replace what it runs: the
// file is the account's and not group/world-writable, and so is every
// directory from the home down to it.
Status validateOwnership(const std::string& file, const std::string& homeDir,
                         const store::AccountRecord& account) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return {};  // exec will report it
  if (st.st_uid != account.uid)
    return invalid(fmt::format("command {} is owned by uid {}, not by user {} of account '{}'; "
                               "run: chown {} {}", file, st.st_uid, account.user, account.name,
                               account.user, file));
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return invalid(fmt::format("command {} is {}-writable (mode {:04o}); run: chmod 755 {}", file,
                               st.st_mode & S_IWOTH ? "world" : "group", st.st_mode & 07777, file));
  for (std::string dir = file.substr(0, file.rfind('/')); dir.size() >= homeDir.size();
       dir = dir.substr(0, std::max<size_t>(1, dir.rfind('/')))) {
    if (::stat(dir.c_str(), &st) != 0) break;
    if (st.st_uid != account.uid && st.st_uid != 0)
      return invalid(fmt::format("directory {} above command {} is owned by uid {}, who could "
                                 "replace it; move the command or run: chown {} {}",
                                 dir, file, st.st_uid, account.user, dir));
    if (st.st_mode & (S_IWGRP | S_IWOTH))
      return invalid(fmt::format("directory {} above command {} is {}-writable (mode {:04o}), so "
                                 "another user could replace the command; run: chmod 755 {}",
                                 dir, file, st.st_mode & S_IWOTH ? "world" : "group",
                                 st.st_mode & 07777, dir));
    if (dir == homeDir || dir == "/") break;
  }
  return {};
}

}  // namespace

Status validateName(std::string_view name) {
  if (name.empty()) return invalid("instance name is empty");
  if (name.size() > 63)
    return invalid(fmt::format("instance name '{}' is longer than 63 characters", name));
  if (!isLowerAlnum(name[0]))
    return invalid(fmt::format(
        "instance name '{}' must start with a lowercase letter or a digit", name));
  for (char c : name) {
    if (!isLowerAlnum(c) && c != '-' && c != '_')
      return invalid(fmt::format("instance name '{}' may contain only a-z, 0-9, '-' and '_'", name));
  }
  return {};
}

Status validateEnvName(std::string_view name) {
  if (name.empty()) return invalid("environment variable name is empty");
  if (!isAlpha(name[0]) && name[0] != '_')
    return invalid(fmt::format("environment variable name '{}' must start with a letter or '_'", name));
  for (char c : name) {
    if (!isAlpha(c) && !isDigit(c) && c != '_')
      return invalid(fmt::format(
          "environment variable name '{}' may contain only letters, digits and '_'", name));
  }
  if (name == "PORT")
    return invalid("environment variable PORT is reserved: hostvisor sets it to the assigned port");
  return {};
}

Status validateRoute(std::string_view route) {
  if (route.empty()) return {};
  if (route.size() > 1024) return invalid("route is longer than 1024 characters");
  size_t slash = route.find('/');
  if (slash == std::string_view::npos)
    return invalid(fmt::format("route '{}' needs a path: write HOST/PATH or /PATH", route));
  if (slash > 0) {
    if (auto s = validateHost(route.substr(0, slash)); !s) return s;
  }
  return validatePath(route.substr(slash), route);
}

namespace {

bool hostsMeet(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty() || a == b) return true;
  auto covers = [](std::string_view wild, std::string_view host) {
    return wild.starts_with("*.") && (host.ends_with(wild.substr(1)) || host == wild.substr(2));
  };
  return covers(a, b) || covers(b, a);
}

std::string withSlash(std::string_view path) {
  std::string p(path);
  if (p.empty() || p.back() != '/') p += '/';
  return p;
}

}  // namespace

Status validateDomain(std::string_view domain) {
  if (domain.empty()) return invalid("a domain is empty");
  return validateHost(domain);
}

bool hostInDomains(std::string_view host, const std::vector<std::string>& domains) {
  for (std::string_view d : domains) {
    const bool subdomainsOnly = d.starts_with("*.");
    const std::string_view base = subdomainsOnly ? d.substr(2) : d;
    if (host == d) return true;
    if (!subdomainsOnly && host == base) return true;
    // "a.shop.example.com", and "*.shop.example.com" too.
    if (host.size() > base.size() + 1 && host.ends_with(base) && host[host.size() - base.size() - 1] == '.')
      return true;
  }
  return false;
}

bool routesOverlap(std::string_view a, std::string_view b) {
  const size_t sa = a.find('/'), sb = b.find('/');
  if (!hostsMeet(a.substr(0, sa), b.substr(0, sb))) return false;
  const std::string pa = withSlash(a.substr(sa)), pb = withSlash(b.substr(sb));
  return pa.starts_with(pb) || pb.starts_with(pa);
}

std::string_view restartModeName(store::RestartMode mode) {
  switch (mode) {
    case store::RestartMode::kAlways: return "always";
    case store::RestartMode::kOnFailure: return "on-failure";
    case store::RestartMode::kNever: return "never";
  }
  return "on-failure";
}

Result<store::RestartMode> parseRestartMode(std::string_view mode) {
  if (mode == "always") return store::RestartMode::kAlways;
  if (mode == "on-failure") return store::RestartMode::kOnFailure;
  if (mode == "never") return store::RestartMode::kNever;
  return fail(Errc::kInvalidArgument,
              fmt::format("restart policy '{}' is not one of always, on-failure, never", mode));
}

bool lexicallyInside(std::string_view path, std::string_view home) {
  if (home.empty() || home == "/") return true;
  if (!path.starts_with(home) || path.size() <= home.size() || path[home.size()] != '/') return false;
  for (const auto& seg : split(path, '/'))
    if (seg == "." || seg == "..") return false;
  return true;
}

// The daemon runs as root: every look at an account's path is made with the
// account's file-system identity (setfsuid: this thread only), so what the
// account could not see itself, it cannot learn from an error message.
Status validateCommandPlace(const std::string& path, const store::AccountRecord& account) {
  if (path.empty()) return invalid("command is empty");
  if (path[0] != '/')
    return invalid(fmt::format("command '{}' is not an absolute path; write it from / (e.g. {}/{})",
                               path, account.home, path));
  const auto outside = [&] {
    return invalid(fmt::format("command {} is outside the home of account '{}' ({}); an instance runs "
                               "programs from its account's home only: copy it there",
                               path, account.name, account.home));
  };
  if (!lexicallyInside(path, account.home)) return outside();
  os::AsFileSystemUser as(account.uid, account.gid);
  char resolved[PATH_MAX];
  if (!::realpath(path.c_str(), resolved)) {
    if (errno == ENOENT) return {};
    return invalid(fmt::format("command {} cannot be used: {}", path, std::strerror(errno)));
  }
  char home[PATH_MAX];
  const std::string homeDir = ::realpath(account.home.c_str(), home) ? home : account.home;
  const std::string real = resolved;
  if (homeDir != "/" && !real.starts_with(homeDir + "/"))
    return invalid(fmt::format("command {} is a link to somewhere outside the home of account '{}' ({}); an "
                               "instance runs programs from its account's home only: copy it there",
                               path, account.name, account.home));
  return validateOwnership(real, homeDir, account);
}

Status validateCommand(const std::string& path, const store::AccountRecord& account) {
  if (auto s = validateCommandPlace(path, account); !s) return s;
  return validateCommandRunnable(path, account);
}

Status validateCommandRunnable(const std::string& path, const store::AccountRecord& account) {
  os::AsFileSystemUser as(account.uid, account.gid);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return invalid(fmt::format("command {} cannot be used: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return invalid(fmt::format("command {} is not a regular file", path));
  mode_t xbit = S_IXOTH;
  if (st.st_uid == account.uid) xbit = S_IXUSR;
  else if (st.st_gid == account.gid) xbit = S_IXGRP;
  const bool executable = account.uid == 0 ? (st.st_mode & 0111) != 0 : (st.st_mode & xbit) != 0;
  if (!executable)
    return invalid(fmt::format("command {} is not executable by user {}: Permission denied (mode {:04o}); "
                               "run: chmod u+x {}", path, account.user, st.st_mode & 07777, path));
  return {};
}

Status validateCwd(const std::string& dir, const store::AccountRecord& account) {
  if (dir.empty()) return {};
  if (dir[0] != '/') return invalid(fmt::format("working directory '{}' is not an absolute path", dir));
  const auto outside = [&] {
    return invalid(fmt::format("working directory {} is outside the home of account '{}' ({})", dir,
                               account.name, account.home));
  };
  if (dir != account.home && !lexicallyInside(dir, account.home)) return outside();
  os::AsFileSystemUser as(account.uid, account.gid);
  char resolved[PATH_MAX];
  if (!::realpath(dir.c_str(), resolved))
    return invalid(fmt::format("working directory {} cannot be used: {}", dir, std::strerror(errno)));
  char home[PATH_MAX];
  const std::string homeDir = ::realpath(account.home.c_str(), home) ? home : account.home;
  const std::string real = resolved;
  if (homeDir != "/" && real != homeDir && !real.starts_with(homeDir + "/")) return outside();
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return invalid(fmt::format("working directory {} is not a directory", dir));
  return {};
}

Status validateSpec(const store::InstanceRecord& spec, const store::AccountRecord& account) {
  if (auto s = validateName(spec.name); !s) return s;
  for (const auto& [k, v] : spec.env) {
    if (auto s = validateEnvName(k); !s) return s;
    if (v.find('\0') != std::string::npos) return invalid(fmt::format("environment variable {} contains a NUL byte", k));
  }
  for (const auto& a : spec.args) {
    if (a.find('\0') != std::string::npos) return invalid("an argument contains a NUL byte");
  }
  if (auto s = validateRoute(spec.route); !s) return s;
  if (spec.startSecs < 0 || spec.startSecs > 3600) return invalid("start_secs must be between 0 and 3600");
  if (spec.stopSignal < 1 || spec.stopSignal > 64) return invalid("stop_signal must be a signal number from 1 to 64");
  if (spec.stopGraceMs < 0 || spec.stopGraceMs > 3'600'000) return invalid("stop_grace_ms must be between 0 and 3600000");
  if (spec.memoryBytes < 0) return invalid("memory must not be negative");
  if (spec.memoryBytes > 0 && spec.memoryBytes < kMinInstanceMemory)
    return invalid(fmt::format("memory {} bytes is too small: an instance needs at least {}M", spec.memoryBytes,
                               kMinInstanceMemory >> 20));
  if (spec.cpuPercent < 0 || spec.cpuPercent > 100 * 1024) return invalid("cpu must be a percentage of one core, 0-102400");
  if (spec.maxProcs < 0) return invalid("procs must not be negative");
  if (auto s = validateCommand(spec.command, account); !s) return s;
  return validateCwd(spec.cwd, account);
}

}  // namespace hv::supervisor
