// TLS takeover: once a wss tunnel is established, the proxy frees OpenSSL's
// SSL and carries on with this small TLS 1.3 record layer — what kernel TLS
// does, in user space (this kernel has no `tls` ULP). The reason is idle
// memory: a live SSL of OpenSSL 3.0 holds ~13.5 KB per connection, this one
// holds two AEAD contexts, the two traffic secrets and nothing else while
// idle (buffers exist only while a record is incomplete or a write is stuck).
//
// Taking over needs, from the SSL: the traffic secrets and the record
// sequence numbers of both directions. OpenSSL 3.0 has no getter for either,
// so every server SSL made with takeover on carries a TlsTrack (SSL ex_data):
//  - the keylog callback hands it CLIENT/SERVER_TRAFFIC_SECRET_0;
//  - the message callback reports every record header and handshake message,
//    so it counts the records of each direction after that direction's
//    Finished (the key change is at that record boundary in TLS 1.3).
// takeOver() refuses (the caller keeps the SSL, nothing changes) unless the
// connection is TLS 1.3 with AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305,
// the handshake is done, no post-handshake message other than our own
// NewSessionTickets has passed, no key update is pending, nothing is shut
// down, and OpenSSL holds no byte of input (SSL_has_pending: read-ahead).
//
// The record layer (RFC 8446 §5): application data is passed on; close_notify
// reads as EOF; any other alert, a bad header, length or tag, a protected
// record of another outer type, or a handshake message other than KeyUpdate
// fails the connection (the caller closes it). KeyUpdate (§4.6.3) updates the
// read secret and, when asked, queues our own KeyUpdate and updates the write
// secret. Not thread-safe: one loop thread owns it.
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>

#include "proxy/stream.h"

namespace hv::proxy {

// Makes `ssl` (a server SSL, before its handshake) track what takeOver needs.
// Its SSL_CTX (each one SNI may switch to) must have the keylog callback:
// installTlsTakeover(ctx) at context creation.
void installTlsTakeover(SSL_CTX* ctx);
void trackForTakeover(SSL* ssl);

class TlsRecords {
 public:
  static constexpr size_t kMaxPlain = 16384;             // 2^14, per record
  static constexpr size_t kMaxCipher = kMaxPlain + 256;  // §5.2 TLSCiphertext.length limit
  static constexpr size_t kHeader = 5;
  static constexpr size_t kTag = 16;

  // The record layer that continues `ssl`'s connection, or nullptr when this
  // connection cannot be taken over (see above). On success the caller frees
  // the SSL and uses only this from then on.
  static std::unique_ptr<TlsRecords> takeOver(SSL* ssl);
  ~TlsRecords();
  TlsRecords(const TlsRecords&) = delete;
  TlsRecords& operator=(const TlsRecords&) = delete;

  // Like Stream::tryRead / tryWrite on the socket `fd` (non-blocking). A
  // write that returns fewer bytes than asked (kWantWrite) may have sealed
  // records it could not send yet: as with SSL_write, the next write must
  // start with the same bytes again (they are not sealed twice).
  IoResult read(int fd, char* out, size_t cap);
  IoResult write(int fd, const char* data, size_t size);
  // Decrypted bytes, complete records or an EOF not handed out yet: a
  // readiness wait on the socket would not see them.
  bool hasBuffered() const;
  // Queues close_notify and sends what it can (best effort, like SSL_shutdown).
  void sendCloseNotify(int fd);
  bool failed() const { return failed_; }
  size_t queuedBytes() const { return out_.size() - outSent_; }  // sealed, not sent yet

  // Sequence numbers of the current keys (for tests).
  uint64_t readSequence() const { return rx_.seq; }
  uint64_t writeSequence() const { return tx_.seq; }

 private:
  struct Direction {
    EVP_CIPHER_CTX* ctx = nullptr;
    uint8_t secret[48];
    uint8_t iv[12];
    uint64_t seq = 0;
  };

  TlsRecords() = default;
  bool setKeys(Direction& d, bool encrypt);
  bool nextSecret(Direction& d, bool encrypt);  // KeyUpdate: secret_N+1, new key and iv, seq 0
  void nonce(const Direction& d, uint8_t out[12]) const;
  // Seals one record of `n` plaintext bytes (inner type `type`) into `out`
  // (n + kHeader + 1 + kTag bytes). False on a cipher failure.
  bool seal(uint8_t type, const char* data, size_t n, char* out);
  // Opens the record at `rec` (header + body of `len`) in place; the
  // plaintext (inner type stripped) is at rec + kHeader, its size in `n`.
  bool open(char* rec, size_t len, uint8_t& type, size_t& n);
  // An opened non-data record; false fails the connection.
  bool onAlert(const char* p, size_t n);
  bool onHandshake(const char* p, size_t n);
  void queueRecord(uint8_t type, const char* data, size_t n);
  IoResult flushQueued(int fd);
  IoResult fail();

  const EVP_CIPHER* cipher_ = nullptr;
  const EVP_MD* md_ = nullptr;
  size_t keyLen_ = 0;
  size_t hashLen_ = 0;
  Direction rx_, tx_;
  std::string carry_;      // received bytes not processed yet: a record's beginning
  std::string plain_;      // decrypted bytes the reader had no room for
  size_t plainOff_ = 0;
  std::string hs_;         // the beginning of a handshake message split over records
  std::string out_;        // sealed records not sent yet
  size_t outSent_ = 0;
  size_t outPlain_ = 0;    // caller bytes inside out_ (not yet reported as written)
  bool eof_ = false;       // close_notify received
  bool closedWrite_ = false;  // close_notify queued
  bool answerQueued_ = false;  // our KeyUpdate is in out_, not sent yet
  bool failed_ = false;
};

}  // namespace hv::proxy
