// HttpServer: accepts API connections on a unix socket and on TCP, reads one
// request at a time with explicit limits (16 KiB head, 1 MiB body, 30 s to
// send it), hands it to Api::handle and writes the answer; keep-alive.
// The caller is checked on the head (Api::admit), before any body byte is
// read: an anonymous client cannot make the daemon hold bodies. A refused
// sign-in is answered after authFailureDelay and the connection closed.
// TCP connections are capped per client (IPv4 address or IPv6 /64) and in
// all; the unix socket (the CLI, the admin) has a cap of its own that no TCP
// client can use up.
//
// Everything runs on the control io_context's single thread. The unix
// socket's peer uid comes from SO_PEERCRED; TCP callers must bring a token.
//
// Memory: a large answer (the list of 1,000 instances is ~580 KB, built from
// ~1 MB of snapshots) leaves its pages in malloc's free lists. Once such
// answers stop for `trimDelay`, malloc_trim() gives them back to the kernel;
// a burst of lists reuses the pages instead of faulting them in each time.
#pragma once

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>

#include "api/api.h"
#include "base/result.h"

namespace hv::api {

struct HttpLimits {
  size_t headerBytes = 16 * 1024;
  size_t bodyBytes = 1 << 20;
  std::chrono::seconds requestTimeout{30};  // a new connection's first request; any head + body
  std::chrono::seconds idleTimeout{120};  // keep-alive connection between requests
  size_t maxConnections = 1024;           // TCP, all clients
  size_t maxPerClient = 32;               // TCP, per IPv4 address or IPv6 /64
  size_t maxUnixConnections = 256;        // the unix socket
  std::chrono::milliseconds authFailureDelay{500};
  size_t trimAfterBytes = 256 * 1024;  // an answer this large arms the trim
  std::chrono::milliseconds trimDelay{1000};
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, Api& api, HttpLimits limits = {});
  ~HttpServer();

  // Binds "ADDR:PORT" (port 0 = any free one); returns the bound "ADDR:PORT".
  Result<std::string> listenTcp(const std::string& address);
  // Binds a unix socket at `path` (replacing a stale one), mode 0666: the
  // kernel-reported uid, not the file mode, decides what a caller may do.
  Status listenUnix(const std::string& path);
  void close();

  struct Shared;  // state shared with sessions (limits, connection count)

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::function<void()>> closers_;
};

}  // namespace hv::api
