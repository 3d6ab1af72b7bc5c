#include "api/log_stream.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/beast/websocket.hpp>

#include "base/unique_fd.h"

namespace hv::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using boost::system::error_code;

namespace {

constexpr size_t kFrameBytes = 64 * 1024;
constexpr int kMaxRotated = 9;  // NAME.log.1 … NAME.log.9 (LogFiles::remove)

template <class Protocol>
class LogStream : public std::enable_shared_from_this<LogStream<Protocol>> {
 public:
  LogStream(beast::basic_stream<Protocol>&& stream, LogFollowTarget target)
      : ws_(std::move(stream)), target_(std::move(target)), inotify_(ws_.get_executor()) {}

  void run(const Request& req) {
    applyFollowLimits(ws_);
    ws_.binary(true);
    ws_.async_accept(req, beast::bind_front_handler(&LogStream::onAccept, this->shared_from_this()));
  }

 private:
  void onAccept(error_code ec) {
    if (ec) return;
    path_ = target_.logs->pathOf(target_.instance);
    file_.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_CREAT, 0640));
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (!file_ || fd < 0 || ::inotify_add_watch(fd, path_.c_str(), IN_MODIFY) < 0 ||
        ::inotify_add_watch(fd, target_.logs->dir().c_str(), IN_CREATE | IN_MOVED_TO | IN_DELETE) < 0) {
      if (fd >= 0) ::close(fd);
      return closeWith("cannot watch the log: " + std::string(std::strerror(errno)));
    }
    inotify_.assign(fd);
    struct stat st {};
    ::fstat(file_.get(), &st);
    inode_ = st.st_ino;
    offset_ = st.st_size;
    // The tail up to `offset_`, then everything after it: no gap, no repeat.
    auto tail = target_.logs->tail(target_.instance, target_.lines, offset_);
    pending_ = tail ? std::move(*tail) : std::string();
    doReadClient();
    doWatch();
    doSend();
  }

  // The client sends nothing but pings and close: reading notices it leaving.
  void doReadClient() {
    ws_.async_read(incoming_, [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return self->shutdown();
      self->incoming_.consume(self->incoming_.size());
      self->doReadClient();
    });
  }

  void doWatch() {
    inotify_.async_read_some(asio::buffer(events_), [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return;
      if (!self->alive()) {
        self->doSend();  // the last bytes of its own file first, if the socket is free
        return self->closeWith("instance deleted");
      }
      self->doSend();
      self->doWatch();
    });
  }

  // Sends what is pending, else what the log gained since `offset_`.
  void doSend() {
    if (sending_ || closed_) return;
    if (pending_.empty()) readMore();
    if (pending_.empty()) return;
    sending_ = true;
    out_ = std::move(pending_);
    pending_.clear();
    ws_.async_write(asio::buffer(out_), [self = this->shared_from_this()](error_code ec, size_t) {
      self->sending_ = false;
      if (ec) return self->shutdown();
      self->doSend();
    });
  }

  void readMore() {
    if (readChunk(file_.get(), offset_)) return;
    // At the end of the file we hold. Still NAME.log? Then nothing is new.
    struct stat now {};
    if (::stat(path_.c_str(), &now) == 0 && now.st_ino == inode_) return;
    // A new NAME.log after the instance was deleted is another instance's.
    if (alive() && moveOn()) readChunk(file_.get(), offset_);
  }

  bool alive() const { return !target_.exists || target_.exists(); }

  // Our file was rotated away (renamed to NAME.log.k) or removed: go on with
  // the next newer one. False if there is none yet (NAME.log not recreated).
  bool moveOn() {
    int k = 0;
    for (int i = 1; i <= kMaxRotated && k == 0; ++i) {
      struct stat st {};
      if (::stat(fmt::format("{}.{}", path_, i).c_str(), &st) == 0 && st.st_ino == inode_) k = i;
    }
    const std::string next = k > 1 ? fmt::format("{}.{}", path_, k - 1) : path_;
    UniqueFd fd(::open(next.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) < 0) return false;
    if (k == 0 && st.st_ino != inode_ && ::access((path_ + ".1").c_str(), F_OK) == 0)
      pending_ = "[hostvisor: this follower fell behind log rotation; output in files already deleted was skipped]\n";
    if (next == path_) (void)::inotify_add_watch(inotify_.native_handle(), path_.c_str(), IN_MODIFY);
    file_ = std::move(fd);
    inode_ = st.st_ino;
    offset_ = 0;
    return pending_.empty();
  }

  // Reads up to one frame from `fd` at `offset` into pending_; false at EOF.
  bool readChunk(int fd, off_t& offset) {
    pending_.resize(kFrameBytes);
    ssize_t got = ::pread(fd, pending_.data(), kFrameBytes, offset);
    pending_.resize(got > 0 ? static_cast<size_t>(got) : 0);
    offset += static_cast<off_t>(pending_.size());
    return !pending_.empty();
  }

  void closeWith(std::string reason) {
    if (std::exchange(closed_, true)) return;
    error_code ignored;
    inotify_.close(ignored);
    ws_.async_close(websocket::close_reason(websocket::close_code::normal, reason),
                    [self = this->shared_from_this()](error_code) {});
  }

  void shutdown() {
    closed_ = true;
    error_code ignored;
    inotify_.close(ignored);
    beast::get_lowest_layer(ws_).close();
  }

  websocket::stream<beast::basic_stream<Protocol>> ws_;
  LogFollowTarget target_;
  asio::posix::stream_descriptor inotify_;
  std::string path_;  // NAME.log
  UniqueFd file_;     // the file being followed: NAME.log, or a rotated one while catching up
  ino_t inode_ = 0;   // of file_
  off_t offset_ = 0;  // in file_
  std::array<char, 4096> events_{};
  beast::flat_buffer incoming_;
  std::string pending_;
  std::string out_;
  bool sending_ = false;
  bool closed_ = false;
};

}  // namespace

void startLogStream(beast::basic_stream<asio::ip::tcp>&& stream, const Request& req, LogFollowTarget target) {
  std::make_shared<LogStream<asio::ip::tcp>>(std::move(stream), std::move(target))->run(req);
}

void startLogStream(beast::basic_stream<asio::local::stream_protocol>&& stream, const Request& req,
                    LogFollowTarget target) {
  std::make_shared<LogStream<asio::local::stream_protocol>>(std::move(stream), std::move(target))->run(req);
}

}  // namespace hv::api
