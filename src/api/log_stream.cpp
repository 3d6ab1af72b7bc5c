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

template <class Protocol>
class LogStream : public std::enable_shared_from_this<LogStream<Protocol>> {
 public:
  LogStream(beast::basic_stream<Protocol>&& stream, LogFollowTarget target)
      : ws_(std::move(stream)), target_(std::move(target)), inotify_(ws_.get_executor()) {}

  void run(const Request& req) {
    beast::get_lowest_layer(ws_).expires_never();
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.binary(true);
    ws_.async_accept(req, beast::bind_front_handler(&LogStream::onAccept, this->shared_from_this()));
  }

 private:
  void onAccept(error_code ec) {
    if (ec) return;
    const std::string path = target_.logs->pathOf(target_.instance);
    file_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_CREAT, 0640));
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (!file_ || fd < 0 || ::inotify_add_watch(fd, path.c_str(), IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF) < 0) {
      if (fd >= 0) ::close(fd);
      return closeWith("cannot watch the log: " + std::string(std::strerror(errno)));
    }
    inotify_.assign(fd);
    generation_ = target_.rotator->generation(target_.instance);
    struct stat st {};
    ::fstat(file_.get(), &st);
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
    inotify_.async_read_some(asio::buffer(events_), [self = this->shared_from_this()](error_code ec, size_t n) {
      if (ec) return;
      bool deleted = false;
      for (size_t pos = 0; pos + sizeof(inotify_event) <= n;) {
        auto* ev = reinterpret_cast<const inotify_event*>(self->events_.data() + pos);
        deleted |= (ev->mask & (IN_DELETE_SELF | IN_IGNORED)) != 0;
        pos += sizeof(inotify_event) + ev->len;
      }
      // Our open fd keeps the inode alive, so unlink shows up as IN_ATTRIB
      // (link count) rather than IN_DELETE_SELF: ask the inode.
      struct stat st {};
      deleted |= ::fstat(self->file_.get(), &st) == 0 && st.st_nlink == 0;
      if (deleted) {
        self->doSend();  // the last bytes first, if the socket is free
        return self->closeWith("instance deleted");
      }
      self->doSend();
      self->doWatch();
    });
  }

  // Sends what is pending, else what the file gained since `offset_`.
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
    if (rotated_ && readChunk(rotated_.get(), rotatedOffset_)) return;
    rotated_.reset();
    const uint64_t generation = target_.rotator->generation(target_.instance);
    if (generation != generation_) {
      // Rotated: the bytes we had not sent are in NAME.log.1 at the same
      // offsets (it is a copy). More than one rotation behind: the ones in
      // between are older files; say so and go on from the newest.
      if (generation > generation_ + 1)
        pending_ = fmt::format("[hostvisor: this follower fell {} log rotation(s) behind; "
                               "their output was skipped]\n", generation - generation_ - 1);
      rotated_.reset(::open((target_.logs->pathOf(target_.instance) + ".1").c_str(), O_RDONLY | O_CLOEXEC));
      rotatedOffset_ = generation > generation_ + 1 ? 0 : offset_;
      generation_ = generation;
      offset_ = 0;
      if (!pending_.empty()) return;
      if (rotated_ && readChunk(rotated_.get(), rotatedOffset_)) return;
      rotated_.reset();
    }
    struct stat st {};
    if (::fstat(file_.get(), &st) == 0 && st.st_size < offset_) offset_ = 0;  // truncated by hand
    readChunk(file_.get(), offset_);
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
  UniqueFd file_;
  off_t offset_ = 0;
  uint64_t generation_ = 0;  // the rotator's count when offset_ was last valid
  UniqueFd rotated_;         // NAME.log.1 while draining what rotation moved there
  off_t rotatedOffset_ = 0;
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
