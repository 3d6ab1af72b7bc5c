// GET /api/v1/files?path=DIR[&account=NAME]: a directory of the caller's
// account home, for the panel's Command picker. Every entry says whether
// hostvisor would run it as a command, and if not why, with the fix (the
// seeds' "700 or 755" note as a hint). Nothing outside the home: the path is
// checked by its spelling first, then looked at with the account's
// file-system identity (os::AsFileSystemUser), and a link is listed as a
// link, never followed out of the home.
#include <dirent.h>
#include <fmt/format.h>
#include <limits.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "api/api_call.h"
#include "os/users.h"
#include "supervisor/validation.h"

namespace hv::api {

namespace {

constexpr size_t kMaxEntries = 2000;

std::string typeOf(mode_t mode) {
  if (S_ISDIR(mode)) return "dir";
  if (S_ISREG(mode)) return "file";
  if (S_ISLNK(mode)) return "link";
  return "other";
}

std::string ownerOf(uid_t uid) {
  auto user = os::lookupUid(uid);
  return user ? user->name : std::to_string(uid);
}

}  // namespace

void Api::listFiles(Call& call, const Caller& caller) {
  if (call.req.method() != http::verb::get) return call.sendError(405, "method_not_allowed", "use GET");
  auto q = call.query.find("account");
  const std::string accountName = q != call.query.end() && caller.admin ? q->second : caller.account;
  if (accountName.empty()) return call.sendError(400, "invalid_argument", "give ?account=NAME: the admin has no home of its own");
  auto found = db_.findAccount(accountName);
  if (!found) return call.sendError(found.error());
  if (!*found || !caller.owns(accountName))
    return call.sendError(404, "not_found", fmt::format("no account named '{}'", accountName));
  const store::AccountRecord& account = **found;
  auto p = call.query.find("path");
  std::string path = p == call.query.end() || p->second.empty() ? account.home : p->second;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path != account.home && !supervisor::lexicallyInside(path, account.home))
    return call.sendError(403, "forbidden", fmt::format("{} is outside the home of account '{}' ({})", path,
                                                        account.name, account.home));
  os::AsFileSystemUser as(account.uid, account.gid);
  char real[PATH_MAX];
  char home[PATH_MAX];
  const std::string homeDir = ::realpath(account.home.c_str(), home) ? home : account.home;
  if (!::realpath(path.c_str(), real))
    return call.sendError(404, "not_found", fmt::format("{}: {}", path, std::strerror(errno)));
  const std::string dir = real;
  if (dir != homeDir && !dir.starts_with(homeDir + "/"))
    return call.sendError(403, "forbidden", fmt::format("{} is a link to somewhere outside the home", path));
  DIR* d = ::opendir(dir.c_str());
  if (!d) return call.sendError(errno == ENOTDIR ? 400 : 403, errno == ENOTDIR ? "invalid_argument" : "forbidden",
                                fmt::format("{}: {}", path, std::strerror(errno)));
  json::array entries;
  bool truncated = false;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (entries.size() >= kMaxEntries) {
      truncated = true;
      break;
    }
    const std::string full = path + "/" + name;
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    json::object o{{"name", name},
                   {"path", full},
                   {"type", typeOf(st.st_mode)},
                   {"mode", fmt::format("{:04o}", st.st_mode & 07777)},
                   {"owner", ownerOf(st.st_uid)},
                   {"size", static_cast<int64_t>(st.st_size)}};
    if (!S_ISDIR(st.st_mode)) {
      auto ok = supervisor::validateCommand(full, account);
      o["command_ok"] = ok.has_value();
      if (!ok) o["why"] = ok.error().message;
    }
    entries.push_back(std::move(o));
  }
  ::closedir(d);
  std::sort(entries.begin(), entries.end(), [](const json::value& a, const json::value& b) {
    const bool da = a.at("type") == "dir", db = b.at("type") == "dir";
    if (da != db) return da;
    return a.at("name").as_string() < b.at("name").as_string();
  });
  const std::string parent = path == account.home ? "" : path.substr(0, path.rfind('/'));
  call.sendJson(200, json::object{{"account", account.name},
                                  {"home", account.home},
                                  {"path", path},
                                  {"parent", parent.empty() ? json::value(nullptr) : json::value(parent)},
                                  {"entries", std::move(entries)},
                                  {"truncated", truncated}});
}

}  // namespace hv::api
