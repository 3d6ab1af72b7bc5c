// Validation of what an owner asks for, with messages that name the problem
// and say how to fix it. Pure except validateCommand/validateCwd, which stat().
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "store/records.h"

namespace hv::supervisor {

Status validateName(std::string_view name);          // [a-z0-9][a-z0-9_-]{0,62}
Status validateEnvName(std::string_view name);       // [A-Za-z_][A-Za-z0-9_]*, not PORT
Status validateRoute(std::string_view route);        // "", "/PATH" or "HOST/PATH"
// Whether requests for one route could reach the other: the hosts can meet
// (equal, either is any-host, or a "*." wildcard covers the other) and one
// path prefix contains the other. REQUIRES: both pass validateRoute.
bool routesOverlap(std::string_view a, std::string_view b);

std::string_view restartModeName(store::RestartMode mode);
Result<store::RestartMode> parseRestartMode(std::string_view mode);

// Where the command may be: an absolute path that, with every symlink
// resolved, lies inside the account's home, owned by the account, not
// group/world-writable, under directories no other user can write. Checked
// at create and before every start. A path that does not exist passes (exec
// will say ENOENT).
Status validateCommandPlace(const std::string& path, const store::AccountRecord& account);
// Whether it can run: a regular file that `account` may execute. Checked at
// create; at start the kernel's exec decides and reports the errno.
Status validateCommandRunnable(const std::string& path, const store::AccountRecord& account);
// Both, place first.
Status validateCommand(const std::string& path, const store::AccountRecord& account);
Status validateCwd(const std::string& dir, const store::AccountRecord& account);

// True when `path` names something under `home` by its spelling alone: no
// "." or ".." segment, and `home` + "/" as its start. Checked before the file
// system is asked anything, so a path elsewhere learns nothing of what exists.
bool lexicallyInside(std::string_view path, std::string_view home);

// An account's domain: a host name as a route takes it ("shop.example.com",
// "*.example.com"), lowercase, no port.
Status validateDomain(std::string_view domain);
// Whether a route host may be taken by an account with `domains`: a domain
// covers itself and its subdomains ("*.d" covers only the subdomains).
bool hostInDomains(std::string_view host, const std::vector<std::string>& domains);

// Every field of a spec (name, env, route, limits, command, cwd).
Status validateSpec(const store::InstanceRecord& spec, const store::AccountRecord& account);

}  // namespace hv::supervisor
