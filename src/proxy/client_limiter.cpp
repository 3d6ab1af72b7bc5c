#include "proxy/client_limiter.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace hv::proxy {

AddressKey addressKey(const boost::asio::ip::address& address) {
  if (address.is_v4())
    return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, address.to_v4()).to_bytes();
  return address.to_v6().to_bytes();
}

AddressKey clientKey(const boost::asio::ip::address& address) {
  AddressKey key = addressKey(address);
  if (!address.is_v4() && !address.to_v6().is_v4_mapped()) std::fill(key.begin() + 8, key.end(), 0);
  return key;
}

namespace {

// Half the descriptors we may open (client + upstream per connection), less a
// reserve for listeners, pooled upstreams, the daemon and its files.
size_t fromDescriptorLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 100'000;
  const size_t fds = static_cast<size_t>(rl.rlim_cur);
  return fds > 512 ? (fds - 256) / 2 : fds / 4 + 1;
}

}  // namespace

ClientLimiter::ClientLimiter(size_t maxPerClient, size_t maxTotal)
    : max_(maxPerClient), maxTotal_(maxTotal ? maxTotal : fromDescriptorLimit()) {}

size_t ClientLimiter::Hash::operator()(const AddressKey& k) const {
  uint64_t a, b;
  std::memcpy(&a, k.data(), 8);
  std::memcpy(&b, k.data() + 8, 8);
  return std::hash<uint64_t>()(a * 0x9E3779B97F4A7C15ull ^ b);
}

ClientLimiter::Shard& ClientLimiter::shardOf(const AddressKey& key) { return shards_[Hash()(key) % shards_.size()]; }

bool ClientLimiter::acquire(const AddressKey& key) {
  if (total_.fetch_add(1, std::memory_order_relaxed) >= maxTotal_) {
    total_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mutex);
  uint32_t& open = shard.open[key];
  if (open >= max_) {
    if (open == 0) shard.open.erase(key);
    total_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  ++open;
  return true;
}

void ClientLimiter::release(const AddressKey& key) {
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mutex);
  auto it = shard.open.find(key);
  if (it == shard.open.end()) return;
  total_.fetch_sub(1, std::memory_order_relaxed);
  if (--it->second == 0) shard.open.erase(it);
}

ClientSlot::ClientSlot(ClientLimiter* limiter, const AddressKey& key, std::atomic<uint64_t>* gauge)
    : limiter_(limiter), key_(key), gauge_(gauge) {
  if (gauge_) gauge_->fetch_add(1, std::memory_order_relaxed);
}

ClientSlot::ClientSlot(ClientSlot&& other) noexcept
    : limiter_(std::exchange(other.limiter_, nullptr)), key_(other.key_),
      gauge_(std::exchange(other.gauge_, nullptr)) {}

ClientSlot& ClientSlot::operator=(ClientSlot&& other) noexcept {
  if (this != &other) {
    reset();
    limiter_ = std::exchange(other.limiter_, nullptr);
    key_ = other.key_;
    gauge_ = std::exchange(other.gauge_, nullptr);
  }
  return *this;
}

void ClientSlot::reset() {
  if (limiter_) limiter_->release(key_);
  if (gauge_) gauge_->fetch_sub(1, std::memory_order_relaxed);
  limiter_ = nullptr;
  gauge_ = nullptr;
}

}  // namespace hv::proxy
