// logkeeper::Client: the daemon's side of the log keeper (keeper.h).
//
// Every instance writes its stdout/stderr into a pipe that the keeper
// drains into NAME.log. The client keeps a duplicate of both ends of every
// pipe, so that:
// - a restarted daemon takes the pipes back from the keeper ("fetch"): an
//   adopted program goes on writing into the same pipe, nothing is lost;
// - a keeper that dies (kill -9, OOM) is replaced at once — its exit is
//   watched through a pidfd — and the new one is handed every pipe again;
//   a program notices nothing (the pipe buffers meanwhile).
// Requests are synchronous datagrams on a unix socket with a 2 s timeout; a
// keeper that does not answer is killed and replaced.
// Control thread only.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "logkeeper/wire.h"

namespace hv::logkeeper {

struct OutputStats {
  uint64_t writtenBytes = 0;   // reached the file, since this keeper has the pipe
  uint64_t droppedLines = 0;   // buffer full or disk full: lost, and said in the log
  uint64_t droppedBytes = 0;
};

struct ClientOptions {
  std::string socketPath;           // DATA_DIR/log-keeper.sock
  std::string dataDir;              // passed to the keeper (its command line names it)
  std::string keeperLog;            // the keeper's own stderr (DATA_DIR/log-keeper.log)
  int64_t maxBytes = 10 << 20;      // rotate NAME.log past this size
  int keep = 3;                     // NAME.log.1 … NAME.log.keep
  std::string exe = "/proc/self/exe";  // a hostvisor binary: runs `hostvisor log-keeper`
};

class Client {
 public:
  Client(boost::asio::io_context& io, ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects to the keeper an earlier daemon left (taking its pipes back)
  // or starts one.
  Status start();
  // The write end of NAME's pipe (the program's stdout and stderr): the
  // pipe the keeper already drains into `path`, else a new one.
  Result<int> outputFor(const std::string& name, const std::string& path);
  // NAME is deleted: the keeper writes what is left and closes its file.
  void release(const std::string& name);
  // Returns once what NAME's pipe holds is in the file (bounded wait): a
  // crashed program's last lines, read right after.
  void flush(const std::string& name);
  // Per instance; at most one request a second (cached).
  const std::map<std::string, OutputStats>& stats();
  // Nothing runs any more: the keeper writes everything out and exits.
  void quit();
  // Names of the pipes held (after start(): those taken back).
  std::vector<std::string> names() const;
  pid_t keeperPid() const { return keeperPid_; }

 private:
  struct PipeEnds {
    std::string path;
    UniqueFd readEnd;
    UniqueFd writeEnd;
  };

  Status connectOrSpawn();
  Status spawnKeeper();
  Status attach(const std::string& name, const PipeEnds& pipe);
  Status fetch();
  // One request, its replies up to (and including) `last`; on failure the
  // keeper is replaced and the request tried once more.
  Result<std::vector<Message>> call(const Message& request, const char* last = nullptr);
  Result<std::vector<Message>> callOnce(const Message& request, const char* last);
  Status replaceKeeper(const std::string& why);
  void watchKeeper();

  boost::asio::io_context& io_;
  ClientOptions options_;
  UniqueFd socket_;
  pid_t keeperPid_ = 0;
  bool ownChild_ = false;  // we started it: reap it
  std::unique_ptr<boost::asio::posix::stream_descriptor> keeperExit_;
  std::map<std::string, PipeEnds> pipes_;
  std::map<std::string, OutputStats> stats_;
  std::chrono::steady_clock::time_point statsAt_{};
  bool quitting_ = false;
};

}  // namespace hv::logkeeper
