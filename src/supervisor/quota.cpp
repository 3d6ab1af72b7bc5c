#include "supervisor/quota.h"

#include <fmt/format.h>

namespace hv::supervisor {
namespace {

std::string bytes(int64_t n) {
  if (n % (1LL << 30) == 0) return fmt::format("{}G", n >> 30);
  if (n % (1LL << 20) == 0) return fmt::format("{}M", n >> 20);
  return fmt::format("{} bytes", n);
}

Status over(const store::AccountRecord& a, std::string_view what, long long asked, long long cap) {
  return fail(Errc::kExhausted, fmt::format("{} {} is over the limit of account '{}' ({})", what, asked,
                                            a.name, cap));
}

int64_t memoryLeft(const store::AccountRecord& account, const std::vector<const store::InstanceRecord*>& others) {
  int64_t used = 0;
  for (const auto* o : others) used += o->memoryBytes;
  return std::max<int64_t>(0, account.maxMemoryBytes - used);
}

}  // namespace

void applyAccountDefaults(const store::AccountRecord& account, store::InstanceRecord& spec,
                          const std::vector<const store::InstanceRecord*>& others) {
  if (spec.cpuPercent == 0) spec.cpuPercent = account.maxCpuPercent;
  if (spec.maxProcs == 0) spec.maxProcs = account.maxProcs;
  if (spec.memoryBytes == 0 && account.maxMemoryBytes > 0)
    spec.memoryBytes = std::min(kDefaultInstanceMemory, memoryLeft(account, others));
}

Status checkQuota(const store::AccountRecord& account, const store::InstanceRecord& spec,
                  const std::vector<const store::InstanceRecord*>& others) {
  if (account.maxCpuPercent > 0 && spec.cpuPercent > account.maxCpuPercent)
    return over(account, "cpu", spec.cpuPercent, account.maxCpuPercent);
  if (account.maxProcs > 0 && spec.maxProcs > account.maxProcs)
    return over(account, "procs", spec.maxProcs, account.maxProcs);
  if (account.maxMemoryBytes <= 0) return {};
  const int64_t left = memoryLeft(account, others);
  if (spec.memoryBytes == 0)
    return fail(Errc::kExhausted,
                fmt::format("account '{}' has a memory quota of {} and none of it is left: give the instance "
                            "a memory limit (--memory) after lowering another's", account.name,
                            bytes(account.maxMemoryBytes)));
  if (spec.memoryBytes > left)
    return fail(Errc::kExhausted,
                fmt::format("memory {} is more than account '{}' has left ({} of its {})", bytes(spec.memoryBytes),
                            account.name, bytes(left), bytes(account.maxMemoryBytes)));
  return {};
}

}  // namespace hv::supervisor
