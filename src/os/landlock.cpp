#include "os/landlock.h"

#include <fmt/format.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace hv::os {
namespace {

#ifndef SYS_landlock_create_ruleset
constexpr long SYS_landlock_create_ruleset = 444;
#endif
#ifndef SYS_landlock_restrict_self
constexpr long SYS_landlock_restrict_self = 446;
#endif

constexpr uint32_t kCreateRulesetVersion = 1U << 0;    // LANDLOCK_CREATE_RULESET_VERSION
constexpr uint64_t kScopeAbstractUnixSocket = 1U << 0;  // LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
constexpr int kScopesAbi = 6;

// struct landlock_ruleset_attr as of ABI 6 (Debian 12's headers predate `scoped`).
struct RulesetAttr {
  uint64_t handledAccessFs;
  uint64_t handledAccessNet;
  uint64_t scoped;
};

}  // namespace

int landlockAbi() {
  const long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return abi > 0 ? static_cast<int>(abi) : 0;
}

MechanismReport probeLandlockScopes() {
  const int abi = landlockAbi();
  if (abi >= kScopesAbi)
    return {"abstract unix sockets", true,
            fmt::format("Landlock scope (ABI {}): a program reaches only its own instance's abstract unix sockets",
                        abi)};
  const int err = errno;
  return {"abstract unix sockets", false,
          abi == 0 ? fmt::format("no Landlock ({}): a program can connect to the host's and other accounts' "
                                 "abstract unix sockets (\"@name\")",
                                 err == ENOSYS ? "the kernel has none" : err == EOPNOTSUPP ? "disabled at boot (lsm=)"
                                                                                           : std::strerror(err))
                   : fmt::format("Landlock ABI {} < 6 (Linux 6.12): a program can connect to the host's and other "
                                 "accounts' abstract unix sockets (\"@name\")",
                                 abi)};
}

int scopeAbstractUnixSockets() {
  const RulesetAttr attr{0, 0, kScopeAbstractUnixSocket};
  const long fd = ::syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
  if (fd < 0) return errno;
  const long rc = ::syscall(SYS_landlock_restrict_self, fd, 0);
  const int err = rc < 0 ? errno : 0;
  ::close(static_cast<int>(fd));
  return err;
}

}  // namespace hv::os
