#include "proxy/client_limiter.h"

#include <cstring>
#include <utility>

namespace hv::proxy {

AddressKey addressKey(const boost::asio::ip::address& address) {
  if (address.is_v4())
    return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, address.to_v4()).to_bytes();
  return address.to_v6().to_bytes();
}

size_t ClientLimiter::Hash::operator()(const AddressKey& k) const {
  uint64_t a, b;
  std::memcpy(&a, k.data(), 8);
  std::memcpy(&b, k.data() + 8, 8);
  return std::hash<uint64_t>()(a * 0x9E3779B97F4A7C15ull ^ b);
}

ClientLimiter::Shard& ClientLimiter::shardOf(const AddressKey& key) { return shards_[Hash()(key) % shards_.size()]; }

bool ClientLimiter::acquire(const AddressKey& key) {
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mutex);
  uint32_t& open = shard.open[key];
  if (open >= max_) {
    if (open == 0) shard.open.erase(key);
    return false;
  }
  ++open;
  return true;
}

void ClientLimiter::release(const AddressKey& key) {
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mutex);
  auto it = shard.open.find(key);
  if (it != shard.open.end() && --it->second == 0) shard.open.erase(it);
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
