// Events: `GET /api/v1/events` with a WebSocket upgrade — the panel's (and
// any API client's) live view of its instances, pushed, never polled.
// Text frames of JSON: first {"type":"snapshot","instances":[...]} (the
// caller's instances, as GET /api/v1/instances), then
// {"type":"instance","instance":{...}} whenever one changes (created, edited,
// a new state or process), {"type":"deleted","name":"..."}, and
// {"type":"alert","alert":{...}} (alerts.h).
//
// The supervisor reports changes (SupervisorOptions::onInstanceChanged) to
// the EventHub, which coalesces them: one snapshot per changed instance per
// loop turn, sent to every stream whose caller owns it. A stream holds at
// most kMaxQueued messages for a client that does not read; past that it is
// closed (the client reconnects and gets a fresh snapshot).
// Control thread only.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/basic_stream.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/api.h"

namespace hv::api {

// One subscriber (an open stream).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual const Caller& caller() const = 0;
  virtual void send(std::shared_ptr<const std::string> message) = 0;
  virtual boost::asio::any_io_executor executor() = 0;
};

class EventHub : public std::enable_shared_from_this<EventHub> {
 public:
  explicit EventHub(const supervisor::Supervisor& supervisor) : supervisor_(supervisor) {}

  void changed(const std::string& name, const std::string& account);
  // Sends `message` now to every stream whose caller owns `account`.
  void broadcast(const std::string& account, const std::string& message);
  void subscribe(const std::shared_ptr<EventSink>& sink);
  // The first message of a stream.
  std::string snapshotFor(const Caller& caller) const;
  size_t subscribers();

 private:
  void flush();

  const supervisor::Supervisor& supervisor_;
  std::vector<std::weak_ptr<EventSink>> sinks_;
  std::map<std::string, std::string> pending_;  // instance → its account
  bool scheduled_ = false;
};

constexpr size_t kMaxQueuedEvents = 4096;

void startEventStream(boost::beast::basic_stream<boost::asio::ip::tcp>&& stream, const Request& req,
                      std::shared_ptr<EventHub> hub, Caller caller, std::shared_ptr<void> slot);
void startEventStream(boost::beast::basic_stream<boost::asio::local::stream_protocol>&& stream, const Request& req,
                      std::shared_ptr<EventHub> hub, Caller caller, std::shared_ptr<void> slot);

}  // namespace hv::api
