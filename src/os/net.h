// Network probes. Thread-safe.
#pragma once

#include <cstdint>

namespace hv::os {

// True if something on the host already holds TCP `port` (any address, v4 or
// v6) — checked by trying to bind it with SO_REUSEADDR, so sockets in
// TIME_WAIT do not count as "in use". If the probe itself cannot run (e.g.
// out of fds) the answer is true: never call a port free without checking.
// A host without IPv6 only has its v4 side checked.
bool tcpPortInUse(uint16_t port);

// True if a TCP connect to 127.0.0.1:port succeeds within `timeoutMs`.
bool tcpPortAccepts(uint16_t port, int timeoutMs);

}  // namespace hv::os
