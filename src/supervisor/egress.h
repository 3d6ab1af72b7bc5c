// Egress: the supervisor's side of the network policy. Owns the Enforcer
// (BPF or nftables, os/netpolicy/enforcer.h) and turns an account's egress
// entries into each run's InstancePolicy, host names included:
// - "CIDR:PORT" / "[IPV6]:PORT" apply at once;
// - "HOST:PORT" opens the addresses HOST resolves to. getaddrinfo runs on a
//   worker thread, never on the control loop; results are cached per name
//   and re-resolved every `refresh` (5 min); when a name's addresses change,
//   the policy of every run listing it is applied again. A name not resolved
//   yet, or that does not resolve, opens nothing (logged, and in names()).
//   The first start after the daemon starts may therefore see connects to a
//   name refused for the few milliseconds the first lookup takes.
// After the loop's first turn (i.e. once Supervisor::load() has re-policed
// every run that survived a daemon restart), runs the enforcer still holds
// from an earlier daemon and nobody claimed are cleared (retainOnly).
//
// Threads: every method on the control io_context's thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "os/netpolicy/enforcer.h"

namespace hv::supervisor {

// What a host name resolved to (or why not), for doctor / account show.
struct EgressName {
  std::string host;
  std::vector<std::string> addresses;  // "127.0.0.1", "::1"
  std::string error;                   // "" = resolved
  int64_t resolvedAt = 0;              // wall seconds of the last answer; 0 = pending
};

class Egress {
 public:
  // Blocking lookup, called on the worker thread: the addresses of `host`.
  using Lookup = std::function<Result<std::vector<os::netpolicy::Cidr>>(const std::string& host)>;
  struct Options {
    std::chrono::milliseconds refresh = std::chrono::minutes(5);
    Lookup lookup;  // empty = getaddrinfo
  };

  Egress(boost::asio::io_context& io, std::unique_ptr<os::netpolicy::Enforcer> enforcer, Options options);
  ~Egress();  // stops and joins the worker
  Egress(const Egress&) = delete;
  Egress& operator=(const Egress&) = delete;

  os::netpolicy::Enforcer& enforcer() { return *enforcer_; }
  bool enforcing() const { return enforcer_->enforcing(); }

  // Applies `egress` (an account's entries) and the assigned port to a run.
  // Entries that do not parse are skipped with a warning (the API refuses
  // them; an older database might hold one).
  Status police(const os::netpolicy::RunTarget& run, uint16_t listenPort, const std::string& account,
                const std::vector<std::string>& egress);
  // The run is over: its rules and counters go.
  void unpolice(uint64_t key);
  Result<os::netpolicy::BlockedCounts> blocked(uint64_t key) const { return enforcer_->blocked(key); }
  Result<std::unordered_map<uint64_t, os::netpolicy::BlockedCounts>> blockedAll() const {
    return enforcer_->blockedAll();
  }

  std::vector<EgressName> names() const;

  // The getaddrinfo lookup (AF_UNSPEC, /etc/hosts and DNS as nsswitch says).
  static Result<std::vector<os::netpolicy::Cidr>> systemLookup(const std::string& host);

 private:
  struct Impl;
  std::unique_ptr<os::netpolicy::Enforcer> enforcer_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace hv::supervisor
