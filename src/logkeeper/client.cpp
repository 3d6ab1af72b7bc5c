#include "logkeeper/client.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

extern char** environ;

namespace hv::logkeeper {
namespace asio = boost::asio;
namespace {

constexpr auto kStatsMaxAge = std::chrono::seconds(1);
constexpr timeval kRequestTimeout{2, 0};

Result<sockaddr_un> addressOf(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return fail(Errc::kInvalidArgument, fmt::format("log keeper socket path too long: {}", path));
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

UniqueFd dupOf(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

int pidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

Client::Client(asio::io_context& io, ClientOptions options) : io_(io), options_(std::move(options)) {}

Client::~Client() = default;

Status Client::start() {
  if (auto s = connectOrSpawn(); !s) return s;
  if (ownChild_) return {};
  return fetch();
}

Status Client::connectOrSpawn() {
  auto addr = addressOf(options_.socketPath);
  if (!addr) return std::unexpected(addr.error());
  UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock) return failErrno("log keeper socket", errno);
  if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0) {
    socket_ = std::move(sock);
    keeperPid_ = 0;  // it says in its answer to `config`
    ownChild_ = false;
  } else if (errno == ENOENT || errno == ECONNREFUSED) {
    if (auto s = spawnKeeper(); !s) return s;
  } else {
    return failErrno("connect to the log keeper at " + options_.socketPath, errno);
  }
  ::setsockopt(socket_.get(), SOL_SOCKET, SO_RCVTIMEO, &kRequestTimeout, sizeof kRequestTimeout);
  ::setsockopt(socket_.get(), SOL_SOCKET, SO_SNDTIMEO, &kRequestTimeout, sizeof kRequestTimeout);
  Message config("config");
  config.with("max_size", std::to_string(options_.maxBytes)).with("keep", std::to_string(options_.keep));
  auto configured = callOnce(config, nullptr);
  if (!configured) return std::unexpected(configured.error().context("configure the log keeper"));
  if (const int pid = std::atoi(std::string(configured->front().get("pid")).c_str()); pid > 0) keeperPid_ = pid;
  if (!ownChild_) spdlog::info("log keeper: pid {} (left by an earlier daemon) is draining the programs' output", keeperPid_);
  watchKeeper();
  return {};
}

Status Client::spawnKeeper() {
  auto addr = addressOf(options_.socketPath);
  if (!addr) return std::unexpected(addr.error());
  ::unlink(options_.socketPath.c_str());
  UniqueFd listener(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!listener) return failErrno("log keeper socket", errno);
  if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) < 0)
    return failErrno("bind " + options_.socketPath, errno);
  ::chmod(options_.socketPath.c_str(), 0600);
  if (::listen(listener.get(), 4) < 0) return failErrno("listen on " + options_.socketPath, errno);

  // Its own session, default signals, the socket as fd 0, its stderr in a
  // file (never the daemon's: a test harness or a terminal would wait on it).
  posix_spawn_file_actions_t files;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&files);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&files, listener.get(), 0);
  posix_spawn_file_actions_addopen(&files, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&files, 2, options_.keeperLog.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::string arg0 = "hostvisor", arg1 = "--data-dir", arg2 = options_.dataDir, arg3 = "log-keeper";
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), arg3.data(), nullptr};
  pid_t pid = 0;
  const int err = ::posix_spawn(&pid, options_.exe.c_str(), &files, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  if (err != 0) return failErrno("start the log keeper", err);
  listener.reset();

  // The listening socket queues our connection before the keeper accepts it.
  UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock || ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) < 0) {
    const int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return failErrno("connect to the new log keeper", e);
  }
  socket_ = std::move(sock);
  keeperPid_ = pid;
  ownChild_ = true;
  spdlog::info("log keeper: started pid {}", pid);
  return {};
}

void Client::watchKeeper() {
  keeperExit_.reset();
  const int fd = pidfdOpen(keeperPid_);
  if (fd < 0) {
    spdlog::warn("log keeper: cannot watch pid {}: {}", keeperPid_, std::strerror(errno));
    return;
  }
  keeperExit_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
  keeperExit_->async_wait(asio::posix::stream_descriptor::wait_read, [this, pid = keeperPid_](boost::system::error_code ec) {
    if (ec || quitting_ || pid != keeperPid_) return;
    if (auto s = replaceKeeper(fmt::format("pid {} exited", pid)); !s)
      spdlog::error("log keeper: {}", s.error().message);
  });
}

Status Client::replaceKeeper(const std::string& why) {
  spdlog::warn("log keeper: {}; starting a new one and handing it {} pipe(s)", why, pipes_.size());
  keeperExit_.reset();
  socket_.reset();
  if (keeperPid_ > 0) {
    ::kill(keeperPid_, SIGKILL);  // gone already, or hung: either way no longer ours to wait for
    if (ownChild_) ::waitpid(keeperPid_, nullptr, 0);
  }
  keeperPid_ = 0;
  ::unlink(options_.socketPath.c_str());
  if (auto s = connectOrSpawn(); !s) return s;
  stats_.clear();
  statsAt_ = {};
  for (const auto& [name, pipe] : pipes_) {
    if (auto s = attach(name, pipe); !s) return s;
  }
  return {};
}

Result<std::vector<Message>> Client::callOnce(const Message& request, const char* last) {
  if (!socket_) return fail(Errc::kUnavailable, "no log keeper");
  if (auto s = send(socket_.get(), request); !s) return fail(Errc::kUnavailable, s.error().message);
  std::vector<Message> replies;
  for (;;) {
    auto reply = receive(socket_.get());
    if (!reply) return fail(Errc::kUnavailable, reply.error().message);
    if (reply->kind == "error")
      return fail(Errc::kInvalidArgument, fmt::format("log keeper: {}", reply->get("message")));
    const bool done = last == nullptr || reply->kind == last;
    replies.push_back(std::move(*reply));
    if (done) return replies;
  }
}

Result<std::vector<Message>> Client::call(const Message& request, const char* last) {
  auto replies = callOnce(request, last);
  if (replies || replies.error().code != Errc::kUnavailable) return replies;
  if (auto s = replaceKeeper(replies.error().message); !s) return std::unexpected(s.error());
  return callOnce(request, last);
}

Status Client::attach(const std::string& name, const PipeEnds& pipe) {
  Message m("attach");
  m.with("name", name).with("path", pipe.path);
  m.fds.push_back(dupOf(pipe.readEnd.get()));
  m.fds.push_back(dupOf(pipe.writeEnd.get()));
  if (!m.fds[0] || !m.fds[1]) return failErrno("dup a log pipe", errno);
  auto r = callOnce(m, nullptr);
  if (!r) return std::unexpected(r.error());
  return {};
}

Status Client::fetch() {
  auto replies = call(Message("fetch"), "end");
  if (!replies) return std::unexpected(replies.error().context("take the pipes back from the log keeper"));
  for (Message& m : *replies) {
    if (m.kind != "pipe" || m.fds.size() != 2) continue;
    PipeEnds pipe{std::string(m.get("path")), std::move(m.fds[0]), std::move(m.fds[1])};
    pipes_[std::string(m.get("name"))] = std::move(pipe);
  }
  spdlog::info("log keeper: took back {} pipe(s)", pipes_.size());
  return {};
}

Result<int> Client::outputFor(const std::string& name, const std::string& path) {
  if (auto it = pipes_.find(name); it != pipes_.end()) return it->second.writeEnd.get();
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) < 0) return failErrno("create the output pipe", errno);
  PipeEnds pipe{path, UniqueFd(ends[0]), UniqueFd(ends[1])};
  auto attached = attach(name, pipe);
  if (!attached && attached.error().code == Errc::kUnavailable) {
    if (auto s = replaceKeeper(attached.error().message); !s) return std::unexpected(s.error());
    attached = attach(name, pipe);
  }
  if (!attached) return std::unexpected(attached.error().context("hand the output pipe to the log keeper"));
  const int writeEnd = pipe.writeEnd.get();
  pipes_[name] = std::move(pipe);
  return writeEnd;
}

void Client::release(const std::string& name) {
  auto it = pipes_.find(name);
  if (it == pipes_.end()) return;
  if (auto r = call(Message("detach").with("name", name)); !r)
    spdlog::warn("log keeper: detach {}: {}", name, r.error().message);
  pipes_.erase(it);
  stats_.erase(name);
}

void Client::flush(const std::string& name) {
  if (!pipes_.contains(name)) return;
  if (auto r = call(Message("flush").with("name", name)); !r)
    spdlog::warn("log keeper: flush {}: {}", name, r.error().message);
}

const std::map<std::string, OutputStats>& Client::stats() {
  const auto now = std::chrono::steady_clock::now();
  if (statsAt_ != std::chrono::steady_clock::time_point{} && now - statsAt_ < kStatsMaxAge) return stats_;
  statsAt_ = now;
  auto replies = call(Message("stats"), "end");
  if (!replies) {
    spdlog::warn("log keeper: stats: {}", replies.error().message);
    return stats_;
  }
  stats_.clear();
  for (const Message& m : *replies) {
    for (const auto& [name, value] : m.fields) {
      OutputStats s;
      if (std::sscanf(value.c_str(), "%lu,%lu,%lu", &s.writtenBytes, &s.droppedLines, &s.droppedBytes) == 3)
        stats_[name] = s;
    }
  }
  return stats_;
}

void Client::quit() {
  quitting_ = true;
  keeperExit_.reset();
  if (auto r = callOnce(Message("quit"), "ok"); !r) spdlog::warn("log keeper: quit: {}", r.error().message);
  socket_.reset();
  if (ownChild_ && keeperPid_ > 0) ::waitpid(keeperPid_, nullptr, 0);
  ::unlink(options_.socketPath.c_str());
  spdlog::info("log keeper: pid {} wrote everything out and exited", keeperPid_);
  keeperPid_ = 0;
}

std::vector<std::string> Client::names() const {
  std::vector<std::string> out;
  out.reserve(pipes_.size());
  for (const auto& [name, pipe] : pipes_) out.push_back(name);
  return out;
}

}  // namespace hv::logkeeper
