// LogStream: `GET /api/v1/instances/{name}/logs` with a WebSocket upgrade.
// Sends the last N lines, then every byte appended to the log file, as binary
// frames (logs need not be UTF-8), until the client goes away or the log is
// deleted (close code 1000, reason "instance deleted").
//
// Event-driven: inotify on the file (IN_MODIFY) and on the logs directory
// (a file created, renamed or removed) wakes it, it never polls. Rotation
// renames NAME.log to NAME.log.1 (logkeeper/keeper.h): the open descriptor
// still reads the old file to its end, then the follower moves on to the
// next newer file — NAME.log.(k-1) if it fell k rotations behind, then
// NAME.log — so no byte is skipped or repeated; only a file already deleted
// by rotation is skipped, and that is said. At most one frame is in flight,
// 64 KiB each, so a slow client holds a bounded buffer and the program
// writing the log never waits.
// Runs on the control io_context's thread.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/stream_base.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "api/api.h"
#include "supervisor/log_files.h"
#include <functional>

namespace hv::api {

struct LogFollowTarget {
  const supervisor::LogFiles* logs = nullptr;
  // False once the instance followed is deleted, even if another (of another
  // account, perhaps) takes its name: a follow is bound to the instance.
  std::function<bool()> exists;
  std::string instance;
  int lines = 100;  // how many past lines to send first
  std::shared_ptr<void> slot;  // the caller's follow slot (Api caps them), held for the stream's life
};

// A follow's limits: frames from the client (it sends only pings and close)
// are small, and a client that stops answering pings is dropped.
constexpr size_t kFollowClientFrameBytes = 4096;
constexpr std::chrono::seconds kFollowIdleTimeout{60};

// Those limits on a server-side WebSocket stream (log follows, events).
template <class WebSocket>
void applyFollowLimits(WebSocket& ws) {
  boost::beast::get_lowest_layer(ws).expires_never();
  auto timeout = boost::beast::websocket::stream_base::timeout::suggested(boost::beast::role_type::server);
  timeout.idle_timeout = kFollowIdleTimeout;  // pinged at half of it; no answer: closed
  timeout.keep_alive_pings = true;
  ws.set_option(timeout);
  ws.read_message_max(kFollowClientFrameBytes);
}

void startLogStream(boost::beast::basic_stream<boost::asio::ip::tcp>&& stream, const Request& req,
                    LogFollowTarget target);
void startLogStream(boost::beast::basic_stream<boost::asio::local::stream_protocol>&& stream,
                    const Request& req, LogFollowTarget target);

}  // namespace hv::api
