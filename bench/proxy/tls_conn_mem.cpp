// tls_conn_mem: heap OpenSSL keeps per idle server-side TLS connection, with the
// SSL_CTX options of src/proxy/tls_store.cpp, by OpenSSL call site, under variants.
// (docs/benchmarks.md, Proxy, "Where the proxy's time goes", item 4.)
//
//   g++ -std=c++20 -O2 -o tls_conn_mem bench/proxy/tls_conn_mem.cpp -lssl -lcrypto
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1
//       -subj /CN=bench.test -keyout key.pem -out cert.pem          (one line)
//   ./tls_conn_mem cert.pem key.pem [VARIANT...]
// VARIANT: base, notickets (SSL_CTX_set_num_tickets 0), noticketop (SSL_OP_NO_TICKET),
// freebuf (SSL_free_buffers), tls12, aes128, chacha; joined with '+' to combine.
//
// Each connection: TLS handshake with an OpenSSL client over memory BIOs, one small
// request and answer (the upgrade and its 101), then the client is freed and the server
// SSL gets null BIOs: what stays is what an idle tunnel's SSL holds. Allocations made
// through OpenSSL's allocator are tracked (CRYPTO_set_mem_functions) while 2,000 such
// connections are made after a warm-up; the live ones are summed per call site.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct Site {
  size_t bytes;
  std::string where;
};
std::unordered_map<void*, Site>* g_live;
bool g_tracking = false;

std::string where(const char* file, int line) { return std::string(file ? file : "?") + ":" + std::to_string(line); }
void* trackMalloc(size_t n, const char* f, int l) {
  void* p = std::malloc(n);
  if (g_tracking && p) (*g_live)[p] = {n, where(f, l)};
  return p;
}
void* trackRealloc(void* q, size_t n, const char* f, int l) {
  if (g_tracking && q) g_live->erase(q);
  void* p = std::realloc(q, n);
  if (g_tracking && p) (*g_live)[p] = {n, where(f, l)};
  return p;
}
void trackFree(void* p, const char*, int) {
  if (g_tracking && p) g_live->erase(p);
  std::free(p);
}

void pump(SSL* from, SSL* to) {
  char buf[65536];
  int n;
  while ((n = BIO_read(SSL_get_wbio(from), buf, sizeof buf)) > 0) BIO_write(SSL_get_rbio(to), buf, n);
}

bool has(const std::string& variant, const char* what) { return variant.find(what) != std::string::npos; }

void run(const char* cert, const char* key, const std::string& variant) {
  constexpr int kConns = 2000;
  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);
  SSL_CTX_set_options(sctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(sctx, cert) != 1 || SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1) {
    std::fprintf(stderr, "cannot load %s / %s\n", cert, key);
    std::exit(1);
  }
  if (has(variant, "notickets")) SSL_CTX_set_num_tickets(sctx, 0);
  if (has(variant, "noticketop")) SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
  if (has(variant, "tls12")) SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION);
  if (has(variant, "aes128")) SSL_CTX_set_ciphersuites(sctx, "TLS_AES_128_GCM_SHA256");
  if (has(variant, "chacha")) SSL_CTX_set_ciphersuites(sctx, "TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  std::vector<SSL*> servers;
  const char* version = "?";
  for (int round = 0; round < 2; ++round) {
    if (round == 1) {
      g_live->clear();
      g_tracking = true;
    }
    for (int i = 0; i < (round == 0 ? 16 : kConns); ++i) {
      SSL* s = SSL_new(sctx);
      SSL* c = SSL_new(cctx);
      SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
      SSL_set_bio(c, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
      SSL_set_accept_state(s);
      SSL_set_connect_state(c);
      SSL_set_tlsext_host_name(c, "bench.test");
      for (int k = 0; k < 10; ++k) {
        SSL_do_handshake(c);
        pump(c, s);
        SSL_do_handshake(s);
        pump(s, c);
      }
      char buf[512];
      SSL_write(c, "GET / HTTP/1.1\r\n\r\n", 18);
      pump(c, s);
      SSL_read(s, buf, sizeof buf);
      SSL_write(s, "HTTP/1.1 101 x\r\n\r\n", 18);
      pump(s, c);
      SSL_read(c, buf, sizeof buf);
      SSL_free(c);
      SSL_set_bio(s, BIO_new(BIO_s_null()), BIO_new(BIO_s_null()));  // the socket BIO's stand-in
      if (has(variant, "freebuf")) SSL_free_buffers(s);
      version = SSL_get_version(s);
      servers.push_back(s);
    }
  }
  g_tracking = false;
  std::map<std::string, size_t> bySite;
  size_t total = 0;
  for (const auto& [p, site] : *g_live) {
    bySite[site.where] += site.bytes;
    total += site.bytes;
  }
  std::vector<std::pair<size_t, std::string>> top;
  for (const auto& [w, n] : bySite) top.emplace_back(n, w);
  std::sort(top.rbegin(), top.rend());
  std::printf("%-20s %s: %6.0f bytes held by OpenSSL per idle server connection\n", variant.c_str(), version,
              double(total) / kConns);
  for (size_t i = 0; i < top.size() && i < 12; ++i)
    std::printf("    %6.0f  %s\n", double(top[i].first) / kConns, top[i].second.c_str());
  for (SSL* s : servers) SSL_free(s);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: tls_conn_mem CERT.pem KEY.pem [VARIANT...]\n");
    return 2;
  }
  g_live = new std::unordered_map<void*, Site>();
  if (!CRYPTO_set_mem_functions(trackMalloc, trackRealloc, trackFree)) {
    std::fprintf(stderr, "CRYPTO_set_mem_functions failed (allocations made before main?)\n");
    return 1;
  }
  std::vector<std::string> variants(argv + 3, argv + argc);
  if (variants.empty()) variants = {"base", "notickets", "notickets+noticketop", "freebuf", "aes128", "chacha", "tls12"};
  for (const auto& v : variants) run(argv[1], argv[2], v);
  return 0;
}
