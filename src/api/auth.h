// Auth: API tokens and who a caller is.
//
// Tokens are 32 random bytes in hex; the daemon stores only their SHA-256.
// On TCP a caller proves itself with "Authorization: Bearer TOKEN"; on the
// unix socket a token may be given too, else the kernel tells its uid (SO_PEERCRED). Root and the daemon's
// own user are admin; any other uid is the account mapped to it.
// Called on the control thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include "base/result.h"
#include "store/records.h"

namespace hv::api {

struct Caller {
  bool admin = false;
  std::string account;  // the caller's own account ("" for an admin with none)
  std::string who;      // how it proved itself, for the audit log: "uid 1001", "admin token"
  bool owns(const std::string& acc) const { return admin || acc == account; }
};

struct Peer {
  bool viaUnixSocket = false;
  uid_t uid = 0;                   // unix socket only
  std::string address;             // TCP only: the client's IPv4 address or IPv6 /64
  std::string authorization;       // the Authorization header, if any
};

// Failed sign-ins per client address (TCP): each is logged, and an address
// with kMaxFailures in kWindow is refused (429) until the window passes, so
// a token is not guessed at the speed of the loop. Control thread only.
class AuthThrottle {
 public:
  static constexpr int kMaxFailures = 20;
  static constexpr std::chrono::seconds kWindow{60};
  using TimePoint = std::chrono::steady_clock::time_point;

  // Seconds until `address` may try again; 0 = now.
  int64_t blockedFor(const std::string& address, TimePoint now);
  void failed(const std::string& address, TimePoint now);

 private:
  struct Entry {
    TimePoint since;
    int failures = 0;
  };
  std::unordered_map<std::string, Entry> entries_;
};

std::string newToken();                        // 64 hex chars from getrandom(2)
std::string hashToken(std::string_view token); // hex SHA-256

// Reads DATA_DIR/admin.token, or creates it (mode 0600) with a new token.
Result<std::string> loadOrCreateAdminToken(const std::string& path);

class Authenticator {
 public:
  Authenticator(std::string adminTokenHash, uid_t daemonUid, std::string defaultAccount)
      : adminHash_(std::move(adminTokenHash)), daemonUid_(daemonUid),
        defaultAccount_(std::move(defaultAccount)) {}
  // kUnauthorized (no/bad token) or kForbidden (uid with no account).
  Result<Caller> identify(const Peer& peer, const std::vector<store::AccountRecord>& accounts) const;

 private:
  std::string adminHash_;
  uid_t daemonUid_;
  std::string defaultAccount_;
};

}  // namespace hv::api
