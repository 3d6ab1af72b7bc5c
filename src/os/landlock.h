// Landlock scopes (landlock(7), ABI 6, Linux 6.12): what an instance's
// program may reach outside its own process tree without any file rule.
//
// LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET: connect(2)/sendto(2) to an abstract
// unix socket ("@name") made outside the program's Landlock domain fail with
// EPERM. Abstract sockets have no file, so neither file modes, the mount
// namespace nor seccomp (which cannot read the address) can guard them; the
// host's and other accounts' ("@dbus-…", a root daemon's "@hvdemo") were
// reachable. The program's own children share its domain and still talk.
// Any thread; the child side is async-signal-safe (system calls only).
#pragma once

#include "os/cgroup.h"  // MechanismReport

namespace hv::os {

// The kernel's Landlock ABI version; 0 without Landlock (disabled or too old).
int landlockAbi();

// For the doctor table: "abstract unix sockets", enforced when ABI >= 6.
MechanismReport probeLandlockScopes();

// In a child between clone and exec, after no_new_privs: restricts the
// calling process (and all it will start) to its own abstract unix sockets.
// Returns 0 or the errno.
int scopeAbstractUnixSockets();

}  // namespace hv::os
