// Stream: one TCP connection, plain or TLS. TLS is OpenSSL driven directly on
// the non-blocking socket (SSL_set_fd), not asio::ssl::stream: that one keeps
// two 17 KB buffers per connection forever, while an SSL with
// SSL_MODE_RELEASE_BUFFERS holds no record buffers while idle, which is what
// keeps an idle wss tunnel small.
//
// Two faces over the same connection:
//  - async_read_some / async_write_some / async_handshake, so Beast's HTTP
//    reader and writer can use it as an AsyncStream;
//  - tryRead / tryWrite (non-blocking, never wait) plus asyncWait, so the
//    tunnel can wait for readiness without holding a buffer.
// Not thread-safe: use only on the io_context thread that owns the socket.
// Owns the socket and the SSL (freed in the destructor). Move-only.
#pragma once

#include <openssl/ssl.h>
#include <sys/uio.h>

#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include <memory>
#include <type_traits>
#include <utility>

namespace hv::proxy {

class TlsRecords;

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

enum class IoStatus {
  kDone,       // tryRead: bytes > 0 were read; tryWrite: everything was written
  kWantRead,   // stopped early; call again when the socket is readable
  kWantWrite,  // stopped early; call again when the socket is writable
  kEof,        // the peer finished sending (FIN, or TLS close_notify)
  kError,
};

struct IoResult {
  size_t bytes = 0;
  IoStatus status = IoStatus::kDone;
  error_code ec;
};

class Stream {
 public:
  using executor_type = tcp::socket::executor_type;

  explicit Stream(tcp::socket socket, SSL* ssl = nullptr);  // takes ownership of `ssl`
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  executor_type get_executor() { return socket_.get_executor(); }
  tcp::socket& socket() { return socket_; }
  bool tls() const { return ssl_ != nullptr || records_ != nullptr; }
  // TLS takeover (tls_records.h): frees the SSL and continues the connection
  // with our own TLS 1.3 record layer. False (the SSL stays, nothing changes)
  // when this connection does not qualify. Only for the tunnel: Beast's
  // async_* faces must not be used afterwards.
  bool takeOverTls();
  bool tookOver() const { return records_ != nullptr; }
  // TLS only: bytes OpenSSL holds — decrypted, or records read ahead — that a
  // readiness wait on the socket would not see. Ask it only after a read that
  // returned data: after WANT_READ it may hold a partial record, whose rest
  // the socket will signal (reading again at once would spin).
  bool hasBuffered() const;

  IoResult tryRead(char* data, size_t size);
  IoResult tryWrite(const char* data, size_t size);
  // Writes as much of `iov` as one call takes: sendmsg on TCP; on TLS the
  // small buffers are copied into one record of up to kTlsRecord bytes (one
  // SSL_write, one segment). Returns the bytes taken from the front of `iov`.
  IoResult tryWriteGather(const iovec* iov, size_t count);
  static constexpr size_t kMaxGather = 64;     // buffers per write (≤ IOV_MAX); Beast's heads use ~20
  static constexpr size_t kTlsRecord = 16384;  // TLS maximum plaintext per record
  IoResult tryHandshake();  // TLS server handshake step; kDone once finished

  // Calls `handler(error_code)` when the socket can be read (kWantRead) or written.
  template <class Handler>
  void asyncWait(IoStatus want, Handler&& handler) {
    socket_.async_wait(want == IoStatus::kWantWrite ? tcp::socket::wait_write : tcp::socket::wait_read,
                       std::forward<Handler>(handler));
  }

  void shutdownSend();  // TLS close_notify (best effort) + TCP FIN
  void cancel();
  void close();

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (!ssl_) {
      asio::mutable_buffer first;
      for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it)
        if (asio::mutable_buffer b(*it); b.size() > 0) {
          first = b;
          break;
        }
      // Asio's own read: it tries at once, then waits in the reactor's
      // edge-triggered registration as it stands (IoOp's readiness wait,
      // async_wait, re-arms it with an epoll_ctl every time).
      return socket_.async_read_some(first, std::forward<Token>(token));
    }
    return asio::async_compose<Token, void(error_code, size_t)>(IoOp<MutableBuffers, true>{this, buffers}, token,
                                                                socket_);
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_compose<Token, void(error_code, size_t)>(IoOp<ConstBuffers, false>{this, buffers}, token,
                                                                socket_);
  }
  template <class Token>
  auto async_handshake(Token&& token) {
    return asio::async_compose<Token, void(error_code, size_t)>(HandshakeOp{this}, token, socket_);
  }

 private:
  // One read or write: try now, else wait for readiness and try again. A
  // completion on the first step is posted, never made inline (asio contract).
  template <class Buffers, bool kRead>
  struct IoOp {
    Stream* stream;
    Buffers buffers;
    bool started = false;

    template <class Self>
    void operator()(Self& self, error_code ec = {}) {
      if (ec) return finish(self, ec, 0);
      IoResult r;
      if constexpr (kRead) {
        auto chosen = pick();
        if (chosen.size() == 0) return finish(self, {}, 0);
        r = stream->tryRead(static_cast<char*>(chosen.data()), chosen.size());
      } else {
        // The whole sequence in one call: Beast hands over a response head as
        // one buffer per piece, and a syscall (a TCP segment) per piece was
        // most of the proxy's cost per request.
        iovec iov[kMaxGather];
        size_t count = 0;
        for (auto it = asio::buffer_sequence_begin(buffers);
             it != asio::buffer_sequence_end(buffers) && count < kMaxGather; ++it)
          if (asio::const_buffer b(*it); b.size() > 0) iov[count++] = {const_cast<void*>(b.data()), b.size()};
        if (count == 0) return finish(self, {}, 0);
        r = stream->tryWriteGather(iov, count);
      }
      if (r.bytes > 0) return finish(self, {}, r.bytes);
      if (r.status == IoStatus::kEof) return finish(self, asio::error::eof, 0);
      if (r.status == IoStatus::kError) return finish(self, r.ec, 0);
      started = true;
      stream->asyncWait(r.status, std::move(self));
    }

    asio::mutable_buffer pick() const {  // a read fills the first non-empty buffer only
      for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it)
        if (asio::mutable_buffer b(*it); b.size() > 0) return b;
      return {};
    }

    template <class Self>
    void finish(Self& self, error_code ec, size_t n) {
      if (started) return self.complete(ec, n);
      auto executor = stream->get_executor();
      asio::post(executor, [self = std::move(self), ec, n]() mutable { self.complete(ec, n); });
    }
  };

  struct HandshakeOp {
    Stream* stream;
    bool started = false;

    template <class Self>
    void operator()(Self& self, error_code ec = {}) {
      if (!ec) {
        IoResult r = stream->tryHandshake();
        if (r.status == IoStatus::kWantRead || r.status == IoStatus::kWantWrite) {
          started = true;
          return stream->asyncWait(r.status, std::move(self));
        }
        ec = r.status == IoStatus::kDone ? error_code{} : r.ec ? r.ec : asio::error::eof;
      }
      if (started) return self.complete(ec, 0);
      auto executor = stream->get_executor();
      asio::post(executor, [self = std::move(self), ec]() mutable { self.complete(ec, 0); });
    }
  };

  IoResult sslResult(int ret, IoStatus eofOrDone);

  tcp::socket socket_;
  SSL* ssl_ = nullptr;
  std::unique_ptr<TlsRecords> records_;  // after takeOverTls(); ssl_ is null then
  bool fatal_ = false;  // a TLS error happened: SSL_shutdown is not allowed any more
};

}  // namespace hv::proxy
