// CPU per wss message on the server side, OpenSSL's SSL against TLS takeover
// (src/proxy/tls_records.h), without the noise of a shared machine's other
// processes: one thread, one socketpair, an OpenSSL client on the other end.
// Each round trip: the client writes one record of SIZE bytes, the server
// reads it and writes it back, the client reads it. The client's cost is the
// same in both modes, so the difference of the thread's CPU time per round
// trip is the difference of the server sides. Modes alternate (A B A B ...)
// so drift hits both.
//
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=t \
//     -keyout /tmp/t.key -out /tmp/t.crt -days 1
//   g++ -std=c++23 -O2 -Isrc bench/proxy/tls_records_cpu.cpp src/proxy/tls_records.cpp -lssl -lcrypto \
//     -o build/tls_records_cpu
//   build/tls_records_cpu /tmp/t.crt /tmp/t.key [SIZE=64] [ROUND_TRIPS=100000] [PAIRS=5]
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "proxy/tls_records.h"

using hv::proxy::IoStatus;
using hv::proxy::TlsRecords;

namespace {

double threadCpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

bool handshake(SSL* c, SSL* s) {
  for (int i = 0; i < 1000; ++i) {
    const int a = SSL_do_handshake(c), b = SSL_do_handshake(s);
    if (a == 1 && b == 1) return true;
  }
  return false;
}

// Seconds of thread CPU per round trip, or a negative number on failure.
double run(SSL_CTX* sctx, SSL_CTX* cctx, bool takeover, size_t size, int trips) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) return -1;
  SSL* s = SSL_new(sctx);
  SSL* c = SSL_new(cctx);
  hv::proxy::trackForTakeover(s);
  SSL_set_fd(s, fds[0]);
  SSL_set_fd(c, fds[1]);
  SSL_set_accept_state(s);
  SSL_set_connect_state(c);
  double result = -1;
  std::unique_ptr<TlsRecords> records;
  if (handshake(c, s)) {
    if (takeover) {
      records = TlsRecords::takeOver(s);
      if (records) SSL_free(std::exchange(s, nullptr));
    }
    if (!takeover || records) {
      std::string msg(size, 'x');
      std::vector<char> buf(64 * 1024);
      const double start = threadCpu();
      bool ok = true;
      for (int i = 0; i < trips && ok; ++i) {
        ok = SSL_write(c, msg.data(), static_cast<int>(size)) == static_cast<int>(size);
        size_t got = 0;
        while (ok && got < size) {  // the record is already in the socket: no wait
          if (records) {
            const auto r = records->read(fds[0], buf.data(), buf.size());
            ok = r.status == IoStatus::kDone;
            got += r.bytes;
          } else {
            const int n = SSL_read(s, buf.data(), static_cast<int>(buf.size()));
            ok = n > 0;
            got += n > 0 ? n : 0;
          }
        }
        if (ok) {
          ok = records ? records->write(fds[0], buf.data(), size).status == IoStatus::kDone
                       : SSL_write(s, buf.data(), static_cast<int>(size)) == static_cast<int>(size);
        }
        got = 0;
        while (ok && got < size) {
          const int n = SSL_read(c, buf.data(), static_cast<int>(buf.size()));
          ok = n > 0;
          got += n > 0 ? n : 0;
        }
      }
      if (ok) result = (threadCpu() - start) / trips;
    }
  }
  if (s) SSL_free(s);
  SSL_free(c);
  records.reset();
  close(fds[0]);
  close(fds[1]);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CERT KEY [SIZE] [ROUND_TRIPS] [PAIRS]\n", argv[0]);
    return 2;
  }
  const size_t size = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 64;
  const int trips = argc > 4 ? std::atoi(argv[4]) : 100000;
  const int pairs = argc > 5 ? std::atoi(argv[5]) : 5;
  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  // The proxy's options (tls_store.cpp) that matter per record.
  SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(sctx, 1);
  if (SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
      SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1) {
    std::fprintf(stderr, "cannot load %s / %s\n", argv[1], argv[2]);
    return 1;
  }
  hv::proxy::installTlsTakeover(sctx);
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  std::vector<double> ssl, own;
  for (int p = 0; p < pairs; ++p) {
    ssl.push_back(run(sctx, cctx, false, size, trips));
    own.push_back(run(sctx, cctx, true, size, trips));
    if (ssl.back() < 0 || own.back() < 0) {
      std::fprintf(stderr, "a run failed\n");
      return 1;
    }
  }
  std::sort(ssl.begin(), ssl.end());
  std::sort(own.begin(), own.end());
  const double a = ssl[ssl.size() / 2] * 1e6, b = own[own.size() / 2] * 1e6;
  std::printf("%zu B messages, %d round trips x %d pairs, thread CPU per round trip (median):\n", size, trips, pairs);
  std::printf("  SSL kept:    %.3f us\n  takeover:    %.3f us\n  difference:  %+.3f us (server side: read + write)\n",
              a, b, b - a);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
  return 0;
}
