// TLS takeover against a real peer: an OpenSSL client (its own record layer,
// key schedule and KeyUpdate) talks to a server SSL made by TlsStore on a
// socketpair; after takeover the server side is TlsRecords alone. The client
// sits on a BIO pair that the test relays to the socket, so the test can also
// corrupt what it sends (the garbage tests).
#include "proxy/tls_records.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include "proxy/test_support.h"
#include "proxy/tls_store.h"

namespace hv::proxy::test {
namespace {

constexpr int kMaxTurns = 200000;  // every relay loop is bounded
constexpr size_t kScratch = 64 * 1024;  // what the tunnel reads with (Worker::kScratchSize)

class Pair {
 public:
  Pair(TlsStore& store, int maxVersion = TLS1_3_VERSION, const char* suites = nullptr) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    serverFd = fds[0], peerFd = fds[1];
    server = store.newSsl();
    SSL_set_fd(server, serverFd);
    cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(cctx, maxVersion);
    if (suites) SSL_CTX_set_ciphersuites(cctx, suites);
    client = SSL_new(cctx);
    BIO* inner = nullptr;
    BIO_new_bio_pair(&inner, 1 << 21, &net, 1 << 21);
    SSL_set_bio(client, inner, inner);
    SSL_set_connect_state(client);
  }
  ~Pair() {
    SSL_free(client);
    SSL_CTX_free(cctx);
    BIO_free(net);
    if (server) SSL_free(server);
    records.reset();
    ::close(serverFd);
    ::close(peerFd);
  }

  // Moves bytes between the client's BIO and the socket, both ways; `tamper`
  // may change what the client sends. Returns whether anything moved.
  bool relay(const std::function<void(std::string&)>& tamper = {}) {
    bool moved = false;
    char buf[65536];
    for (int n; (n = BIO_read(net, buf, sizeof buf)) > 0;) {
      std::string chunk(buf, static_cast<size_t>(n));
      if (tamper) tamper(chunk);
      toServer += chunk;
      moved = true;
    }
    while (!toServer.empty()) {
      const ssize_t n = ::send(peerFd, toServer.data(), toServer.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      toServer.erase(0, static_cast<size_t>(n));
      moved = true;
    }
    for (;;) {
      const size_t room = BIO_ctrl_get_write_guarantee(net);
      if (room == 0) break;
      const ssize_t n = ::recv(peerFd, buf, std::min(room, sizeof buf), 0);
      if (n <= 0) break;
      BIO_write(net, buf, static_cast<int>(n));
      moved = true;
    }
    return moved;
  }

  bool handshake() {
    for (int turn = 0; turn < 1000; ++turn) {
      const int c = SSL_do_handshake(client);
      const int s = SSL_do_handshake(server);
      relay();
      if (c == 1 && s == 1) return true;
    }
    return false;
  }

  // Client → server through the SSL (before takeover) or the record layer.
  std::string serverRead(size_t want) {
    std::string got;
    std::vector<char> buf(kScratch);
    for (int turn = 0; turn < kMaxTurns && got.size() < want; ++turn) {
      relay();
      if (records) {
        const IoResult r = records->read(serverFd, buf.data(), buf.size());
        if (r.status == IoStatus::kDone) got.append(buf.data(), r.bytes);
        else if (r.status != IoStatus::kWantRead) break;
      } else {
        const int n = SSL_read(server, buf.data(), static_cast<int>(buf.size()));
        if (n > 0) got.append(buf.data(), static_cast<size_t>(n));
      }
    }
    return got;
  }
  // Sends `data` from the client while the server reads it (the buffers are
  // smaller than the largest message). Returns what the server got.
  std::string clientToServer(const std::string& data, size_t recordSize = 16384) {
    std::string got;
    size_t sent = 0;
    std::vector<char> buf(kScratch);
    for (int turn = 0; turn < kMaxTurns && (sent < data.size() || got.size() < data.size()); ++turn) {
      if (sent < data.size()) {
        const int n = SSL_write(client, data.data() + sent, static_cast<int>(std::min(recordSize, data.size() - sent)));
        if (n > 0) sent += static_cast<size_t>(n);
      }
      relay();
      const IoResult r = records->read(serverFd, buf.data(), buf.size());
      if (r.status == IoStatus::kDone) got.append(buf.data(), r.bytes);
      else if (r.status != IoStatus::kWantRead) break;
    }
    return got;
  }
  std::string serverToClient(const std::string& data) {
    std::string got;
    size_t sent = 0;
    std::vector<char> buf(65536);
    for (int turn = 0; turn < kMaxTurns && (sent < data.size() || got.size() < data.size()); ++turn) {
      if (sent < data.size()) {
        const IoResult w = records->write(serverFd, data.data() + sent, data.size() - sent);
        if (w.status == IoStatus::kError) break;
        sent += w.bytes;
      }
      relay();
      const int n = SSL_read(client, buf.data(), static_cast<int>(buf.size()));
      if (n > 0) got.append(buf.data(), static_cast<size_t>(n));
      else if (SSL_get_error(client, n) != SSL_ERROR_WANT_READ) break;
    }
    return got;
  }
  // The client reads until the server's records stop: tickets, data.
  std::string clientRead(size_t want) {
    std::string got;
    char buf[65536];
    for (int turn = 0; turn < kMaxTurns && got.size() < want; ++turn) {
      relay();
      const int n = SSL_read(client, buf, sizeof buf);
      if (n > 0) got.append(buf, static_cast<size_t>(n));
      else if (SSL_get_error(client, n) != SSL_ERROR_WANT_READ) break;
    }
    return got;
  }

  std::string serverToClientViaSsl(const std::string& data) {  // before takeover
    if (SSL_write(server, data.data(), static_cast<int>(data.size())) != static_cast<int>(data.size())) return {};
    return clientRead(data.size());
  }

  bool takeOver() {
    records = TlsRecords::takeOver(server);
    if (!records) return false;
    SSL_free(std::exchange(server, nullptr));
    return true;
  }

  int serverFd = -1, peerFd = -1;
  SSL* server = nullptr;
  SSL_CTX* cctx = nullptr;
  SSL* client = nullptr;
  BIO* net = nullptr;
  std::string toServer;
  std::unique_ptr<TlsRecords> records;
};

std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class ProxyTlsRecords : public ::testing::Test {
 protected:
  void SetUp() override {
    store.setTakeover(true);
    ASSERT_TRUE(store.load({makeCertificate(dir.path(), "t", "t.test", "")}));
  }
  TempDir dir;
  TlsStore store;
};

// The SSL's record counts become the sequence numbers: hundreds of records
// each way before takeover (and the two session tickets), then data both ways.
TEST_F(ProxyTlsRecords, ContinuesTheConnectionAtTheRightSequenceNumbers) {
  for (const char* suite : {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}) {
    SCOPED_TRACE(suite);
    Pair p(store, TLS1_3_VERSION, suite);
    ASSERT_TRUE(p.handshake());
    for (int i = 0; i < 300; ++i) {
      const std::string m = "up " + std::to_string(i);
      ASSERT_EQ(SSL_write(p.client, m.data(), static_cast<int>(m.size())), static_cast<int>(m.size()));
      ASSERT_EQ(p.serverRead(m.size()), m);
      const std::string d = "down " + std::to_string(i);
      ASSERT_EQ(SSL_write(p.server, d.data(), static_cast<int>(d.size())), static_cast<int>(d.size()));
      ASSERT_EQ(p.clientRead(d.size()), d);
    }
    ASSERT_TRUE(p.takeOver());
    EXPECT_EQ(p.records->readSequence(), 300u);
    EXPECT_EQ(p.records->writeSequence(), 302u);  // 300 + the two NewSessionTickets
    EXPECT_EQ(p.clientToServer("after takeover"), "after takeover");
    EXPECT_EQ(p.serverToClient("and back"), "and back");
    EXPECT_EQ(p.records->readSequence(), 301u);
  }
}

// A resumed session (PSK, no certificate) has a different handshake; the
// keys and counts come out the same way.
TEST_F(ProxyTlsRecords, ResumedSessionIsTakenOverToo) {
  SSL_SESSION* session = nullptr;
  {
    Pair first(store);
    ASSERT_TRUE(first.handshake());
    EXPECT_EQ(first.serverToClientViaSsl("ticket please"), "ticket please");  // the client takes the tickets
    session = SSL_get1_session(first.client);
    ASSERT_NE(session, nullptr);
    ASSERT_EQ(SSL_SESSION_is_resumable(session), 1);
    // A clean end, else SSL_free marks the client's session not resumable.
    SSL_set_shutdown(first.client, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
  Pair p(store);
  SSL_set_session(p.client, session);
  SSL_SESSION_free(session);
  ASSERT_TRUE(p.handshake());
  EXPECT_EQ(SSL_session_reused(p.client), 1);
  ASSERT_TRUE(p.takeOver());
  EXPECT_EQ(p.clientToServer("resumed"), "resumed");
  EXPECT_EQ(p.serverToClient("and answered"), "and answered");
}

TEST_F(ProxyTlsRecords, MessagesOfEverySizeBothWays) {
  Pair p(store);
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.takeOver());
  for (size_t size : {size_t{1}, size_t{100}, size_t{16383}, size_t{16384}, size_t{16385}, size_t{65536},
                      size_t{300000}, size_t{1} << 20}) {
    SCOPED_TRACE(size);
    const std::string data = pattern(size, static_cast<unsigned>(size));
    EXPECT_TRUE(p.clientToServer(data) == data);
    EXPECT_TRUE(p.serverToClient(data) == data);
  }
  // Small records in bulk: sequence numbers well past 2^8 and 2^16 bits of the nonce.
  std::string many;
  for (int i = 0; i < 1000; ++i) many += "m" + std::to_string(i);
  const uint64_t before = p.records->readSequence();
  EXPECT_EQ(p.clientToServer(many, 7), many);
  EXPECT_EQ(p.records->readSequence(), before + (many.size() + 6) / 7);
  EXPECT_GT(p.records->readSequence(), 600u);
}

TEST_F(ProxyTlsRecords, KeyUpdateFromTheClientBothKinds) {
  Pair p(store);
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.takeOver());
  EXPECT_EQ(p.clientToServer("before"), "before");
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    // update_requested: we must answer with our own KeyUpdate (else the
    // client would read our records with the old key and fail).
    ASSERT_EQ(SSL_key_update(p.client, SSL_KEY_UPDATE_REQUESTED), 1);
    EXPECT_EQ(p.clientToServer("requested " + std::to_string(round)), "requested " + std::to_string(round));
    EXPECT_EQ(p.records->readSequence(), 1u);   // the data record, under the new key
    EXPECT_EQ(p.records->writeSequence(), 0u);  // our answer went out under the old one
    EXPECT_EQ(p.serverToClient("answer " + std::to_string(round)), "answer " + std::to_string(round));
    ASSERT_EQ(SSL_key_update(p.client, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    EXPECT_EQ(p.clientToServer("not requested"), "not requested");
    EXPECT_EQ(p.records->writeSequence(), 1u);
    EXPECT_EQ(p.serverToClient("still old key"), "still old key");
  }
}

// A client that asks for key updates but does not read: one answer waits in
// the queue for all of them, and everything arrives once the client reads.
TEST_F(ProxyTlsRecords, UnreadKeyUpdateRequestsShareOneAnswer) {
  Pair p(store);
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.takeOver());
  // Fill the socket toward the client (nothing relays it yet).
  const std::string chunk(16384, 'f');
  std::string written, retry;
  for (int i = 0; i < 10000 && retry.empty(); ++i) {
    const IoResult w = p.records->write(p.serverFd, chunk.data(), chunk.size());
    written.append(chunk.data(), w.bytes);
    if (w.status != IoStatus::kDone) retry = chunk.substr(w.bytes);  // must come again (SSL_write rules)
  }
  const size_t stuck = p.records->queuedBytes();
  ASSERT_GT(stuck, 0u);
  char buf[64];
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(SSL_key_update(p.client, SSL_KEY_UPDATE_REQUESTED), 1);
    ASSERT_EQ(SSL_write(p.client, "u", 1), 1);
    std::string toServer;
    for (int n; (n = BIO_read(p.net, buf, sizeof buf)) > 0;) toServer.append(buf, static_cast<size_t>(n));
    ASSERT_EQ(::send(p.peerFd, toServer.data(), toServer.size(), 0), static_cast<ssize_t>(toServer.size()));
    ASSERT_EQ(p.records->read(p.serverFd, buf, sizeof buf).bytes, 1u);
  }
  EXPECT_LE(p.records->queuedBytes(), stuck + TlsRecords::kHeader + 5 + 1 + TlsRecords::kTag);
  // The client reads: the stuck data, our one KeyUpdate, then data under the new key.
  const std::string tail = "after the updates";
  bool tailSent = false;
  std::string got;
  std::vector<char> rbuf(65536);
  for (int turn = 0; turn < kMaxTurns && !(tailSent && got.size() == written.size()); ++turn) {
    if (!retry.empty()) {
      const IoResult w = p.records->write(p.serverFd, retry.data(), retry.size());
      ASSERT_NE(w.status, IoStatus::kError);
      written.append(retry.data(), w.bytes);
      retry.erase(0, w.bytes);
    } else if (!tailSent && got.size() == written.size()) {
      ASSERT_EQ(p.records->write(p.serverFd, tail.data(), tail.size()).status, IoStatus::kDone);
      written += tail;
      tailSent = true;
    }
    p.relay();
    const int n = SSL_read(p.client, rbuf.data(), static_cast<int>(rbuf.size()));
    if (n > 0) got.append(rbuf.data(), static_cast<size_t>(n));
    else ASSERT_EQ(SSL_get_error(p.client, n), SSL_ERROR_WANT_READ);
  }
  EXPECT_TRUE(tailSent);
  EXPECT_EQ(got.size(), written.size());
  EXPECT_TRUE(got == written);
}

TEST_F(ProxyTlsRecords, CloseNotifyBothWays) {
  Pair p(store);
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.takeOver());
  EXPECT_EQ(p.clientToServer("last words"), "last words");
  EXPECT_EQ(SSL_shutdown(p.client), 0);  // sends close_notify
  p.relay();
  char buf[64];
  EXPECT_EQ(p.records->read(p.serverFd, buf, sizeof buf).status, IoStatus::kEof);
  EXPECT_EQ(p.records->read(p.serverFd, buf, sizeof buf).status, IoStatus::kEof);
  // Half-closed: we may still send, then close our side.
  EXPECT_EQ(p.serverToClient("reply after client's close"), "reply after client's close");
  p.records->sendCloseNotify(p.serverFd);
  EXPECT_EQ(p.records->write(p.serverFd, "x", 1).status, IoStatus::kError);
  p.relay();
  EXPECT_EQ(SSL_read(p.client, buf, sizeof buf), 0);
  EXPECT_EQ(SSL_get_error(p.client, 0), SSL_ERROR_ZERO_RETURN);
}

TEST_F(ProxyTlsRecords, FatalAlertAndTcpEof) {
  {
    Pair p(store);
    ASSERT_TRUE(p.handshake());
    ASSERT_TRUE(p.takeOver());
    // A client that gets a record it cannot open sends a fatal alert
    // (bad_record_mac); here it is simply told to by a corrupted record.
    std::string record = "\x17\x03\x03\x00\x20" + std::string(32, 'x');
    ASSERT_EQ(::send(p.serverFd, record.data(), record.size(), 0), static_cast<ssize_t>(record.size()));
    p.relay();
    char buf[64];
    EXPECT_LE(SSL_read(p.client, buf, sizeof buf), 0);
    p.relay();
    EXPECT_EQ(p.records->read(p.serverFd, buf, sizeof buf).status, IoStatus::kError);
  }
  {
    Pair p(store);
    ASSERT_TRUE(p.handshake());
    ASSERT_TRUE(p.takeOver());
    ::shutdown(p.peerFd, SHUT_WR);
    char buf[64];
    EXPECT_EQ(p.records->read(p.serverFd, buf, sizeof buf).status, IoStatus::kEof);
  }
}

TEST_F(ProxyTlsRecords, RefusesWhatItCannotContinue) {
  {  // TLS 1.2 stays with OpenSSL
    Pair p(store, TLS1_2_VERSION);
    ASSERT_TRUE(p.handshake());
    EXPECT_EQ(SSL_version(p.server), TLS1_2_VERSION);
    EXPECT_FALSE(p.takeOver());
  }
  {  // bytes OpenSSL has read ahead but not handed out
    Pair p(store);
    ASSERT_TRUE(p.handshake());
    ASSERT_EQ(SSL_write(p.client, "one", 3), 3);
    ASSERT_EQ(SSL_write(p.client, "two", 3), 3);
    p.relay();
    char c;
    ASSERT_EQ(SSL_read(p.server, &c, 1), 1);
    EXPECT_TRUE(SSL_has_pending(p.server));
    EXPECT_FALSE(p.takeOver());
    EXPECT_EQ(p.serverRead(5), "netwo");
  }
  {  // a KeyUpdate OpenSSL has already handled: its keys moved on without us
    Pair p(store);
    ASSERT_TRUE(p.handshake());
    ASSERT_EQ(SSL_key_update(p.client, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    ASSERT_EQ(SSL_write(p.client, "k", 1), 1);
    EXPECT_EQ(p.serverRead(1), "k");
    EXPECT_FALSE(p.takeOver());
  }
  {  // an SSL made without tracking
    TlsStore plain;
    ASSERT_TRUE(plain.load({makeCertificate(dir.path(), "u", "u.test", "")}));
    Pair p(plain);
    ASSERT_TRUE(p.handshake());
    EXPECT_FALSE(p.takeOver());
  }
}

// Garbage must end the connection with kError: never a crash, a hang, a
// read past a buffer or a leak (run under ASan/valgrind for the last two).
TEST_F(ProxyTlsRecords, GarbageRecordsAreRejected) {
  std::mt19937 rng(4242);
  for (int round = 0; round < 150; ++round) {
    SCOPED_TRACE(round);
    Pair p(store);
    ASSERT_TRUE(p.handshake());
    ASSERT_TRUE(p.takeOver());
    const int kind = round % 5;
    std::string raw;
    if (kind == 0) {  // random bytes
      raw = pattern(1 + rng() % 40000, rng());
    } else if (kind == 1) {  // a header promising too much
      raw = std::string("\x17\x03\x03", 3) + static_cast<char>(0x41 + rng() % 0xbe) + static_cast<char>(rng());
      raw += pattern(rng() % 100, rng());
    } else if (kind == 2) {  // a header with a wrong type or version, or too short for a tag
      const char headers[][5] = {{0x16, 3, 3, 0, 40}, {0x14, 3, 3, 0, 1}, {0x17, 3, 1, 0, 40}, {0x17, 3, 3, 0, 16},
                                 {0x15, 3, 3, 0, 2}};
      raw.assign(headers[rng() % 5], 5);
      raw += pattern(40, rng());
    }
    if (kind <= 2) {
      ASSERT_EQ(::send(p.peerFd, raw.data(), raw.size(), 0), static_cast<ssize_t>(raw.size()));
    } else {
      // A real record, one bit flipped (kind 3) or cut and followed by EOF (kind 4).
      const std::string m = pattern(1 + rng() % 3000, rng());
      ASSERT_EQ(SSL_write(p.client, m.data(), static_cast<int>(m.size())), static_cast<int>(m.size()));
      const unsigned where = rng(), bit = rng() % 8;
      p.relay([&](std::string& bytes) {
        if (kind == 3) bytes[where % bytes.size()] ^= static_cast<char>(1 << bit);
        else bytes.resize(where % bytes.size());
      });
    }
    ::shutdown(p.peerFd, SHUT_WR);  // so a record promising more than comes ends in EOF, not a wait
    std::vector<char> buf(kScratch);
    IoResult r;
    for (int turn = 0; turn < 100; ++turn) {
      r = p.records->read(p.serverFd, buf.data(), buf.size());
      if (r.status != IoStatus::kWantRead) break;
      pollfd pfd{p.serverFd, POLLIN, 0};
      ::poll(&pfd, 1, 1000);
    }
    // A bit flipped in the header's length can still be "EOF before the
    // record ended"; anything else is an error. Never data.
    EXPECT_TRUE(r.status == IoStatus::kError || r.status == IoStatus::kEof) << static_cast<int>(r.status);
    EXPECT_NE(r.status, IoStatus::kDone);
    if (kind == 4) {
      EXPECT_EQ(r.status, IoStatus::kEof);
    }
  }
}

}  // namespace
}  // namespace hv::proxy::test
