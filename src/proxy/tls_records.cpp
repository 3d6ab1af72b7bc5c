#include "proxy/tls_records.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/tls1.h>
#include <sys/socket.h>

#include <boost/asio/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace hv::proxy {

namespace {

constexpr uint8_t kChangeCipherSpec = 20, kAlert = 21, kHandshake = 22, kApplicationData = 23;
constexpr uint8_t kKeyUpdate = 24;      // handshake message type
constexpr uint8_t kCloseNotify = 0, kUserCanceled = 90;
constexpr size_t kMaxWire = TlsRecords::kHeader + TlsRecords::kMaxCipher;
constexpr size_t kReadStage = 2 * kMaxWire;  // per read: a record and most of the next
constexpr int kBatchRecords = 4;             // records sealed per send
constexpr size_t kWriteStage = kBatchRecords * (TlsRecords::kMaxPlain + TlsRecords::kHeader + 1 + TlsRecords::kTag);

// Per loop thread, allocated at first use: records are received and sealed
// here, so a connection owns a buffer only while a record is incomplete.
char* readStage() {
  thread_local std::unique_ptr<char[]> stage(new char[kReadStage]);
  return stage.get();
}
char* writeStage() {
  thread_local std::unique_ptr<char[]> stage(new char[kWriteStage]);
  return stage.get();
}

// What the callbacks learn about one server SSL (its ex_data) until takeover.
struct TlsTrack {
  uint8_t clientSecret[48];
  uint8_t serverSecret[48];
  size_t clientLen = 0, serverLen = 0;
  // Records of each direction under its application key: counted from that
  // direction's Finished message (TLS 1.3 changes keys at a record boundary
  // after it), so they are the next record's sequence number.
  uint64_t readRecords = 0, writeRecords = 0;
  bool readApp = false, writeApp = false;
  bool unusable = false;  // a post-handshake message we do not follow went by
};

void freeTrack(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  if (!ptr) return;
  OPENSSL_cleanse(ptr, sizeof(TlsTrack));
  delete static_cast<TlsTrack*>(ptr);
}

int trackIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, freeTrack);
  return index;
}

TlsTrack* trackOf(const SSL* ssl) { return static_cast<TlsTrack*>(SSL_get_ex_data(ssl, trackIndex())); }

void onMessage(int writing, int, int contentType, const void* buf, size_t len, SSL* ssl, void*) {
  TlsTrack* t = trackOf(ssl);
  if (!t) return;
  bool& app = writing ? t->writeApp : t->readApp;
  if (contentType == SSL3_RT_HEADER) {
    if (app) ++(writing ? t->writeRecords : t->readRecords);
    return;
  }
  if (contentType != SSL3_RT_HANDSHAKE || len < 1) return;
  const uint8_t type = static_cast<const uint8_t*>(buf)[0];
  if (!app) {
    if (type == SSL3_MT_FINISHED) app = true;  // the next record of this direction is under the new key
  } else if (!(writing && type == SSL3_MT_NEWSESSION_TICKET)) {
    t->unusable = true;  // a KeyUpdate (or worse) handled by OpenSSL: its keys are not ours any more
  }
}

int unhex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "LABEL <client random hex> <secret hex>" (NSS key log format).
void onKeylog(const SSL* ssl, const char* line) {
  TlsTrack* t = trackOf(ssl);
  if (!t) return;
  std::string_view s(line);
  uint8_t* out;
  size_t* outLen;
  if (s.starts_with("CLIENT_TRAFFIC_SECRET_0 ")) out = t->clientSecret, outLen = &t->clientLen;
  else if (s.starts_with("SERVER_TRAFFIC_SECRET_0 ")) out = t->serverSecret, outLen = &t->serverLen;
  else return;
  const size_t space = s.rfind(' ');
  std::string_view hex = s.substr(space + 1);
  *outLen = 0;
  if (hex.size() % 2 || hex.size() / 2 > sizeof t->clientSecret) return;
  for (size_t i = 0; i < hex.size() / 2; ++i) {
    const int hi = unhex(hex[2 * i]), lo = unhex(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  *outLen = hex.size() / 2;
}

// HKDF-Expand-Label(secret, label, "", length) (RFC 8446 §7.1). Every output
// here is at most one hash long, so HKDF-Expand is the single block
// T(1) = HMAC(secret, HkdfLabel || 0x01).
bool expandLabel(const EVP_MD* md, const uint8_t* secret, size_t secretLen, std::string_view label, uint8_t* out,
                 size_t length) {
  uint8_t info[2 + 1 + 6 + 16 + 1 + 1];
  size_t n = 0;
  info[n++] = static_cast<uint8_t>(length >> 8);
  info[n++] = static_cast<uint8_t>(length);
  info[n++] = static_cast<uint8_t>(6 + label.size());
  std::memcpy(info + n, "tls13 ", 6);
  n += 6;
  std::memcpy(info + n, label.data(), label.size());
  n += label.size();
  info[n++] = 0;  // empty context
  info[n++] = 1;  // the block counter
  uint8_t block[EVP_MAX_MD_SIZE];
  unsigned blockLen = 0;
  if (length > static_cast<size_t>(EVP_MD_get_size(md)) ||
      !HMAC(md, secret, static_cast<int>(secretLen), info, n, block, &blockLen))
    return false;
  std::memcpy(out, block, length);
  OPENSSL_cleanse(block, sizeof block);
  return true;
}

IoResult errorResult() { return {0, IoStatus::kError, boost::asio::error::connection_aborted}; }

}  // namespace

void installTlsTakeover(SSL_CTX* ctx) { SSL_CTX_set_keylog_callback(ctx, onKeylog); }

void trackForTakeover(SSL* ssl) {
  // The message callback is copied into the SSL, so SNI switching the context
  // later does not drop it (the keylog callback is read from the context).
  auto* t = new TlsTrack;
  if (SSL_set_ex_data(ssl, trackIndex(), t) != 1) {
    delete t;
    return;
  }
  SSL_set_msg_callback(ssl, onMessage);
}

std::unique_ptr<TlsRecords> TlsRecords::takeOver(SSL* ssl) {
  TlsTrack* t = trackOf(ssl);
  if (!t || t->unusable || !t->readApp || !t->writeApp) return nullptr;
  if (SSL_version(ssl) != TLS1_3_VERSION || !SSL_is_init_finished(ssl) || SSL_get_shutdown(ssl) != 0) return nullptr;
  if (SSL_has_pending(ssl) || SSL_pending(ssl) > 0 || SSL_get_key_update_type(ssl) != SSL_KEY_UPDATE_NONE)
    return nullptr;
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
  if (!c) return nullptr;
  std::unique_ptr<TlsRecords> r(new TlsRecords);
  switch (SSL_CIPHER_get_id(c)) {
    case TLS1_3_CK_AES_128_GCM_SHA256: r->cipher_ = EVP_aes_128_gcm(), r->md_ = EVP_sha256(); break;
    case TLS1_3_CK_AES_256_GCM_SHA384: r->cipher_ = EVP_aes_256_gcm(), r->md_ = EVP_sha384(); break;
    case TLS1_3_CK_CHACHA20_POLY1305_SHA256: r->cipher_ = EVP_chacha20_poly1305(), r->md_ = EVP_sha256(); break;
    default: return nullptr;
  }
  r->keyLen_ = static_cast<size_t>(EVP_CIPHER_get_key_length(r->cipher_));
  r->hashLen_ = static_cast<size_t>(EVP_MD_get_size(r->md_));
  if (t->clientLen != r->hashLen_ || t->serverLen != r->hashLen_) return nullptr;
  std::memcpy(r->rx_.secret, t->clientSecret, r->hashLen_);
  std::memcpy(r->tx_.secret, t->serverSecret, r->hashLen_);
  r->rx_.seq = t->readRecords;
  r->tx_.seq = t->writeRecords;
  if (!r->setKeys(r->rx_, false) || !r->setKeys(r->tx_, true)) return nullptr;
  return r;
}

TlsRecords::~TlsRecords() {
  EVP_CIPHER_CTX_free(rx_.ctx);
  EVP_CIPHER_CTX_free(tx_.ctx);
  OPENSSL_cleanse(rx_.secret, sizeof rx_.secret);
  OPENSSL_cleanse(tx_.secret, sizeof tx_.secret);
  OPENSSL_cleanse(rx_.iv, sizeof rx_.iv);
  OPENSSL_cleanse(tx_.iv, sizeof tx_.iv);
}

bool TlsRecords::setKeys(Direction& d, bool encrypt) {
  uint8_t key[32];
  bool ok = expandLabel(md_, d.secret, hashLen_, "key", key, keyLen_) &&
            expandLabel(md_, d.secret, hashLen_, "iv", d.iv, sizeof d.iv);
  if (ok && !d.ctx) ok = (d.ctx = EVP_CIPHER_CTX_new()) != nullptr &&
                         EVP_CipherInit_ex(d.ctx, cipher_, nullptr, nullptr, nullptr, encrypt ? 1 : 0) == 1;
  ok = ok && EVP_CipherInit_ex(d.ctx, nullptr, nullptr, key, nullptr, -1) == 1;
  OPENSSL_cleanse(key, sizeof key);
  return ok;
}

bool TlsRecords::nextSecret(Direction& d, bool encrypt) {
  uint8_t next[48];
  if (!expandLabel(md_, d.secret, hashLen_, "traffic upd", next, hashLen_)) return false;
  std::memcpy(d.secret, next, hashLen_);
  OPENSSL_cleanse(next, sizeof next);
  d.seq = 0;
  return setKeys(d, encrypt);
}

void TlsRecords::nonce(const Direction& d, uint8_t out[12]) const {
  std::memcpy(out, d.iv, 12);
  for (int i = 0; i < 8; ++i) out[11 - i] ^= static_cast<uint8_t>(d.seq >> (8 * i));
}

bool TlsRecords::seal(uint8_t type, const char* data, size_t n, char* out) {
  if (tx_.seq == UINT64_MAX) return false;  // §5.3: never wrap; the peer would have to reconnect
  const size_t len = n + 1 + kTag;
  auto* header = reinterpret_cast<uint8_t*>(out);
  header[0] = kApplicationData;
  header[1] = 3, header[2] = 3;
  header[3] = static_cast<uint8_t>(len >> 8), header[4] = static_cast<uint8_t>(len);
  uint8_t iv[12];
  nonce(tx_, iv);
  auto* body = header + kHeader;
  int outl = 0, tail = 0;
  const bool ok = EVP_CipherInit_ex(tx_.ctx, nullptr, nullptr, nullptr, iv, 1) == 1 &&
                  EVP_CipherUpdate(tx_.ctx, nullptr, &outl, header, kHeader) == 1 &&
                  EVP_CipherUpdate(tx_.ctx, body, &outl, reinterpret_cast<const uint8_t*>(data),
                                   static_cast<int>(n)) == 1 &&
                  EVP_CipherUpdate(tx_.ctx, body + n, &tail, &type, 1) == 1 &&
                  EVP_CipherFinal_ex(tx_.ctx, body + n + 1, &outl) == 1 &&
                  EVP_CIPHER_CTX_ctrl(tx_.ctx, EVP_CTRL_AEAD_GET_TAG, kTag, body + n + 1) == 1;
  ++tx_.seq;
  return ok;
}

bool TlsRecords::open(char* rec, size_t len, uint8_t& type, size_t& n) {
  if (rx_.seq == UINT64_MAX) return false;
  auto* header = reinterpret_cast<uint8_t*>(rec);
  auto* body = header + kHeader;
  uint8_t iv[12];
  nonce(rx_, iv);
  const int cipherLen = static_cast<int>(len - kTag);
  int outl = 0, fin = 0;
  if (EVP_CipherInit_ex(rx_.ctx, nullptr, nullptr, nullptr, iv, 0) != 1 ||
      EVP_CipherUpdate(rx_.ctx, nullptr, &outl, header, kHeader) != 1 ||
      EVP_CIPHER_CTX_ctrl(rx_.ctx, EVP_CTRL_AEAD_SET_TAG, kTag, body + cipherLen) != 1 ||
      EVP_CipherUpdate(rx_.ctx, body, &outl, body, cipherLen) != 1 ||
      EVP_CipherFinal_ex(rx_.ctx, body + outl, &fin) != 1)
    return false;  // a bad tag: forged, corrupted, or a sequence number we got wrong
  ++rx_.seq;
  // TLSInnerPlaintext: content, the real type, then zero padding.
  size_t end = static_cast<size_t>(cipherLen);
  while (end > 0 && body[end - 1] == 0) --end;
  if (end == 0) return false;  // all padding: no type (§5.4: unexpected_message)
  type = body[end - 1];
  n = end - 1;
  return n <= kMaxPlain;
}

bool TlsRecords::onAlert(const char* p, size_t n) {
  if (n != 2) return false;  // §5.1: alerts are never fragmented or coalesced
  const auto description = static_cast<uint8_t>(p[1]);
  if (description == kCloseNotify) {
    eof_ = true;
    return true;
  }
  return description == kUserCanceled;  // every other alert is fatal in TLS 1.3 (§6)
}

bool TlsRecords::onHandshake(const char* p, size_t n) {
  if (n == 0) return false;  // §5.1: no zero-length handshake fragments
  hs_.append(p, n);
  if (hs_.size() < 4) return true;
  const auto* m = reinterpret_cast<const uint8_t*>(hs_.data());
  // After the handshake a server hears only KeyUpdate: we ask for no
  // post-handshake authentication, and a client sends no tickets.
  if (m[0] != kKeyUpdate || m[1] != 0 || m[2] != 0 || m[3] != 1) return false;
  if (hs_.size() < 5) return true;
  // A key change ends its record (§5.1), and request_update is 0 or 1.
  if (hs_.size() > 5 || m[4] > 1) return false;
  const bool requested = m[4] == 1;
  std::string().swap(hs_);
  if (!nextSecret(rx_, false)) return false;
  if (requested && !closedWrite_ && !answerQueued_) {
    // §4.6.3: answer with update_not_requested before any more data, sealed
    // under the old key, then switch. Requests that come while an answer is
    // still unsent share it (as the RFC allows), so a peer that sends
    // requests and never reads cannot make us queue without bound.
    const char answer[5] = {static_cast<char>(kKeyUpdate), 0, 0, 1, 0};
    queueRecord(kHandshake, answer, sizeof answer);
    answerQueued_ = true;
    if (failed_ || !nextSecret(tx_, true)) return false;
  }
  return true;
}

void TlsRecords::queueRecord(uint8_t type, const char* data, size_t n) {
  const size_t at = out_.size();
  out_.resize(at + kHeader + n + 1 + kTag);
  if (!seal(type, data, n, out_.data() + at)) failed_ = true;
}

IoResult TlsRecords::fail() {
  failed_ = true;
  std::string().swap(carry_);
  std::string().swap(plain_);
  std::string().swap(hs_);
  std::string().swap(out_);
  return errorResult();
}

bool TlsRecords::hasBuffered() const {
  if (plainOff_ < plain_.size() || eof_) return true;
  if (carry_.size() < kHeader) return false;
  const size_t len = static_cast<uint8_t>(carry_[3]) << 8 | static_cast<uint8_t>(carry_[4]);
  return carry_.size() >= kHeader + len;
}

IoResult TlsRecords::read(int fd, char* out, size_t cap) {
  if (failed_) return errorResult();
  if (plainOff_ < plain_.size()) {
    const size_t n = std::min(cap, plain_.size() - plainOff_);
    std::memcpy(out, plain_.data() + plainOff_, n);
    plainOff_ += n;
    if (plainOff_ == plain_.size()) std::string().swap(plain_), plainOff_ = 0;
    return {n, IoStatus::kDone, {}};
  }
  if (eof_) return {0, IoStatus::kEof, {}};

  char* stage = readStage();
  size_t have = carry_.size(), pos = 0, produced = 0;
  std::memcpy(stage, carry_.data(), have);
  std::string().swap(carry_);
  IoStatus status = IoStatus::kDone;
  error_code ec;
  // Each turn either opens a record or receives bytes; a receive that
  // brings nothing ends the loop, so it is bounded by what the socket holds
  // (and by the caller's room: it stops once it has produced something).
  for (;;) {
    if (have - pos >= kHeader) {
      const auto* h = reinterpret_cast<const uint8_t*>(stage + pos);
      const size_t len = static_cast<size_t>(h[3]) << 8 | h[4];
      // §5.2: every protected record says application_data, legacy version
      // 0x0303; an unprotected change_cipher_spec is no longer allowed.
      if (h[0] != kApplicationData || h[1] != 3 || h[2] != 3 || len > kMaxCipher || len < 1 + kTag) return fail();
      if (have - pos >= kHeader + len) {
        uint8_t type = 0;
        size_t n = 0;
        char* rec = stage + pos;
        if (!open(rec, len, type, n)) return fail();
        pos += kHeader + len;
        if (type == kApplicationData) {
          if (!hs_.empty()) return fail();  // §5.1: handshake messages are not interleaved
          const size_t take = std::min(n, cap - produced);
          std::memcpy(out + produced, rec + kHeader, take);
          produced += take;
          if (take < n) {
            plain_.assign(rec + kHeader + take, n - take);
            break;
          }
        } else if (type == kAlert) {
          if (!onAlert(rec + kHeader, n)) return fail();
          if (eof_) break;
        } else if (type == kHandshake) {
          if (!onHandshake(rec + kHeader, n)) return fail();
        } else {
          return fail();  // change_cipher_spec or an unknown type under protection
        }
        if (produced == cap) break;
        continue;
      }
    }
    if (produced > 0) break;  // hand out what we have; the rest of the record comes later
    if (pos > 0) {
      std::memmove(stage, stage + pos, have - pos);
      have -= pos;
      pos = 0;
    }
    const ssize_t got = ::recv(fd, stage + have, kReadStage - have, MSG_DONTWAIT);
    if (got > 0) {
      have += static_cast<size_t>(got);
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    if (got == 0 || errno == ECONNRESET) status = IoStatus::kEof;  // no close_notify: like OpenSSL's unexpected EOF option
    else if (errno == EAGAIN || errno == EWOULDBLOCK) status = IoStatus::kWantRead;
    else status = IoStatus::kError, ec = error_code(errno, boost::system::system_category());
    break;
  }
  if (pos < have && !eof_) carry_.assign(stage + pos, have - pos);
  if (!out_.empty()) (void)flushQueued(fd);  // a KeyUpdate answer: send it now if the socket takes it
  if (failed_) return fail();
  if (produced > 0) return {produced, IoStatus::kDone, {}};
  if (eof_) return {0, IoStatus::kEof, {}};
  return {0, status, ec};
}

IoResult TlsRecords::flushQueued(int fd) {
  while (outSent_ < out_.size()) {
    const ssize_t n = ::send(fd, out_.data() + outSent_, out_.size() - outSent_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      outSent_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return {0, IoStatus::kWantWrite, {}};
    failed_ = true;
    return {0, IoStatus::kError, error_code(n < 0 ? errno : EPIPE, boost::system::system_category())};
  }
  std::string().swap(out_);
  outSent_ = 0;
  answerQueued_ = false;
  return {0, IoStatus::kDone, {}};
}

IoResult TlsRecords::write(int fd, const char* data, size_t size) {
  if (failed_) return errorResult();
  if (closedWrite_) return {0, IoStatus::kError, boost::asio::error::broken_pipe};
  size_t done = 0;
  if (!out_.empty() || outPlain_ > 0) {  // (a read may have sent out_ already)
    const IoResult f = flushQueued(fd);
    if (f.status != IoStatus::kDone) return f;
    // The caller's retry starts with the bytes sealed into out_ (see header).
    if (outPlain_ > size) return fail();
    done = std::exchange(outPlain_, 0);
  }
  char* stage = writeStage();
  while (done < size) {
    size_t wire = 0, plain = 0;
    size_t ends[kBatchRecords], plainEnds[kBatchRecords];
    int records = 0;
    while (records < kBatchRecords && done + plain < size) {
      const size_t n = std::min(kMaxPlain, size - done - plain);
      if (!seal(kApplicationData, data + done + plain, n, stage + wire)) return fail();
      wire += kHeader + n + 1 + kTag;
      plain += n;
      ends[records] = wire, plainEnds[records] = plain;
      ++records;
    }
    size_t sent = 0;
    while (sent < wire) {
      const ssize_t n = ::send(fd, stage + sent, wire - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      fail();
      return {done, IoStatus::kError, error_code(n < 0 ? errno : EPIPE, boost::system::system_category())};
    }
    if (sent == wire) {
      done += plain;
      continue;
    }
    // Sealed records used their sequence numbers: what did not go is kept
    // and sent first next time. Report only the records that went in full.
    int full = 0;
    while (full < records && ends[full] <= sent) ++full;
    const size_t reported = full > 0 ? plainEnds[full - 1] : 0;
    out_.assign(stage + sent, wire - sent);
    outSent_ = 0;
    outPlain_ = plain - reported;
    return {done + reported, IoStatus::kWantWrite, {}};
  }
  return {done, IoStatus::kDone, {}};
}

void TlsRecords::sendCloseNotify(int fd) {
  if (failed_ || closedWrite_) return;
  const char alert[2] = {1, static_cast<char>(kCloseNotify)};  // warning, close_notify
  queueRecord(kAlert, alert, sizeof alert);
  closedWrite_ = true;
  if (!failed_) (void)flushQueued(fd);
}

}  // namespace hv::proxy
