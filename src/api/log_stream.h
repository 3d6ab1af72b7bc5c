// LogStream: `GET /api/v1/instances/{name}/logs` with a WebSocket upgrade.
// Sends the last N lines, then every byte appended to the log file, as binary
// frames (logs need not be UTF-8), until the client goes away or the log is
// deleted (close code 1000, reason "instance deleted").
//
// Event-driven: inotify on the file (IN_MODIFY; IN_ATTRIB for unlink) wakes it, it
// never polls. A truncated file (rotation by copy-truncate) is followed from
// its new start; what it had not sent yet is read from NAME.log.1 first. At most one frame is in flight, 64 KiB each, so a slow
// client holds a bounded buffer and the program writing the log never waits.
// Runs on the control io_context's thread.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/basic_stream.hpp>

#include <string>

#include "api/api.h"
#include "supervisor/log_files.h"
#include "supervisor/log_rotator.h"

namespace hv::api {

struct LogFollowTarget {
  const supervisor::LogFiles* logs = nullptr;
  const supervisor::LogRotator* rotator = nullptr;
  std::string instance;
  int lines = 100;  // how many past lines to send first
};

void startLogStream(boost::beast::basic_stream<boost::asio::ip::tcp>&& stream, const Request& req,
                    LogFollowTarget target);
void startLogStream(boost::beast::basic_stream<boost::asio::local::stream_protocol>&& stream,
                    const Request& req, LogFollowTarget target);

}  // namespace hv::api
