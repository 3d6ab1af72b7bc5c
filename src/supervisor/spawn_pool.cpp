#include "supervisor/spawn_pool.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "os/process.h"

namespace hv::supervisor {

namespace {

unsigned defaultThreads() { return std::clamp(std::thread::hardware_concurrency(), 1u, 4u); }

}  // namespace

SpawnPool::Outcome::Outcome(std::unique_ptr<Job> j) : job(std::move(j)), child(os::spawn(job->request)) {}

SpawnPool::Outcome::~Outcome() {
  if (!delivered && child) discardChild(*child);
}

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
  *alive_ = false;  // a delivery still queued on the io_context does nothing
  finished_.clear();  // undelivered: their children are killed
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
    auto outcome = std::make_unique<Outcome>(std::move(job));
    bool post = false;
    {
      std::lock_guard lock(mutex_);
      finished_.push_back(std::move(outcome));
      post = !std::exchange(deliveryPosted_, true);
    }
    // One handler delivers every outcome finished by then: a start changes
    // the instance list, and each loop turn with a change republishes the
    // proxy's routes (the whole list); a thousand starts at boot should not
    // mean a thousand of those.
    if (post) boost::asio::post(io_, [this, alive = alive_] {
      if (*alive) deliver();
    });
  }
}

void SpawnPool::deliver() {
  std::deque<std::unique_ptr<Outcome>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(finished_);
    deliveryPosted_ = false;
  }
  for (auto& outcome : batch) {
    outcome->delivered = true;  // done() takes the child (its pidfd) out
    outcome->job->done(outcome->child);
  }
}

}  // namespace hv::supervisor
