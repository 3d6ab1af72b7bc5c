// PortPool: hands out TCP ports from a configured range, each to one instance.
//
// Assignment is exclusive while the instance exists (the store's UNIQUE(port)
// keeps it so across daemon restarts; load() re-reserves what the store holds).
// A port that another program on the host already listens on is skipped. The
// cursor moves forward, so a port just freed is not handed out again at once
// (a client still pointing at it would reach the wrong program).
// Not thread-safe: owned by the supervisor's control thread.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "base/result.h"

namespace hv::supervisor {

class PortPool {
 public:
  // Returns true when something else on the host holds the port.
  using InUseProbe = std::function<bool(uint16_t)>;

  // REQUIRES: 1 <= lo <= hi <= 65535.
  PortPool(uint16_t lo, uint16_t hi, InUseProbe inUse);

  // Marks a port as assigned (from the store at load). Out-of-range ports
  // (the range was narrowed in the config) are still tracked as taken.
  void reserve(uint16_t port);
  Result<uint16_t> allocate();
  void release(uint16_t port);
  bool isReserved(uint16_t port) const;

  uint16_t lo() const { return lo_; }
  uint16_t hi() const { return hi_; }

 private:
  uint16_t lo_;
  uint16_t hi_;
  InUseProbe inUse_;
  std::vector<bool> reserved_;  // indexed by port, 65536 entries
  uint16_t cursor_;
};

}  // namespace hv::supervisor
