#include "supervisor/port_pool.h"

#include <fmt/format.h>

namespace hv::supervisor {

PortPool::PortPool(uint16_t lo, uint16_t hi, InUseProbe inUse)
    : lo_(lo), hi_(hi), inUse_(std::move(inUse)), reserved_(65536, false), cursor_(lo) {}

void PortPool::reserve(uint16_t port) { reserved_[port] = true; }

void PortPool::release(uint16_t port) { reserved_[port] = false; }

bool PortPool::isReserved(uint16_t port) const { return reserved_[port]; }

Result<uint16_t> PortPool::allocate() {
  const uint32_t size = uint32_t{hi_} - lo_ + 1;
  uint32_t busy = 0;
  for (uint32_t i = 0; i < size; ++i) {
    const uint16_t port = static_cast<uint16_t>(lo_ + (cursor_ - lo_ + i) % size);
    if (reserved_[port]) continue;
    if (inUse_ && inUse_(port)) {
      ++busy;
      continue;
    }
    reserved_[port] = true;
    cursor_ = port == hi_ ? lo_ : static_cast<uint16_t>(port + 1);
    return port;
  }
  return fail(Errc::kExhausted,
              fmt::format("no free port in the range {}-{}: {} assigned to instances, {} in use "
                          "by other programs; widen --port-range or delete an instance",
                          lo_, hi_, size - busy, busy));
}

}  // namespace hv::supervisor
