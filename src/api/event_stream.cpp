#include "api/event_stream.h"

#include <boost/asio/post.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <malloc.h>

#include <deque>

#include "api/instance_json.h"
#include "api/log_stream.h"

namespace hv::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using boost::system::error_code;

void EventHub::changed(const std::string& name, const std::string& account) {
  if (sinks_.empty()) return;  // nobody listens: nothing to coalesce
  pending_[name] = account;
  if (std::exchange(scheduled_, true)) return;
  // After the rest of this loop turn: a restart is several changes, one event.
  for (const auto& weak : sinks_) {
    if (auto sink = weak.lock()) {
      asio::post(sink->executor(), [weak = weak_from_this()] {
        if (auto hub = weak.lock()) hub->flush();
      });
      return;
    }
  }
  scheduled_ = false;
}

void EventHub::broadcast(const std::string& account, const std::string& message) {
  auto shared = std::make_shared<const std::string>(message);
  for (const auto& weak : sinks_)
    if (auto sink = weak.lock(); sink && sink->caller().owns(account)) sink->send(shared);
}

void EventHub::subscribe(const std::shared_ptr<EventSink>& sink) { sinks_.push_back(sink); }

size_t EventHub::subscribers() {
  std::erase_if(sinks_, [](const auto& w) { return w.expired(); });
  return sinks_.size();
}

std::string EventHub::snapshotFor(const Caller& caller) const {
  std::string out = R"({"type":"snapshot","instances":[)";
  bool first = true;
  supervisor_.forEachStatus([&](const supervisor::InstanceStatus& s) {
    if (!caller.owns(s.spec.account)) return;
    if (!std::exchange(first, false)) out += ',';
    appendInstanceJson(out, s);
  });
  out += "]}";
  return out;
}

void EventHub::flush() {
  scheduled_ = false;
  auto pending = std::move(pending_);
  pending_.clear();
  std::erase_if(sinks_, [](const auto& w) { return w.expired(); });
  for (const auto& [name, account] : pending) {
    auto status = supervisor_.get(name);
    std::string text;
    if (status) {
      text = R"({"type":"instance","instance":)";
      appendInstanceJson(text, *status);
      text += '}';
    } else {
      text = R"({"type":"deleted","name":)" + boost::json::serialize(boost::json::string(name)) + '}';
    }
    auto message = std::make_shared<const std::string>(std::move(text));
    for (const auto& weak : sinks_)
      if (auto sink = weak.lock(); sink && sink->caller().owns(account)) sink->send(message);
  }
}

namespace {

constexpr size_t kTrimAfterBytes = 256 * 1024;

template <class Protocol>
class EventStream : public EventSink, public std::enable_shared_from_this<EventStream<Protocol>> {
 public:
  EventStream(beast::basic_stream<Protocol>&& stream, std::shared_ptr<EventHub> hub, Caller caller,
              std::shared_ptr<void> slot)
      : ws_(std::move(stream)), hub_(std::move(hub)), caller_(std::move(caller)), slot_(std::move(slot)) {}

  void run(const Request& req) {
    applyFollowLimits(ws_);
    ws_.text(true);
    ws_.async_accept(req, [self = this->shared_from_this()](error_code ec) { self->onAccept(ec); });
  }

  const Caller& caller() const override { return caller_; }
  asio::any_io_executor executor() override { return ws_.get_executor(); }

  void send(std::shared_ptr<const std::string> message) override {
    if (closed_) return;
    if (queue_.size() >= kMaxQueuedEvents) return closeWith("too slow: reconnect for a fresh snapshot");
    queue_.push_back(std::move(message));
    doWrite();
  }

 private:
  void onAccept(error_code ec) {
    if (ec) return;
    hub_->subscribe(this->shared_from_this());
    queue_.push_back(std::make_shared<const std::string>(hub_->snapshotFor(caller_)));
    doRead();
    doWrite();
  }

  // The client sends nothing but pings and close: reading notices it leaving.
  void doRead() {
    ws_.async_read(incoming_, [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return self->shutdown();
      self->incoming_.consume(self->incoming_.size());
      self->doRead();
    });
  }

  void doWrite() {
    if (writing_ || closed_ || queue_.empty()) return;
    writing_ = true;
    ws_.async_write(asio::buffer(*queue_.front()), [self = this->shared_from_this()](error_code ec, size_t) {
      self->writing_ = false;
      // A snapshot of 1,000 instances is ~640 KB: give its pages back once
      // sent, as the HTTP server does after large answers.
      const bool large = self->queue_.front().use_count() == 1 && self->queue_.front()->size() >= kTrimAfterBytes;
      self->queue_.pop_front();
      if (large) ::malloc_trim(0);
      if (ec) return self->shutdown();
      if (self->closed_) return self->doClose();
      self->doWrite();
    });
  }

  // One write at a time, the close frame included: it waits for the write in flight.
  void closeWith(std::string reason) {
    if (std::exchange(closed_, true)) return;
    closeReason_ = std::move(reason);
    if (!writing_) doClose();
  }

  void doClose() {
    queue_.clear();
    ws_.async_close(websocket::close_reason(websocket::close_code::try_again_later, closeReason_),
                    [self = this->shared_from_this()](error_code) {});
  }

  void shutdown() {
    closed_ = true;
    beast::get_lowest_layer(ws_).close();
  }

  websocket::stream<beast::basic_stream<Protocol>> ws_;
  std::shared_ptr<EventHub> hub_;
  Caller caller_;
  std::shared_ptr<void> slot_;
  beast::flat_buffer incoming_;
  std::deque<std::shared_ptr<const std::string>> queue_;
  std::string closeReason_;
  bool writing_ = false;
  bool closed_ = false;
};

}  // namespace

void startEventStream(beast::basic_stream<asio::ip::tcp>&& stream, const Request& req, std::shared_ptr<EventHub> hub,
                      Caller caller, std::shared_ptr<void> slot) {
  std::make_shared<EventStream<asio::ip::tcp>>(std::move(stream), std::move(hub), std::move(caller), std::move(slot))
      ->run(req);
}

void startEventStream(beast::basic_stream<asio::local::stream_protocol>&& stream, const Request& req,
                      std::shared_ptr<EventHub> hub, Caller caller, std::shared_ptr<void> slot) {
  std::make_shared<EventStream<asio::local::stream_protocol>>(std::move(stream), std::move(hub), std::move(caller),
                                                              std::move(slot))
      ->run(req);
}

}  // namespace hv::api
