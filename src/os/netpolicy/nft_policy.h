// NftPolicy: the network policy with nftables (through libnftables), for
// hosts where the cgroup-v2 BPF hooks cannot load. One table per daemon,
// `inet hostvisor-<name>` (the same name as the BPF pin directory), that
// stays loaded while the daemon is down, so instances stay restricted.
//
// Matching a run's sockets, best first:
// - per run: `socket cgroupv2 level N "<path below /sys/fs/cgroup>"` when the
//   daemon's cgroup-v2 root lies under /sys/fs/cgroup (nft resolves the path
//   there, datatype.c cgroupv2_type_parse);
// - per user: `meta skuid UID` otherwise. Every instance of an account then
//   shares one rule set (the union of their ports and allowlists) and one
//   set of counters, and inbound packets cannot be matched at all (a
//   listener's uid is not visible in the input hook): the listen gap stays
//   open. The daemon's own uid and root are never policed this way.
//
// What each run gets (InstancePolicy, the address rules of cidr.h):
// - output, new connections and datagrams only: allowlisted peers and its
//   own port on loopback pass; any other TCP connect is answered by a reset
//   (`reject with tcp reset`: connect() fails at once with ECONNREFUSED; a
//   plain drop would leave it hanging for minutes); any other packet is
//   dropped in the output hook, which makes sendto()/send() fail with EPERM
//   (NF_DROP in LOCAL_OUT, net/netfilter/core.c).
// - input (per run only): a new TCP connection to any of its sockets on a
//   port other than the assigned one is reset; a UDP datagram to such a
//   socket passes only from an allowlisted peer.
// - NOT enforceable with nftables: bind() itself. nftables sees packets, not
//   system calls, so an instance can bind (and hold) a port it was not
//   assigned, e.g. squat the port of another instance that is not running;
//   nobody can connect to it (input rule above), but the owner cannot bind
//   it either. The "net bind4/6" rows say degraded.
// Established and related traffic always passes (ct state), so replies of
// connections the policy allowed, and answers to inbound connections on the
// assigned port, are never counted.
//
// Changes are one nft transaction each (libnftables batch): a run's rules
// are replaced atomically, never absent in between. Counters are named
// nft counter objects "<group>-connect|sendmsg|ingress" (packets);
// "bind" is always 0.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "os/netpolicy/enforcer.h"

#include <sys/types.h>

struct nft_ctx;

namespace hv::os::netpolicy {

// The pure parts (rule text, listing parser), exposed for tests.
namespace nft {

std::string tableName(const std::string& name);  // "hostvisor-<name>"

// The union of the policies of the runs that share one rule set.
struct GroupRules {
  std::vector<uint16_t> ports;  // assigned ports (0s ignored)
  std::vector<AllowEntry> allow;
};
GroupRules unionOf(const std::vector<const InstancePolicy*>& policies);

// Rule bodies (without "add rule inet T CHAIN") of the group's chains.
std::vector<std::string> outputRules(const std::string& group, const GroupRules& rules);
std::vector<std::string> inputRules(const std::string& group, const GroupRules& rules);

// `socket cgroupv2 level N "rel"`; `meta skuid UID`.
std::string cgroupMatcher(std::string_view relPath, unsigned level);
std::string uidMatcher(uint32_t uid);

// What `nft -a list table` printed that this class cares about.
struct Listing {
  bool hasOutput = false, hasInput = false;
  std::map<std::string, uint64_t> outputJumps;  // group -> handle of its dispatch rule
  std::map<std::string, uint64_t> inputJumps;
  std::vector<std::string> chains;
  std::map<std::string, uint64_t> counters;  // name -> packets
};
Listing parseListing(std::string_view text);

}  // namespace nft

class NftPolicy final : public Enforcer {
 public:
  struct Options {
    std::string name;          // [A-Za-z0-9_-]{1,64}: the table is hostvisor-<name>
    std::string cgroupV2Root;  // the daemon's v2 root; "" = per-user rules
    bool perUser = false;      // force per-user rules (tests)
  };

  // Creates the table (or reuses it after a restart: runs found there keep
  // their rules until set() or retainOnly()), then probes for real: a child
  // under a forbidding policy tries to connect, send and listen. Fails only
  // on a bad name or when libnftables cannot be used at all; a kernel
  // without nf_tables yields an object whose mechanisms() say why.
  static Result<std::unique_ptr<NftPolicy>> open(const Options& options);
  ~NftPolicy() override;

  const char* kind() const override { return "nftables"; }
  const std::vector<MechanismReport>& mechanisms() const override { return mechanisms_; }
  bool usable() const override { return usable_; }
  // connect and send rows enforced (bind never is, see above).
  bool enforcing() const override;

  Status set(const RunTarget& run, const InstancePolicy& policy) override;
  Status clear(uint64_t key) override;
  Status retainOnly(std::span<const uint64_t> keep) override;
  Result<BlockedCounts> blocked(uint64_t key) const override;
  Result<std::unordered_map<uint64_t, BlockedCounts>> blockedAll() const override;  // one counter listing

  bool perRun() const { return perRun_; }
  const std::string& table() const { return table_; }
  // The keys with rules (including runs found at open()).
  std::vector<uint64_t> policed() const;

  // Deletes table inet hostvisor-<name> (uninstall, tests); no error if absent.
  static Status removeTable(const std::string& name);

 private:
  struct Group {
    std::map<uint64_t, InstancePolicy> runs;  // empty for one found at open() and not set since
    bool foundAtOpen = false;
  };

  NftPolicy() = default;
  // The private helpers expect mutex_ held.
  Status run(const std::string& commands) const;  // one transaction
  Result<std::string> list(const std::string& command) const;
  Result<nft::Listing> listTable() const;
  Status rewrite(const std::string& group, const Group& g, const std::string& matcher, bool isNew);
  Status drop(const std::vector<std::string>& groups);
  Result<std::string> groupAndMatcher(const RunTarget& run, std::string& matcher) const;
  Status clearLocked(uint64_t key);
  void probe();

  struct CtxFree {
    void operator()(nft_ctx* ctx) const;
  };
  std::unique_ptr<nft_ctx, CtxFree> ctx_;
  mutable std::mutex mutex_;  // ctx_, groups_ and groupOf_ (blocked() runs on any thread)

  std::string table_;
  std::string root_;
  bool perRun_ = false;
  bool usable_ = false;
  uid_t daemonUid_ = 0;
  std::map<std::string, Group> groups_;
  std::map<uint64_t, std::string> groupOf_;
  std::vector<MechanismReport> mechanisms_;
};

}  // namespace hv::os::netpolicy
