// The accounts endpoints of docs/api.md: list, create (the token is shown
// once), show, change, delete, rotate the token. Admin only, except that an
// account may read itself.
#include <fmt/format.h>
#include <sys/stat.h>

#include <boost/url/parse.hpp>

#include "api/api_call.h"
#include "supervisor/validation.h"
#include "base/strings.h"
#include "os/netpolicy/cidr.h"
#include "os/users.h"

#include <cstring>
#include <ctime>

namespace hv::api {
namespace {

json::object accountToJson(const store::AccountRecord& a, size_t instances) {
  json::array egress;
  for (const auto& e : a.egress) egress.emplace_back(e);
  json::array domains;
  for (const auto& d : a.domains) domains.emplace_back(d);
  return json::object{{"name", a.name},
                      {"user", a.user},
                      {"uid", a.uid},
                      {"gid", a.gid},
                      {"home", a.home},
                      {"max_instances", a.maxInstances},
                      {"max_memory", a.maxMemoryBytes},
                      {"max_cpu", a.maxCpuPercent},
                      {"max_procs", a.maxProcs},
                      {"max_open_files", a.maxOpenFiles},
                      {"egress", std::move(egress)},
                      {"domains", std::move(domains)},
                      {"webhook", a.webhook},
                      {"instances", instances},
                      {"created_at", a.createdAt}};
}

Status invalid(std::string message) { return fail(Errc::kInvalidArgument, std::move(message)); }

Status validateAccountName(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 32 && name[0] >= 'a' && name[0] <= 'z' &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
                  });
  if (!ok) return invalid(fmt::format("account name '{}' must be 1-32 of a-z, 0-9, '-', '_', starting with a letter", name));
  return {};
}

// "CIDR:PORT", "[IPV6-CIDR]:PORT" or "HOST:PORT" (PORT 0 = any), checked by
// the same parser the network policy applies, so what is stored is what is
// enforced (a host name opens the addresses it resolves to, re-resolved
// every 5 minutes; one that does not resolve opens nothing).
Status validateEgress(std::string_view entry) {
  if (auto parsed = os::netpolicy::parseEgressEntry(entry); !parsed)
    return invalid(fmt::format("egress entry '{}': {} (write ADDRESS[/LEN]:PORT, [IPV6]:PORT or HOST:PORT: "
                               "10.0.0.0/8:5432, [::1]:8080, db.example.com:5432)",
                               entry, parsed.error().message));
  return {};
}

// Applies the fields present in `body`; `creating` allows name and user.
Status applyAccountFields(const json::object& body, bool creating, store::AccountRecord& a) {
  for (const auto& [key, v] : body) {
    auto num = [&](auto& out, int64_t hi) -> Status {
      if (!v.is_int64() || v.as_int64() < 0 || v.as_int64() > hi)
        return invalid(fmt::format("field '{}' must be a whole number from 0 to {}", std::string_view(key), hi));
      out = static_cast<std::remove_reference_t<decltype(out)>>(v.as_int64());
      return {};
    };
    Status s;
    if ((key == "name" || key == "user") && !creating) s = invalid(fmt::format("field '{}' cannot be changed", std::string_view(key)));
    else if (key == "name" || key == "user" || key == "home") {
      if (!v.is_string()) return invalid(fmt::format("field '{}' must be a string", std::string_view(key)));
      (key == "name" ? a.name : key == "user" ? a.user : a.home) = std::string(v.as_string());
    } else if (key == "max_instances") s = num(a.maxInstances, 100000);
    else if (key == "max_cpu") s = num(a.maxCpuPercent, 102400);
    else if (key == "max_procs") s = num(a.maxProcs, 1'000'000);
    else if (key == "max_open_files") s = num(a.maxOpenFiles, 1'048'576);
    else if (key == "max_memory") {
      if (v.is_string()) {
        auto bytes = wire::parseSize(v.as_string());
        if (!bytes) return std::unexpected(bytes.error());
        a.maxMemoryBytes = *bytes;
      } else {
        s = num(a.maxMemoryBytes, INT64_MAX);
      }
    } else if (key == "webhook") {
      if (!v.is_string()) return invalid("field 'webhook' must be a URL string (\"\" for none)");
      const std::string_view url = v.as_string();
      if (!url.empty()) {
        auto parsed = boost::urls::parse_absolute_uri(url);
        if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https") || parsed->host().empty())
          return invalid(fmt::format("webhook '{}' is not an http:// or https:// URL with a host", url));
      }
      a.webhook = std::string(url);
    } else if (key == "domains") {
      if (!v.is_array()) return invalid("field 'domains' must be an array of host names (\"shop.example.com\")");
      a.domains.clear();
      for (const auto& d : v.as_array()) {
        if (!d.is_string()) return invalid("field 'domains' must be an array of strings");
        if (auto bad = supervisor::validateDomain(d.as_string()); !bad)
          return invalid(fmt::format("domain '{}': {}", std::string_view(d.as_string()), bad.error().message));
        a.domains.emplace_back(d.as_string());
      }
    } else if (key == "egress") {
      if (!v.is_array()) return invalid("field 'egress' must be an array of \"HOST-or-CIDR:PORT\" strings");
      a.egress.clear();
      for (const auto& e : v.as_array()) {
        if (!e.is_string()) return invalid("field 'egress' must be an array of strings");
        if (auto bad = validateEgress(e.as_string()); !bad) return bad;
        a.egress.emplace_back(e.as_string());
      }
    } else {
      s = invalid(fmt::format("unknown field '{}'", std::string_view(key)));
    }
    if (!s) return s;
  }
  return {};
}

// Fills uid, gid and home from the Unix user; refuses root (never run as root).
Status resolveUser(store::AccountRecord& a) {
  auto user = os::lookupUser(a.user);
  if (!user) return std::unexpected(user.error());
  if (user->uid == 0)
    return invalid(fmt::format("user '{}' is root: instances never run as root; make a Unix user for the account "
                               "(useradd -m {})", a.user, a.name));
  a.uid = user->uid;
  a.gid = user->gid;
  if (a.home.empty()) a.home = user->home;
  struct stat st {};
  if (a.home.empty() || a.home[0] != '/' || ::stat(a.home.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return invalid(fmt::format("home '{}' of account '{}' is not an existing directory", a.home, a.name));
  return {};
}

}  // namespace

void Api::handleAccounts(Call& call, const Caller& caller, const std::string& name, const std::string& action) {
  const auto method = call.req.method();
  if (name.empty()) {
    if (!caller.admin) return call.sendError(403, "forbidden", "managing accounts is for the admin");
    if (method == http::verb::post) return createAccount(call, caller);
    if (method != http::verb::get) return call.sendError(405, "method_not_allowed", "use GET or POST on /api/v1/accounts");
    auto list = db_.listAccounts();
    if (!list) return call.sendError(list.error());
    json::array out;
    for (const auto& a : *list) out.push_back(accountToJson(a, supervisor_.countOf(a.name)));
    return call.sendJson(200, out);
  }
  auto found = db_.findAccount(name);
  if (!found) return call.sendError(found.error());
  if (!*found || !caller.owns(name)) return call.sendError(404, "not_found", fmt::format("no account named '{}'", name));
  if (action == "token") {
    if (method != http::verb::post) return call.sendError(405, "method_not_allowed", "use POST");
    if (!caller.admin) return call.sendError(403, "forbidden", "only the admin may issue tokens");
    return rotateToken(call, caller, **found);
  }
  if (!action.empty()) return call.sendError(404, "not_found", fmt::format("no account action '{}'", action));
  if (method == http::verb::get) return call.sendJson(200, accountToJson(**found, supervisor_.countOf(name)));
  if (!caller.admin) return call.sendError(403, "forbidden", "changing accounts is for the admin");
  if (method == http::verb::patch) return patchAccount(call, caller, **found);
  if (method == http::verb::delete_) return deleteAccount(call, caller, name);
  call.sendError(405, "method_not_allowed", "use GET, PATCH or DELETE");
}

void Api::createAccount(Call& call, const Caller& caller) {
  auto body = parseObject(call.req.body());
  if (!body) return call.sendError(body.error());
  store::AccountRecord a;
  a.maxInstances = hooks_.accountDefaults.maxInstances;
  a.maxMemoryBytes = hooks_.accountDefaults.maxMemoryBytes;
  a.maxCpuPercent = hooks_.accountDefaults.maxCpuPercent;
  a.maxProcs = hooks_.accountDefaults.maxProcs;
  a.maxOpenFiles = hooks_.accountDefaults.maxOpenFiles;
  Status s = applyAccountFields(*body, true, a);
  if (s && a.user.empty()) s = invalid("field 'user' is required: the Unix user the account's programs run as");
  if (s) s = validateAccountName(a.name);
  if (s) s = resolveUser(a);
  const std::string token = newToken();
  a.tokenHash = hashToken(token);
  a.createdAt = static_cast<int64_t>(std::time(nullptr));
  if (s) s = db_.insertAccount(a);
  if (!s && s.error().code == Errc::kConflict) s.error().message = fmt::format("account '{}' already exists", a.name);
  audit(caller, "account.create", a.name, s);
  if (!s) return call.sendError(s.error());
  call.sendJson(201, json::object{{"account", accountToJson(a, 0)}, {"token", token}});
}

void Api::patchAccount(Call& call, const Caller& caller, const store::AccountRecord& account) {
  auto body = parseObject(call.req.body());
  if (!body) return call.sendError(body.error());
  store::AccountRecord next = account;
  Status s = applyAccountFields(*body, false, next);
  if (s && next.home != account.home) s = resolveUser(next);
  if (s) s = db_.updateAccount(next);
  audit(caller, "account.update", account.name, s);
  if (!s) return call.sendError(s.error());
  call.sendJson(200, accountToJson(next, supervisor_.countOf(next.name)));
}

void Api::deleteAccount(Call& call, const Caller& caller, const std::string& name) {
  Status s = db_.deleteAccount(name);
  if (s) sessions_.closeAccount(name);
  audit(caller, "account.delete", name, s);
  if (!s) return call.sendError(s.error());
  call.sendJson(200, json::object{{"name", name}, {"deleted", true}});
}

void Api::rotateToken(Call& call, const Caller& caller, store::AccountRecord account) {
  const std::string token = newToken();
  account.tokenHash = hashToken(token);
  Status s = db_.updateAccount(account);
  if (s) sessions_.closeAccount(account.name);  // signed in with the old token
  audit(caller, "account.token", account.name, s);
  if (!s) return call.sendError(s.error());
  call.sendJson(200, json::object{{"name", account.name}, {"token", token}});
}

}  // namespace hv::api
