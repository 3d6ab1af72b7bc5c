// Alerts: an instance went `fatal`, was killed by its memory limit, or keeps
// crashing. Each is pushed to the owner's open panels (an event of type
// "alert") and POSTed as JSON to the account's webhook, if it has one:
//   {"instance","account","kind","reason","time"}
// At most one per instance per kQuiet, but "fatal" always (what happened in
// between is dropped, and counted in the next one's "suppressed"). Delivery never blocks the
// control loop: an asynchronous HTTP(S) client with a timeout per attempt
// and kAttempts tries with growing pauses; only a 2xx answer ends it.
// The webhook is set by the admin (PATCH /api/v1/accounts/NAME): the daemon,
// not an account, chooses where it sends requests.
// Control thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

#include "store/database.h"

namespace hv::api {

class EventHub;

class Alerts {
 public:
  static constexpr std::chrono::minutes kQuiet{5};
  static constexpr int kAttempts = 3;
  static constexpr std::chrono::seconds kAttemptTimeout{5};

  Alerts(boost::asio::io_context& io, store::Database& db, std::shared_ptr<EventHub> events);

  // SupervisorOptions::onAlert.
  void raise(const std::string& instance, const std::string& account, std::string_view kind,
             const std::string& reason);
  uint64_t delivered() const { return *delivered_; }
  uint64_t failed() const { return *failed_; }

 private:
  struct Quiet {
    std::chrono::steady_clock::time_point until;
    int suppressed = 0;
  };
  void deliver(const std::string& url, std::string body);

  boost::asio::io_context& io_;
  store::Database& db_;
  std::shared_ptr<EventHub> events_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::unordered_map<std::string, Quiet> quiet_;  // by instance
  std::shared_ptr<uint64_t> delivered_ = std::make_shared<uint64_t>(0);
  std::shared_ptr<uint64_t> failed_ = std::make_shared<uint64_t>(0);
};

}  // namespace hv::api
