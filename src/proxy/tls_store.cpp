#include "proxy/tls_store.h"

#include "proxy/tls_records.h"

#include <fmt/format.h>
#include <openssl/err.h>

#include <algorithm>
#include <cctype>

namespace hv::proxy {

namespace {

std::string sslError() {
  const unsigned long err = ERR_get_error();
  ERR_clear_error();
  if (err == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(err, buf, sizeof buf);
  return buf;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

struct TlsStore::Set {
  std::vector<std::pair<std::string, SSL_CTX*>> byHost;  // lowercase host → context
  SSL_CTX* fallback = nullptr;

  ~Set() {
    for (auto& [_, ctx] : byHost) SSL_CTX_free(ctx);
  }
  SSL_CTX* find(std::string_view name) const {
    for (const auto& [host, ctx] : byHost)
      if (host == name) return ctx;
    if (const size_t dot = name.find('.'); dot != std::string_view::npos) {
      const std::string wildcard = "*" + std::string(name.substr(dot));
      for (const auto& [host, ctx] : byHost)
        if (host == wildcard) return ctx;
    }
    return nullptr;
  }
};

namespace {

Result<SSL_CTX*> makeContext(const Certificate& c, int (*onName)(SSL*, int*, void*), void* arg, bool takeover) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return fail(Errc::kInternal, "SSL_CTX_new: " + sslError());
  auto bad = [&](std::string what) {
    std::string msg = fmt::format("certificate for '{}': {}: {}", c.host, what, sslError());
    SSL_CTX_free(ctx);
    return fail(Errc::kInvalidArgument, std::move(msg));
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
  // RELEASE_BUFFERS: an idle connection frees its record buffers (the wss
  // memory target); the other two let a write resume from a moved buffer.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read-ahead: one read(2) per record (or several) instead of one for the
  // 5-byte header and one for the rest. The read buffer is still released
  // once empty (RELEASE_BUFFERS), so an idle connection keeps none.
  SSL_CTX_set_read_ahead(ctx, 1);
  if (SSL_CTX_use_certificate_chain_file(ctx, c.certFile.c_str()) != 1) return bad("cannot use " + c.certFile);
  if (SSL_CTX_use_PrivateKey_file(ctx, c.keyFile.c_str(), SSL_FILETYPE_PEM) != 1) return bad("cannot use " + c.keyFile);
  if (SSL_CTX_check_private_key(ctx) != 1) return bad("the key does not match the certificate");
  SSL_CTX_set_tlsext_servername_callback(ctx, onName);
  SSL_CTX_set_tlsext_servername_arg(ctx, arg);
  if (takeover) installTlsTakeover(ctx);
  return ctx;
}

}  // namespace

Status TlsStore::load(const std::vector<Certificate>& certificates) {
  if (certificates.empty()) return fail(Errc::kInvalidArgument, "TLS needs at least one certificate");
  auto set = std::make_shared<Set>();
  for (const Certificate& c : certificates) {
    auto ctx = makeContext(c, &TlsStore::onServerName, this, takeover_);
    if (!ctx) return std::unexpected(ctx.error());
    set->byHost.emplace_back(lower(c.host), *ctx);
    if (c.host.empty() && !set->fallback) set->fallback = *ctx;
  }
  if (!set->fallback) set->fallback = set->byHost.front().second;
  std::lock_guard lock(mutex_);
  set_ = std::move(set);
  return {};
}

bool TlsStore::empty() const { return current() == nullptr; }

std::shared_ptr<const TlsStore::Set> TlsStore::current() const {
  std::lock_guard lock(mutex_);
  return set_;
}

SSL* TlsStore::newSsl() const {
  auto set = current();
  if (!set) return nullptr;
  SSL* ssl = SSL_new(set->fallback);
  if (!ssl) return nullptr;
  SSL_set_accept_state(ssl);
  if (takeover_) trackForTakeover(ssl);
  return ssl;
}

int TlsStore::onServerName(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;  // keep the default certificate
  auto set = static_cast<TlsStore*>(arg)->current();
  if (!set) return SSL_TLSEXT_ERR_OK;
  if (SSL_CTX* ctx = set->find(lower(name)); ctx && ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace hv::proxy
