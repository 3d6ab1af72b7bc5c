// Shared by netpolicy_loader.cpp and netpolicy_probe.cpp; not part of the
// API. The hooks in the order of mechanisms(), and the start-up probe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "base/result.h"

namespace hv::os::netpolicy {

enum Hook : size_t { kBind4, kBind6, kConnect4, kConnect6, kSendmsg4, kSendmsg6, kIngress, kHookCount };

struct HookInfo {
  const char* row;      // MechanismReport::name
  const char* section;  // the program's ELF section in netpolicy.bpf.c
  const char* what;     // what an enforced hook stops
};

inline constexpr std::array<HookInfo, kHookCount> kHooks{{
    {"net bind4", "cgroup/bind4", "bind() to an unassigned IPv4 port"},
    {"net bind6", "cgroup/bind6", "bind() to an unassigned IPv6 port"},
    {"net connect4", "cgroup/connect4", "IPv4 connect() to an unlisted peer"},
    {"net connect6", "cgroup/connect6", "IPv6 (and v4-mapped) connect() to an unlisted peer"},
    {"net sendmsg4", "cgroup/sendmsg4", "IPv4 UDP sends to an unlisted peer"},
    {"net sendmsg6", "cgroup/sendmsg6", "IPv6 (and v4-mapped) UDP sends to an unlisted peer"},
    {"net listen gap", "cgroup_skb/ingress", "connections to a listener on an unassigned port (listen() without bind())"},
}};

class NetPolicy;
class Enforcer;

struct ProbeOutcome {
  bool enforced = false;
  std::string detail;  // what the probe saw
};


// What the probe child tries, each on loopback port 9 ("discard").
enum Attempt { kTryBind4, kTryBind6, kTryConnect4, kTryConnect6, kTryConnectMapped,
               kTrySend4, kTrySend6, kTrySendMapped, kTryListen, kAttempts };

inline constexpr int kNoFamily = -1;  // the address family is not available

struct ProbeReport {
  int enterErrno = 0;
  int result[kAttempts] = {};  // 0 = it worked, else errno (or kNoFamily)
  uint16_t listenPort = 0;     // of its listen() without bind()
};

// Starts a child (clone3, only system calls afterwards) that joins the
// cgroup of `procsFd` (if >= 0), becomes `uid` (if >= 0), tries every
// Attempt (connects bounded at 1 s each) and listens without bind; calls
// `judge` with its report while the child still holds that listener.
Status runProbe(int procsFd, int64_t uid, const std::function<void(const ProbeReport&)>& judge);

// Connects to 127.0.0.1:`port` (the probe child's autobound listener) from
// here: enforced when `policy` counts an ingress drop for `key` and the
// connection does not complete. Bounded: 1 s.
ProbeOutcome judgeIngress(const Enforcer& policy, uint64_t key, uint16_t port);

// rmdir with a bounded retry while the reaped child leaves.
void removeProbeDir(const std::string& path);

// Runs a child in "<root>/.netpolicy-probe" under a policy that forbids
// everything, has it try each hook, and reports what held. Bounded (about
// 1 s at worst); removes the probe cgroup and its policy afterwards.
std::array<ProbeOutcome, kHookCount> probeHooks(NetPolicy& policy, const std::string& root);

}  // namespace hv::os::netpolicy
