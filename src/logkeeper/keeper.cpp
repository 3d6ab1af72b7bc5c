#include "logkeeper/keeper.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "logkeeper/wire.h"

namespace hv::logkeeper {
namespace {

constexpr size_t kReadChunk = 64 * 1024;

struct Pipe {
  std::string name;
  std::string path;
  UniqueFd readEnd;
  UniqueFd writeEnd;  // kept so the pipe never reaches EOF between runs
  // Under Keeper::mu_:
  std::deque<std::string> chunks;
  size_t pending = 0;
  uint64_t written = 0;          // bytes that reached the file
  uint64_t droppedLines = 0;     // since the keeper has the pipe
  uint64_t droppedBytes = 0;
  uint64_t unreportedLines = 0;  // dropped, not yet said in the log
  uint64_t unreportedBytes = 0;
  std::string dropReason;
  bool queued = false;           // in Keeper::ready_
  bool writing = false;          // the writer holds chunks of it
  bool detached = false;         // the writer closes it after the last chunk
  // The writer thread's alone:
  UniqueFd file;
  int64_t size = 0;
};

uint64_t countLines(std::string_view data) { return static_cast<uint64_t>(std::count(data.begin(), data.end(), '\n')); }

void drop(Pipe& p, std::string_view data, const std::string& reason) {
  const uint64_t lines = std::max<uint64_t>(1, countLines(data));
  p.droppedLines += lines;
  p.droppedBytes += data.size();
  p.unreportedLines += lines;
  p.unreportedBytes += data.size();
  p.dropReason = reason;
}

class Keeper {
 public:
  explicit Keeper(int listenFd) : listen_(listenFd) {}

  int run() {
    if (auto s = setUp(); !s) {
      std::fprintf(stderr, "log keeper: %s\n", s.error().message.c_str());
      return 1;
    }
    std::thread writer([this] { writeLoop(); });
    readLoop();
    drainAll();
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    writer.join();
    if (client_) (void)send(client_.get(), Message("ok"));  // the answer to quit, after the last write
    return 0;
  }

 private:
  Status setUp() {
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    ::sigprocmask(SIG_BLOCK, &stop, nullptr);
    signals_.reset(::signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signals_) return failErrno("signalfd", errno);
    // Two descriptors per instance: ask for as many as we may have.
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
      limit.rlim_cur = limit.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) return failErrno("epoll_create1", errno);
    if (auto s = watch(listen_, kListen); !s) return s;
    return watch(signals_.get(), kSignal);
  }

  // epoll data: small numbers for our own descriptors, else a pipe's id.
  static constexpr uint64_t kListen = 1, kSignal = 2, kClient = 3, kFirstPipe = 16;

  Status watch(int fd, uint64_t id) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) return failErrno("epoll_ctl", errno);
    return {};
  }

  void readLoop() {
    epoll_event events[64];
    std::string buffer(kReadChunk, '\0');
    while (!quit_) {
      int n = ::epoll_wait(epoll_.get(), events, 64, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return;
      for (int i = 0; i < n && !quit_; ++i) {
        const uint64_t id = events[i].data.u64;
        if (id == kListen) accept();
        else if (id == kSignal) quit_ = true;
        else if (id == kClient) serveClient();
        else (void)readPipe(id, buffer);
      }
    }
  }

  void accept() {
    UniqueFd peer(::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC));
    if (!peer) return;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(peer.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != ::geteuid()) return;
    if (client_) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, client_.get(), nullptr);
    client_ = std::move(peer);
    if (!watch(client_.get(), kClient)) client_.reset();
  }

  void serveClient() {
    auto message = receive(client_.get());
    if (!message) {  // the daemon went away: keep draining, wait for the next one
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, client_.get(), nullptr);
      client_.reset();
      return;
    }
    Message reply = handle(*message);
    if (!reply.kind.empty()) (void)send(client_.get(), reply);
  }

  Message handle(Message& m) {
    if (m.kind == "config") {
      std::lock_guard lock(mu_);
      maxBytes_ = std::strtoll(std::string(m.get("max_size")).c_str(), nullptr, 10);
      keep_ = std::atoi(std::string(m.get("keep")).c_str());
      // SO_PEERCRED would name whoever called listen(): the daemon.
      return Message("ok").with("pid", std::to_string(::getpid()));
    }
    if (m.kind == "attach") return attach(m);
    if (m.kind == "detach") {
      detach(std::string(m.get("name")));
      return Message("ok");
    }
    if (m.kind == "flush") {
      flush(std::string(m.get("name")));
      return Message("ok");
    }
    if (m.kind == "fetch") {
      fetch();
      return Message("end");
    }
    if (m.kind == "stats") {
      stats();
      return Message("end");
    }
    if (m.kind == "quit") {
      quit_ = true;
      return Message();  // answered once everything is written (run())
    }
    return Message("error").with("message", "unknown request '" + m.kind + "'");
  }

  Message attach(Message& m) {
    const std::string name(m.get("name"));
    if (name.empty() || m.get("path").empty() || m.fds.size() != 2)
      return Message("error").with("message", "attach needs a name, a path and both pipe ends");
    detach(name);  // a re-attach replaces the old pipe
    auto pipe = std::make_shared<Pipe>();
    pipe->name = name;
    pipe->path = std::string(m.get("path"));
    pipe->readEnd = std::move(m.fds[0]);
    pipe->writeEnd = std::move(m.fds[1]);
    const int flags = ::fcntl(pipe->readEnd.get(), F_GETFL);
    ::fcntl(pipe->readEnd.get(), F_SETFL, flags | O_NONBLOCK);
    const uint64_t id = nextId_++;
    if (auto s = watch(pipe->readEnd.get(), id); !s) return Message("error").with("message", s.error().message);
    std::lock_guard lock(mu_);
    pipes_[id] = std::move(pipe);
    return Message("ok");
  }

  // The instance is deleted (its files go next) or its pipe replaced: what
  // is still buffered is discarded, and once the writer is done with it the
  // file is closed — nothing recreates NAME.log after the reply.
  void detach(const std::string& name) {
    std::unique_lock lock(mu_);
    for (auto it = pipes_.begin(); it != pipes_.end(); ++it) {
      if (it->second->name != name) continue;
      std::shared_ptr<Pipe> pipe = it->second;
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, pipe->readEnd.get(), nullptr);
      pipe->detached = true;
      pipe->chunks.clear();
      pipe->pending = 0;
      pipes_.erase(it);
      written_.wait_for(lock, std::chrono::milliseconds(500), [&] { return !pipe->writing; });
      if (!pipe->writing) pipe->file.reset();  // else the writer closes it when done
      return;
    }
  }

  void fetch() {
    std::vector<std::shared_ptr<Pipe>> all;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, p] : pipes_) all.push_back(p);
    }
    for (const auto& p : all) {
      Message m("pipe");
      m.with("name", p->name).with("path", p->path);
      m.fds.emplace_back(::fcntl(p->readEnd.get(), F_DUPFD_CLOEXEC, 0));
      m.fds.emplace_back(::fcntl(p->writeEnd.get(), F_DUPFD_CLOEXEC, 0));
      (void)send(client_.get(), m);
    }
  }

  // Reads what NAME's pipe holds and waits (bounded) until it is in the
  // file: the daemon reads a crashed program's last lines right after.
  void flush(const std::string& name) {
    std::shared_ptr<Pipe> pipe;
    uint64_t id = 0;
    {
      std::lock_guard lock(mu_);
      for (auto& [i, p] : pipes_) {
        if (p->name == name) {
          pipe = p;
          id = i;
        }
      }
    }
    if (!pipe) return;
    std::string buffer(kReadChunk, '\0');
    for (int i = 0; i < 64 && readPipe(id, buffer); ++i) {
    }
    std::unique_lock lock(mu_);
    written_.wait_for(lock, std::chrono::milliseconds(500), [&] { return !pipe->queued && !pipe->writing; });
  }

  // "name=written,droppedLines,droppedBytes" lines, in messages below kMaxMessage.
  void stats() {
    Message m("stats");
    size_t size = 0;
    std::lock_guard lock(mu_);
    for (auto& [id, p] : pipes_) {
      std::string value = fmt::format("{},{},{}", p->written, p->droppedLines, p->droppedBytes);
      size += p->name.size() + value.size() + 2;
      m.with(p->name, std::move(value));
      if (size > kMaxMessage / 2) {
        (void)send(client_.get(), m);
        m = Message("stats");
        size = 0;
      }
    }
    if (!m.fields.empty()) (void)send(client_.get(), m);
  }

  // One read; false when there was nothing to read.
  bool readPipe(uint64_t id, std::string& buffer) {
    std::shared_ptr<Pipe> pipe;
    {
      std::lock_guard lock(mu_);
      auto it = pipes_.find(id);
      if (it == pipes_.end()) return false;
      pipe = it->second;
    }
    ssize_t n = ::read(pipe->readEnd.get(), buffer.data(), buffer.size());
    if (n <= 0) return false;  // EAGAIN; EOF cannot happen while we hold a write end
    std::string_view data(buffer.data(), static_cast<size_t>(n));
    std::lock_guard lock(mu_);
    if (pipe->pending + data.size() > kMaxPending) {
      drop(*pipe, data, "the log buffer was full (the disk is slower than the program)");
      enqueue(pipe);  // the writer says so as soon as it can, not at the next output
      return true;
    }
    pipe->chunks.emplace_back(data);
    pipe->pending += data.size();
    enqueue(pipe);
    return true;
  }

  // On the way out: what the programs wrote before they stopped.
  void drainAll() {
    std::vector<uint64_t> ids;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, p] : pipes_) ids.push_back(id);
    }
    std::string buffer(kReadChunk, '\0');
    for (uint64_t id : ids) {
      for (int i = 0; i < 64 && readPipe(id, buffer); ++i) {
      }
    }
  }

  // Under mu_.
  void enqueue(const std::shared_ptr<Pipe>& pipe) {
    if (pipe->queued) return;
    pipe->queued = true;
    ready_.push_back(pipe);
    cv_.notify_one();
  }

  void writeLoop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
      if (ready_.empty()) return;  // stopping, and everything is written
      std::shared_ptr<Pipe> pipe = std::move(ready_.front());
      ready_.pop_front();
      pipe->queued = false;
      pipe->writing = true;
      std::deque<std::string> chunks = std::move(pipe->chunks);
      pipe->chunks.clear();
      pipe->pending = 0;
      const int64_t maxBytes = maxBytes_;
      const int keep = keep_;
      lock.unlock();
      writeOut(*pipe, chunks, maxBytes, keep);
      lock.lock();
      pipe->writing = false;
      if (pipe->detached) pipe->file.reset();
      written_.notify_all();
    }
  }

  // The writer thread; takes mu_ only to count.
  // A file never grows past maxBytes unless one line is longer: a chunk is
  // cut after its last line that fits, the file rotated, the rest goes on.
  void writeOut(Pipe& p, std::deque<std::string>& chunks, int64_t maxBytes, int keep) {
    if (chunks.empty()) {  // only a drop to report
      std::string reason;
      (void)writeReport(p, reason);
    }
    for (const std::string& chunk : chunks) {
      std::string_view rest = chunk;
      while (!rest.empty()) {
        std::string_view piece = rest;
        if (maxBytes > 0 && p.size + static_cast<int64_t>(piece.size()) > maxBytes) {
          const size_t room = static_cast<size_t>(std::max<int64_t>(0, maxBytes - p.size));
          const size_t cut = piece.substr(0, room).rfind('\n');
          if (cut != std::string_view::npos) piece = piece.substr(0, cut + 1);
          else if (p.size > 0) piece = {};  // start the line in a fresh file
          else piece = piece.substr(0, std::min(piece.size(), piece.find('\n') + 1));  // one long line
        }
        if (!piece.empty()) {
          std::string reason;
          if (!writeReport(p, reason) || !writeAll(p, piece, reason)) {
            std::lock_guard lock(mu_);
            drop(p, rest, reason);
            break;
          }
          std::lock_guard lock(mu_);
          p.written += piece.size();
        }
        rest.remove_prefix(piece.size());
        if (maxBytes > 0 && (!rest.empty() || p.size >= maxBytes)) rotate(p, keep);
      }
    }
  }

  // Says in the log what was lost since the last successful write.
  bool writeReport(Pipe& p, std::string& reason) {
    std::string line;
    {
      std::lock_guard lock(mu_);
      if (p.unreportedLines == 0) return true;
      const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
      line = fmt::format("[hostvisor {:%Y-%m-%dT%H:%M:%S}Z] {} line(s), {} bytes of output dropped: {}\n", now,
                         p.unreportedLines, p.unreportedBytes, p.dropReason);
    }
    if (!writeAll(p, line, reason)) return false;
    std::lock_guard lock(mu_);
    p.unreportedLines = p.unreportedBytes = 0;
    return true;
  }

  bool writeAll(Pipe& p, std::string_view data, std::string& reason) {
    if (!p.file) {
      p.file.reset(::open(p.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
      struct stat st {};
      if (!p.file || ::fstat(p.file.get(), &st) < 0) {
        reason = fmt::format("cannot open {}: {}", p.path, std::strerror(errno));
        p.file.reset();
        return false;
      }
      p.size = st.st_size;
    }
    while (!data.empty()) {
      ssize_t n = ::write(p.file.get(), data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = n < 0 ? errno : ENOSPC;
        reason = err == ENOSPC || err == EDQUOT ? fmt::format("disk full ({})", std::strerror(err))
                                                : fmt::format("write failed ({})", std::strerror(err));
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
      p.size += n;
    }
    return true;
  }

  // NAME.log.(keep-1) → NAME.log.keep, …, NAME.log → NAME.log.1; the next
  // write creates a fresh NAME.log. keep 0: the old log is simply removed.
  void rotate(Pipe& p, int keep) {
    p.file.reset();
    p.size = 0;
    if (keep <= 0) {
      ::unlink(p.path.c_str());
      return;
    }
    for (int i = keep - 1; i >= 1; --i) {
      ::rename(fmt::format("{}.{}", p.path, i).c_str(), fmt::format("{}.{}", p.path, i + 1).c_str());
    }
    ::rename(p.path.c_str(), (p.path + ".1").c_str());
  }

  int listen_;
  UniqueFd epoll_;
  UniqueFd signals_;
  UniqueFd client_;
  bool quit_ = false;
  uint64_t nextId_ = kFirstPipe;
  std::mutex mu_;
  std::condition_variable cv_;       // the writer waits for work
  std::condition_variable written_;  // flush waits for the writer
  std::map<uint64_t, std::shared_ptr<Pipe>> pipes_;  // under mu_
  std::deque<std::shared_ptr<Pipe>> ready_;          // under mu_
  int64_t maxBytes_ = 10 << 20;                      // under mu_
  int keep_ = 3;                                     // under mu_
  bool stopping_ = false;                            // under mu_
};

}  // namespace

int runKeeper(int listenFd) { return Keeper(listenFd).run(); }

}  // namespace hv::logkeeper
