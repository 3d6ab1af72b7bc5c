// Enforcer: what the supervisor needs of a network policy mechanism, so it
// does not care which one runs. Two implementations: NetPolicy (cgroup-v2
// BPF, netpolicy.h: every hook refuses with EPERM) and NftPolicy (nftables,
// nft_policy.h: the fallback where BPF hooks cannot load; bind() itself
// cannot be refused there). Selection is the daemon's ([sandbox] network).
//
// A run is identified by its key: the id of its cgroup (cgroupIdOf of the
// run's v2 directory, or of its v1 directory where there is no v2 tree).
// Threads: set/clear/retainOnly from one thread (the supervisor's);
// blocked() may run on any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "os/cgroup.h"
#include "os/netpolicy/cidr.h"

namespace hv::os::netpolicy {

struct InstancePolicy {
  uint16_t listenPort = 0;  // the only port bind() may name; 0 = none
  std::vector<AllowEntry> allow;
};

struct BlockedCounts {
  uint64_t bind = 0;     // bind() to a port not assigned
  uint64_t connect = 0;  // connect() (and TCP Fast Open) to a peer not listed
  uint64_t sendmsg = 0;  // UDP sends to a peer not listed
  uint64_t ingress = 0;  // packets dropped: unassigned listener, unlisted UDP peer
  uint64_t total() const { return bind + connect + sendmsg + ingress; }
  BlockedCounts& operator+=(const BlockedCounts& o) {
    bind += o.bind;
    connect += o.connect;
    sendmsg += o.sendmsg;
    ingress += o.ingress;
    return *this;
  }
  bool operator==(const BlockedCounts&) const = default;
};

// Where a run's processes live: what each mechanism can match on.
struct RunTarget {
  uint64_t cgroupId = 0;  // the key (see above); never 0 for a real run
  std::string v2Path;     // its cgroup-v2 directory; "" on a host without one
  uint32_t uid = 0;       // the Unix user its processes run as
};

// The id the kernel gives a cgroup-v2 directory (bpf_get_current_cgroup_id()
// in the programs): its kernfs node id, via name_to_handle_at(2), with
// stat(2) st_ino as the fallback (equal on 64-bit kernels).
Result<uint64_t> cgroupIdOf(const std::string& v2Path);

class Enforcer {
 public:
  virtual ~Enforcer() = default;

  // "bpf" or "nftables": for the mechanism table and logs.
  virtual const char* kind() const = 0;
  // One row per thing enforced (or not), for the start-up table and doctor.
  virtual const std::vector<MechanismReport>& mechanisms() const = 0;
  // set() can work, even if something is degraded.
  virtual bool usable() const = 0;
  // set() really restricts runs (the probe saw it): the supervisor polices
  // runs only then.
  virtual bool enforcing() const = 0;

  // Installs or replaces the policy of a run (before spawning into it).
  // Keeps its blocked counters. kInvalidArgument for a bad entry,
  // kUnavailable when this mechanism cannot police that run.
  virtual Status set(const RunTarget& run, const InstancePolicy& policy) = 0;
  // Removes the policy and counters of a run (once it is over).
  virtual Status clear(uint64_t key) = 0;
  // clear() for every policed run not in `keep` (after a daemon restart).
  virtual Status retainOnly(std::span<const uint64_t> keep) = 0;
  // Blocked attempts since set() first ran for this run; zeros if none.
  virtual Result<BlockedCounts> blocked(uint64_t key) const = 0;
  // Every policed run's counters in one read (a list of N instances asks
  // once, not N times; runs missing from it have zeros). kUnavailable where
  // a mechanism cannot: ask blocked() per run then.
  virtual Result<std::unordered_map<uint64_t, BlockedCounts>> blockedAll() const {
    return fail(Errc::kUnavailable, "no batch read of blocked counters");
  }
};

// Removes everything both mechanisms left in the kernel under `name` (BPF
// pins in /sys/fs/bpf/hostvisor-<name>, the nft table inet hostvisor-<name>):
// uninstall, or a daemon stopping with nothing left running. Destroy every
// Enforcer of that name first.
Status removeAll(const std::string& name);

}  // namespace hv::os::netpolicy
