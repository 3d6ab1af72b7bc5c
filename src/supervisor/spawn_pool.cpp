#include "supervisor/spawn_pool.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "os/process.h"

namespace hv::supervisor {

namespace {

// An outcome on its way to the io_context. Destroyed undelivered — the
// handler dropped with its io_context, or the pool gone — it kills the child.
struct Delivery {
  Result<os::Child> child;
  bool delivered = false;

  explicit Delivery(const os::SpawnRequest& request) : child(os::spawn(request)) {}
  ~Delivery() {
    if (!delivered && child) discardChild(*child);
  }
};

unsigned defaultThreads() { return std::clamp(std::thread::hardware_concurrency(), 1u, 4u); }

}  // namespace

void discardChild(os::Child& child) {
  if (child.pid > 0) (void)os::signalProcessGroup(child.pid, SIGKILL);
  if (!child.pidfd) return;
  (void)os::sendSignal(child.pidfd.get(), SIGKILL);
  siginfo_t info{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(child.pidfd.get()), &info, WEXITED) < 0 &&
         errno == EINTR) {
  }
}

SpawnPool::SpawnPool(boost::asio::io_context& io, unsigned threads)
    : io_(io), alive_(std::make_shared<bool>(true)) {
  // The workers start with every signal blocked: the daemon's signals belong
  // to the control thread (and spawn() blocks them around the clone anyway).
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  for (unsigned i = 0, n = threads == 0 ? defaultThreads() : threads; i < n; ++i) {
    workers_.emplace_back([this] { work(); });
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

SpawnPool::~SpawnPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  *alive_ = false;  // outcomes still queued on the io_context are dropped
}

void SpawnPool::submit(std::unique_ptr<Job> job) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void SpawnPool::work() {
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    auto delivery = std::make_shared<Delivery>(job->request);
    // The job (its mount plan, its callback) goes back with the outcome, so
    // it is destroyed on the io_context's thread like everything else there.
    std::shared_ptr<Job> owned = std::move(job);
    boost::asio::post(io_, [alive = alive_, delivery, owned] {
      if (!*alive) return;
      delivery->delivered = true;  // done() owns the child now
      owned->done(delivery->child);
    });
  }
}

}  // namespace hv::supervisor
