// PortPool: hands out TCP ports from a configured range, each to one instance.
//
// Assignment is exclusive while the instance exists (the store's UNIQUE(port)
// keeps it so across daemon restarts; load() re-reserves what the store holds).
// A port that another program on the host already listens on is skipped.
// A released port cools down (kCooldown) before it is handed out again: the
// proxy's pooled connections, clients and programs still pointing at it must
// not reach the next owner, who may be another account. The search starts at
// a random place in the range, so no account can aim a create at the port
// another account's instance is about to free.
// Not thread-safe: owned by the supervisor's control thread.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/result.h"

namespace hv::supervisor {

class PortPool {
 public:
  // Returns true when something else on the host holds the port.
  using InUseProbe = std::function<bool(uint16_t)>;
  // Longer than the proxy's pooled-connection lifetime (Limits::upstreamIdleTimeout, 30 s).
  static constexpr std::chrono::seconds kCooldown{60};

  // REQUIRES: 1 <= lo <= hi <= 65535; `clock` outlives the pool.
  PortPool(uint16_t lo, uint16_t hi, InUseProbe inUse, const Clock& clock);

  // Marks a port as assigned (from the store at load). Out-of-range ports
  // (the range was narrowed in the config) are still tracked as taken.
  void reserve(uint16_t port);
  Result<uint16_t> allocate();
  // Frees a port; it is handed out again only after kCooldown.
  void release(uint16_t port);
  // Frees a port that was never in use (a create that failed after allocate).
  void unreserve(uint16_t port) { reserved_[port] = false; }
  bool isReserved(uint16_t port) const;

  uint16_t lo() const { return lo_; }
  uint16_t hi() const { return hi_; }

 private:
  bool cooling(uint16_t port);

  uint16_t lo_;
  uint16_t hi_;
  InUseProbe inUse_;
  const Clock& clock_;
  std::vector<bool> reserved_;  // indexed by port, 65536 entries
  std::unordered_map<uint16_t, Clock::TimePoint> coolingUntil_;
  std::minstd_rand random_;
};

}  // namespace hv::supervisor
