// SpawnPool: runs os::spawn() on a few worker threads and hands the outcomes
// back to the control io_context, in batches (one handler delivers all that
// finished by then).
//
// spawn() is vfork-style (CLONE_VM|CLONE_VFORK): the calling thread sleeps
// through the child's whole set-up — mounts, credentials, seccomp — and its
// execve. On the control thread that stalled every API call and exit event
// for each start, and used one core. Here the control thread prepares the
// request (cgroup, network policy, mount plan), hands it over, and goes on;
// one worker per CPU (at most 4) does the cloning.
//
// A job owns what its request points to (the mount plan); the descriptors in
// it (output pipe, cgroup) belong to the caller and must stay open until
// `done` has run. `done` runs on the io_context, never after the pool is
// destroyed. A child whose outcome is never delivered (the pool or the
// io_context went away first) is SIGKILLed with its process group and
// reaped: nothing runs that nobody tracks.
#pragma once

#include <boost/asio/io_context.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "base/result.h"
#include "os/mount_ns.h"
#include "os/spawn.h"

namespace hv::supervisor {

class SpawnPool {
 public:
  struct Job {
    os::SpawnRequest request;
    // request.mountNs is this namespace's descriptor when set; shared with
    // the supervisor's per-account cache, kept open until the spawn is done.
    std::shared_ptr<const os::MountNamespace> mounts;
    std::function<void(Result<os::Child>&)> done;  // takes the child (its pidfd) out
  };

  // threads = 0: one per CPU, at most 4.
  explicit SpawnPool(boost::asio::io_context& io, unsigned threads = 0);
  // Drops the jobs not started, waits for the running ones; their outcomes
  // are not delivered (their children are killed, see above).
  ~SpawnPool();
  SpawnPool(const SpawnPool&) = delete;
  SpawnPool& operator=(const SpawnPool&) = delete;

  void submit(std::unique_ptr<Job> job);

 private:
  // A finished spawn waiting for delivery. Destroyed undelivered, it kills
  // the child.
  struct Outcome {
    explicit Outcome(std::unique_ptr<Job> job);  // runs the spawn
    ~Outcome();
    std::unique_ptr<Job> job;
    Result<os::Child> child;
    bool delivered = false;
  };

  void work();
  void deliver();  // on the io_context: every finished outcome, in order

  boost::asio::io_context& io_;
  std::shared_ptr<bool> alive_;  // read and reset on the io_context's thread only
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::deque<std::unique_ptr<Outcome>> finished_;
  bool deliveryPosted_ = false;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// SIGKILLs a child that will not be supervised (its process group too: it
// leads its own session) and reaps it.
void discardChild(os::Child& child);

}  // namespace hv::supervisor
