#include "supervisor/port_pool.h"

#include <fmt/format.h>

namespace hv::supervisor {

PortPool::PortPool(uint16_t lo, uint16_t hi, InUseProbe inUse, const Clock& clock)
    : lo_(lo), hi_(hi), inUse_(std::move(inUse)), clock_(clock), reserved_(65536, false),
      random_(std::random_device{}()) {}

void PortPool::reserve(uint16_t port) { reserved_[port] = true; }

void PortPool::release(uint16_t port) {
  reserved_[port] = false;
  coolingUntil_[port] = clock_.now() + kCooldown;
}

bool PortPool::isReserved(uint16_t port) const { return reserved_[port]; }

bool PortPool::cooling(uint16_t port) {
  auto it = coolingUntil_.find(port);
  if (it == coolingUntil_.end()) return false;
  if (clock_.now() < it->second) return true;
  coolingUntil_.erase(it);
  return false;
}

Result<uint16_t> PortPool::allocate() {
  const uint32_t size = uint32_t{hi_} - lo_ + 1;
  const uint32_t start = static_cast<uint32_t>(random_() % size);
  uint32_t busy = 0, cool = 0;
  for (uint32_t i = 0; i < size; ++i) {
    const uint16_t port = static_cast<uint16_t>(lo_ + (start + i) % size);
    if (reserved_[port]) continue;
    if (cooling(port)) {
      ++cool;
      continue;
    }
    if (inUse_ && inUse_(port)) {
      ++busy;
      continue;
    }
    reserved_[port] = true;
    return port;
  }
  return fail(Errc::kExhausted,
              fmt::format("no free port in the range {}-{}: {} assigned to instances, {} freed less than {} s "
                          "ago, {} in use by other programs; widen --port-range or delete an instance",
                          lo_, hi_, size - busy - cool, cool, kCooldown.count(), busy));
}

}  // namespace hv::supervisor
