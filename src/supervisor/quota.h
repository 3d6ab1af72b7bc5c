// Quota: an account's limits applied to one instance. Pure functions.
//
// Per-instance caps (CPU, processes, open files) are the account's at most
// and default to them; 0 in a spec is "the account's cap", never "unlimited"
// (only the admin makes an account unlimited, by setting its quota to 0).
// Memory is a total over the account's instances: an instance of an account
// with a memory quota gets kDefaultInstanceMemory (or what is left, if less)
// unless it names a limit, and the sum must fit. Messages say how much is left.
#pragma once

#include <vector>

#include "base/result.h"
#include "store/records.h"

namespace hv::supervisor {

constexpr int64_t kDefaultInstanceMemory = 256LL << 20;
// The smallest memory limit an instance may have: below it no program starts,
// and a stopped instance with a token limit would only hold a port.
constexpr int64_t kMinInstanceMemory = 4LL << 20;

// Fills in the account's caps where the spec leaves them at 0. `others` are
// the account's other instances (for the memory left).
void applyAccountDefaults(const store::AccountRecord& account, store::InstanceRecord& spec,
                          const std::vector<const store::InstanceRecord*>& others);

// `others` are the account's other instances (not `spec` itself).
Status checkQuota(const store::AccountRecord& account, const store::InstanceRecord& spec,
                  const std::vector<const store::InstanceRecord*>& others);

}  // namespace hv::supervisor
