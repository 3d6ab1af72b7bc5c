// ClientLimiter: open connections per client address, across all loops.
// ClientSlot: one counted connection (RAII), moved from the HTTP session into
// the tunnel so a WebSocket keeps its slot for as long as it is open.
//
// The limiter is shared by every loop thread: 16 mutex-guarded shards keyed by
// address, touched once at accept and once at close, never per message.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace hv::proxy {

using AddressKey = std::array<uint8_t, 16>;  // IPv4 as IPv4-mapped IPv6

AddressKey addressKey(const boost::asio::ip::address& address);

class ClientLimiter {
 public:
  explicit ClientLimiter(size_t maxPerClient) : max_(maxPerClient) {}
  ClientLimiter(const ClientLimiter&) = delete;
  ClientLimiter& operator=(const ClientLimiter&) = delete;

  bool acquire(const AddressKey& key);  // false: the client is at its limit
  void release(const AddressKey& key);

 private:
  struct Hash {
    size_t operator()(const AddressKey& k) const;
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<AddressKey, uint32_t, Hash> open;
  };
  Shard& shardOf(const AddressKey& key);

  size_t max_;
  std::array<Shard, 16> shards_;
};

class ClientSlot {
 public:
  ClientSlot() = default;
  // REQUIRES: limiter->acquire(key) returned true. `gauge` counts open slots.
  ClientSlot(ClientLimiter* limiter, const AddressKey& key, std::atomic<uint64_t>* gauge);
  ClientSlot(ClientSlot&& other) noexcept;
  ClientSlot& operator=(ClientSlot&& other) noexcept;
  ~ClientSlot() { reset(); }
  void reset();

 private:
  ClientLimiter* limiter_ = nullptr;
  AddressKey key_{};
  std::atomic<uint64_t>* gauge_ = nullptr;
};

}  // namespace hv::proxy
