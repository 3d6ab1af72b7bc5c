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
Status validateRestartMode(std::string_view mode);

std::string_view restartModeName(store::RestartMode mode);
Result<store::RestartMode> parseRestartMode(std::string_view mode);

// The command must be an absolute path to a regular file that `account` may
// execute. (The stricter sandbox rules of accounts come with the sandbox.)
Status validateCommand(const std::string& path, const store::AccountRecord& account);
Status validateCwd(const std::string& dir);

// Every field of a spec (name, env, route, limits, command, cwd).
Status validateSpec(const store::InstanceRecord& spec, const store::AccountRecord& account);

}  // namespace hv::supervisor
