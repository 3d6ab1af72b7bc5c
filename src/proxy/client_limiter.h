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
// The key a client is counted under: its IPv4 address, or its IPv6 /64 (one
// subscriber gets a whole /64 and can pick any address in it at will).
AddressKey clientKey(const boost::asio::ip::address& address);

class ClientLimiter {
 public:
  // `maxTotal` caps open connections across all clients (0 = from the
  // descriptor limit: each proxied connection holds two descriptors).
  explicit ClientLimiter(size_t maxPerClient, size_t maxTotal = 0);
  ClientLimiter(const ClientLimiter&) = delete;
  ClientLimiter& operator=(const ClientLimiter&) = delete;

  bool acquire(const AddressKey& key);  // false: the client, or the proxy, is at its limit
  void release(const AddressKey& key);
  size_t maxTotal() const { return maxTotal_; }

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
  size_t maxTotal_;
  std::atomic<size_t> total_{0};
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
