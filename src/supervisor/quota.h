// Quota: an account's limits applied to one instance. Pure functions.
//
// Per-instance caps (CPU, processes, open files) are the account's at most
// and default to them; memory is a total over the account's instances, so an
// account with a memory quota must give each instance a memory limit, and
// the sum must fit. Messages say how much is left.
#pragma once

#include <vector>

#include "base/result.h"
#include "store/records.h"

namespace hv::supervisor {

// Fills in the account's caps where the spec leaves them at 0.
void applyAccountDefaults(const store::AccountRecord& account, store::InstanceRecord& spec);

// `others` are the account's other instances (not `spec` itself).
Status checkQuota(const store::AccountRecord& account, const store::InstanceRecord& spec,
                  const std::vector<const store::InstanceRecord*>& others);

}  // namespace hv::supervisor
