#include "proxy/stream.h"

#include "proxy/tls_records.h"

#include <openssl/err.h>
#include <sys/socket.h>

#include <boost/asio/ssl/error.hpp>

#include <cerrno>
#include <climits>
#include <cstring>

namespace hv::proxy {

Stream::Stream(tcp::socket socket, SSL* ssl) : socket_(std::move(socket)), ssl_(ssl) {
  if (ssl_ && socket_.is_open()) {
    error_code ignored;
    socket_.non_blocking(true, ignored);  // OpenSSL's socket BIO must never block the loop
    SSL_set_fd(ssl_, socket_.native_handle());
  }
}

Stream::Stream(Stream&& other) noexcept
    : socket_(std::move(other.socket_)),
      ssl_(std::exchange(other.ssl_, nullptr)),
      records_(std::move(other.records_)),
      fatal_(other.fatal_) {}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (ssl_) SSL_free(ssl_);
    socket_ = std::move(other.socket_);
    ssl_ = std::exchange(other.ssl_, nullptr);
    records_ = std::move(other.records_);
    fatal_ = other.fatal_;
  }
  return *this;
}

Stream::~Stream() {
  if (ssl_) SSL_free(ssl_);
}

bool Stream::takeOverTls() {
  if (!ssl_) return false;
  auto records = TlsRecords::takeOver(ssl_);
  if (!records) return false;
  SSL_free(std::exchange(ssl_, nullptr));  // the socket BIO does not own the fd
  records_ = std::move(records);
  return true;
}

bool Stream::hasBuffered() const {
  if (records_) return records_->hasBuffered();
  return ssl_ && SSL_has_pending(ssl_) == 1;
}

IoResult Stream::sslResult(int ret, IoStatus doneStatus) {
  if (ret > 0) return {static_cast<size_t>(ret), doneStatus, {}};
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ: return {0, IoStatus::kWantRead, {}};
    case SSL_ERROR_WANT_WRITE: return {0, IoStatus::kWantWrite, {}};
    case SSL_ERROR_ZERO_RETURN: return {0, IoStatus::kEof, {}};
    case SSL_ERROR_SYSCALL:
      fatal_ = true;
      if (errno == 0 || errno == ECONNRESET) return {0, IoStatus::kEof, {}};
      return {0, IoStatus::kError, error_code(errno, boost::system::system_category())};
    default: {
      fatal_ = true;
      const unsigned long err = ERR_get_error();
      ERR_clear_error();
      return {0, IoStatus::kError, error_code(static_cast<int>(err), asio::error::get_ssl_category())};
    }
  }
}

IoResult Stream::tryRead(char* data, size_t size) {
  if (records_) return records_->read(socket_.native_handle(), data, size);
  if (ssl_) {
    ERR_clear_error();
    errno = 0;
    return sslResult(SSL_read(ssl_, data, static_cast<int>(std::min<size_t>(size, INT_MAX))), IoStatus::kDone);
  }
  for (;;) {
    const ssize_t n = ::recv(socket_.native_handle(), data, size, MSG_DONTWAIT);
    if (n > 0) return {static_cast<size_t>(n), IoStatus::kDone, {}};
    if (n == 0) return {0, IoStatus::kEof, {}};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {0, IoStatus::kWantRead, {}};
    return {0, IoStatus::kError, error_code(errno, boost::system::system_category())};
  }
}

IoResult Stream::tryWrite(const char* data, size_t size) {
  if (records_) return records_->write(socket_.native_handle(), data, size);
  size_t done = 0;
  while (done < size) {
    IoResult r;
    if (ssl_) {
      ERR_clear_error();
      errno = 0;
      r = sslResult(SSL_write(ssl_, data + done, static_cast<int>(std::min<size_t>(size - done, INT_MAX))),
                    IoStatus::kDone);
      if (r.status == IoStatus::kEof) r = {0, IoStatus::kError, asio::error::broken_pipe};
    } else {
      const ssize_t n = ::send(socket_.native_handle(), data + done, size - done, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n >= 0) r = {static_cast<size_t>(n), IoStatus::kDone, {}};
      else if (errno == EINTR) continue;
      else if (errno == EAGAIN || errno == EWOULDBLOCK) r = {0, IoStatus::kWantWrite, {}};
      else r = {0, IoStatus::kError, error_code(errno, boost::system::system_category())};
    }
    if (r.status != IoStatus::kDone) return {done, r.status, r.ec};
    done += r.bytes;
    // A short plain send means the socket buffer is full: wait, do not spin.
    if (!ssl_ && done < size) return {done, IoStatus::kWantWrite, {}};
  }
  return {done, IoStatus::kDone, {}};
}

IoResult Stream::tryWriteGather(const iovec* iov, size_t count) {
  if (ssl_ || records_) {
    if (count == 1 || iov[0].iov_len >= kTlsRecord / 2)
      return tryWrite(static_cast<const char*>(iov[0].iov_base), iov[0].iov_len);
    // One thread-local chunk per loop thread: it holds bytes only for the
    // duration of this call (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets a retry
    // after WANT_WRITE come from a fresh copy of the same bytes).
    thread_local char chunk[kTlsRecord];
    size_t used = 0;
    for (size_t i = 0; i < count && used < kTlsRecord; ++i) {
      const size_t n = std::min(iov[i].iov_len, kTlsRecord - used);
      std::memcpy(chunk + used, iov[i].iov_base, n);
      used += n;
    }
    return tryWrite(chunk, used);
  }
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  for (;;) {
    const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return {static_cast<size_t>(n), IoStatus::kDone, {}};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {0, IoStatus::kWantWrite, {}};
    return {0, IoStatus::kError, error_code(errno, boost::system::system_category())};
  }
}

IoResult Stream::tryHandshake() {
  if (!ssl_) return {};
  ERR_clear_error();
  errno = 0;
  const int ret = SSL_do_handshake(ssl_);
  if (ret == 1) return {};
  IoResult r = sslResult(ret, IoStatus::kDone);
  if (r.status == IoStatus::kDone || r.status == IoStatus::kEof) r = {0, IoStatus::kError, asio::error::eof};
  return r;
}

void Stream::shutdownSend() {
  if (ssl_ && !fatal_ && SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // sends close_notify; we keep reading, so no wait for the peer's
    ERR_clear_error();
  }
  if (records_) records_->sendCloseNotify(socket_.native_handle());
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

void Stream::cancel() {
  error_code ignored;
  socket_.cancel(ignored);
}

void Stream::close() {
  error_code ignored;
  socket_.close(ignored);
}

}  // namespace hv::proxy
