// TlsStore: the server certificates, one SSL_CTX per host, chosen by SNI.
//
// load() builds a complete new set and swaps it in under a mutex; a failed
// load keeps the old set. Connections already open keep the SSL_CTX they were
// made from (OpenSSL counts references), so a reload never drops them.
// newSsl() and the SNI callback run on the proxy's loop threads; load() on any.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"

namespace hv::proxy {

// A PEM certificate chain and key for one host: "chat.example.com",
// "*.example.com" (one label, as in certificates), or "" for the default
// certificate given to clients that send no or an unknown SNI name.
// With no "" entry the first certificate is the default.
struct Certificate {
  std::string host;
  std::string certFile;
  std::string keyFile;
};

class TlsStore {
 public:
  TlsStore() = default;
  TlsStore(const TlsStore&) = delete;
  TlsStore& operator=(const TlsStore&) = delete;

  // Before load(): SSLs are made trackable for TLS takeover (tls_records.h).
  void setTakeover(bool on) { takeover_ = on; }
  Status load(const std::vector<Certificate>& certificates);
  bool empty() const;
  // A server-side SSL for a new connection (SNI picks the context later);
  // nullptr when no certificate is loaded.
  SSL* newSsl() const;

 private:
  struct Set;
  std::shared_ptr<const Set> current() const;
  static int onServerName(SSL* ssl, int* alert, void* arg);

  mutable std::mutex mutex_;
  std::shared_ptr<const Set> set_;
  bool takeover_ = false;
};

}  // namespace hv::proxy
