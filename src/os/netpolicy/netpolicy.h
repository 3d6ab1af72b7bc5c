// NetPolicy: what an instance may do on the network, enforced by cgroup-v2
// BPF programs (netpolicy.bpf.c) attached once to the daemon's cgroup root.
//
// For a run cgroup with a policy (keyed by its cgroup id):
// - bind(2) only to the assigned port (cgroup/bind4, bind6), or to port 0
//   for UDP (a client's ephemeral port); else EPERM;
// - a TCP listener on any other port (listen() without bind() autobinds one
//   and runs no bind hook, net/ipv4/af_inet.c inet_autobind) gets no
//   packets: cgroup_skb/ingress drops them, so its SYNs go unanswered; a UDP
//   socket on another port receives only from allowlisted peers;
// - connect(2) (TCP, UDP, TCP Fast Open sendto) and UDP sendto/sendmsg only
//   to allowlisted destinations or the instance's own port on loopback
//   (cgroup/connect4, connect6, sendmsg4, sendmsg6); else EPERM. DNS is not
//   special: list the resolver (udp, port 53) or lookups fail.
// Kernel references: include/uapi/linux/bpf.h (BPF_CGROUP_INET4_BIND ...
// BPF_CGROUP_INET_INGRESS), kernel/bpf/cgroup.c (a sock_addr program
// returning 0 means EPERM; links attach with BPF_F_ALLOW_MULTI semantics),
// bpf(2) BPF_LINK_CREATE / BPF_LINK_UPDATE / BPF_OBJ_PIN.
// Sockets of cgroups without a policy (the daemon's own, runs not yet or no
// longer policed) are never restricted. The policy applied is that of the
// calling task's cgroup (bind/connect/sendmsg) or of the receiving socket's
// (ingress): processes are born in their run cgroup (spawn.h), so both agree.
//
// Survives the daemon: the links and maps are pinned under
// /sys/fs/bpf/hostvisor-<name>/ (bpffs is mounted there when missing), so
// running instances stay restricted while the daemon is down. open() reuses
// the pinned maps (policies and counters intact) and swaps the pinned links
// to the freshly loaded programs atomically (BPF_LINK_UPDATE). Upgrades: if
// a new build changed a map's layout, the old maps are replaced by empty
// ones (mechanisms() says so) and the daemon must set() every survivor again
// -- which it does after every open() anyway; until then (milliseconds, only
// on such upgrades) the survivors are unrestricted.
//
// Threads: call open/set/clear/retainOnly from one thread (the
// supervisor's); blocked() only reads a map and may run on any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "os/cgroup.h"
#include "os/netpolicy/cidr.h"
#include "os/netpolicy/enforcer.h"

struct bpf_link;
struct netpolicy_bpf;

namespace hv::os::netpolicy {


class NetPolicy final : public Enforcer {
 public:
  // Loads the programs, reuses or pins maps and links under
  // /sys/fs/bpf/hostvisor-<name>/, attaches the programs to `cgroupV2Root`
  // (BPF_F_ALLOW_MULTI: they run for every cgroup below), then probes every
  // hook for real: a child in a probe cgroup below the root tries what the
  // policy forbids. Fails only on bad arguments (name not [A-Za-z0-9_-],
  // root not a cgroup2 directory); a kernel without the hooks yields an
  // object whose mechanisms() say degraded, with the errno.
  static Result<NetPolicy> open(const std::string& cgroupV2Root, const std::string& name);

  NetPolicy(NetPolicy&&) noexcept;
  NetPolicy& operator=(NetPolicy&&) noexcept;
  ~NetPolicy() override;  // closes fds only: the pinned links keep enforcing

  const char* kind() const override { return "bpf"; }

  // One row per hook ("net bind4", ...) plus "net pinning", for the
  // start-up table and `hostvisor doctor`.
  const std::vector<MechanismReport>& mechanisms() const override { return mechanisms_; }
  // True when the maps exist (set() can work), even if some hook is degraded.
  bool usable() const override { return skel_ != nullptr; }
  // True when every hook is enforced.
  bool enforcing() const override;

  // Installs or replaces the policy of a run cgroup. Call after createRun()
  // and before spawning into it. Keeps the run's blocked counters.
  // kInvalidArgument for a bad entry, kExhausted when a map is full,
  // kUnavailable when !usable(). After any error the policy may be partly
  // written: clear() it and do not start the run.
  Status set(uint64_t cgroupId, const InstancePolicy& policy);
  Status set(const RunTarget& run, const InstancePolicy& policy) override { return set(run.cgroupId, policy); }
  // Removes the policy, allowlist and counters of a run cgroup (its
  // processes become unrestricted: call once the run is over).
  Status clear(uint64_t cgroupId) override;
  // clear() for every policed cgroup not in `keep` (after a restart: runs
  // that ended while the daemon was down).
  Status retainOnly(std::span<const uint64_t> keep) override;
  // The cgroup ids that have a policy.
  Result<std::vector<uint64_t>> policed() const;
  // Blocked attempts since set() first ran for this cgroup; zeros if none.
  Result<BlockedCounts> blocked(uint64_t cgroupId) const override;
  Result<std::unordered_map<uint64_t, BlockedCounts>> blockedAll() const override { return blockedAllBatched(256); }
  // BPF_MAP_LOOKUP_BATCH, `batch` entries per syscall (tests use small ones).
  Result<std::unordered_map<uint64_t, BlockedCounts>> blockedAllBatched(uint32_t batch) const;

  const std::string& pinDir() const { return pinDir_; }

  // Detaches the pinned links and removes the pin directory of `name`
  // (uninstall, tests). Destroy every NetPolicy of that name first.
  static Status removePins(const std::string& name);

 private:
  struct SkelDeleter {
    void operator()(netpolicy_bpf* skel) const;
  };
  struct LinkDeleter {
    void operator()(bpf_link* link) const;
  };
  using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

  NetPolicy() = default;
  Status clearAllow(uint64_t cgroupId, const std::vector<struct hv_allow_key>& keep);

  std::string root_;
  std::string pinDir_;
  std::unique_ptr<netpolicy_bpf, SkelDeleter> skel_;
  std::vector<LinkPtr> links_;
  int policiesFd_ = -1;  // owned by skel_
  int blockedFd_ = -1;
  int allowFd_ = -1;
  std::vector<MechanismReport> mechanisms_;
};

}  // namespace hv::os::netpolicy
