// SpawnPlan: turns an instance spec, its account and its port into the exact
// os::SpawnRequest to run. Pure: no I/O, so the argv/env rules are unit-tested.
//
// The program gets a clean environment (never the daemon's): PATH, HOME, USER,
// LOGNAME, SHELL, LANG, then the instance's own variables, then PORT. Every
// "{port}" in its arguments is replaced by the port.
#pragma once

#include <string>

#include "os/spawn.h"
#include "store/records.h"

namespace hv::supervisor {

// `dropPrivileges`: the daemon runs as another uid than the account's, so
// the child must switch to the account's uid/gid/groups.
os::SpawnRequest planSpawn(const store::InstanceRecord& spec, const store::AccountRecord& account,
                           bool dropPrivileges);

}  // namespace hv::supervisor
