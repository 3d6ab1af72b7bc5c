#include "api/auth.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"

namespace hv::api {
namespace {

std::string hex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

bool equalConstantTime(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::string newToken() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return hex(bytes, sizeof bytes);
}

std::string hashToken(std::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(token.data(), token.size(), digest, &len, EVP_sha256(), nullptr);
  return hex(digest, len);
}

Result<std::string> loadOrCreateAdminToken(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd) {
    char buf[256];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) return failErrno("read " + path, errno);
    std::string token(buf, static_cast<size_t>(n));
    while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
    if (token.size() < 32)
      return fail(Errc::kInvalidArgument,
                  fmt::format("{} holds no valid token; delete it to make a new one", path));
    return token;
  }
  if (errno != ENOENT) return failErrno("open " + path, errno);
  std::string token = newToken();
  const std::string tmp = path + ".tmp";
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!out) return failErrno("create " + tmp, errno);
  const std::string line = token + "\n";
  if (::write(out.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
      ::fsync(out.get()) != 0)
    return failErrno("write " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return failErrno("rename " + tmp, errno);
  return token;
}

Result<Caller> Authenticator::identify(const Peer& peer,
                                       const std::vector<store::AccountRecord>& accounts) const {
  // On the unix socket a token, when given, speaks for the caller
  // (HOSTVISOR_TOKEN); without one the kernel-reported uid does.
  if (peer.viaUnixSocket && peer.authorization.empty()) {
    const std::string who = fmt::format("uid {}", peer.uid);
    if (peer.uid == 0 || peer.uid == daemonUid_) return Caller{true, defaultAccount_, who};
    for (const auto& a : accounts) {
      if (a.uid == peer.uid) return Caller{false, a.name, who};
    }
    return fail(Errc::kForbidden,
                fmt::format("uid {} has no hostvisor account; ask the admin to add one", peer.uid));
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (!peer.authorization.starts_with(kBearer))
    return fail(Errc::kUnauthorized, "missing 'Authorization: Bearer TOKEN' header");
  const std::string hash = hashToken(std::string_view(peer.authorization).substr(kBearer.size()));
  if (equalConstantTime(hash, adminHash_)) return Caller{true, defaultAccount_, "admin token"};
  for (const auto& a : accounts) {
    if (!a.tokenHash.empty() && equalConstantTime(hash, a.tokenHash))
      return Caller{false, a.name, "token of account " + a.name};
  }
  return fail(Errc::kUnauthorized, "invalid API token");
}

int64_t AuthThrottle::blockedFor(const std::string& address, TimePoint now) {
  auto it = entries_.find(address);
  if (it == entries_.end()) return 0;
  if (now - it->second.since >= kWindow) {
    entries_.erase(it);
    return 0;
  }
  if (it->second.failures < kMaxFailures) return 0;
  return std::chrono::ceil<std::chrono::seconds>(it->second.since + kWindow - now).count();
}

void AuthThrottle::failed(const std::string& address, TimePoint now) {
  if (entries_.size() > 100'000) std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.since >= kWindow; });
  Entry& e = entries_[address];
  if (e.failures == 0 || now - e.since >= kWindow) e = Entry{now, 0};
  ++e.failures;
  if (e.failures == 1 || e.failures == kMaxFailures)
    spdlog::warn("api: failed sign-in from {} ({} in the last {} s{})", address, e.failures, kWindow.count(),
                 e.failures == kMaxFailures ? "; refusing it until the minute is over" : "");
}

}  // namespace hv::api
