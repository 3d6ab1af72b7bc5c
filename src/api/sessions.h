// Sessions: the panel's sign-ins. A browser trades an account token once
// (POST /api/v1/session) for a session: a random id in an HttpOnly,
// SameSite=Strict cookie, and a CSRF token the page sends back in
// X-CSRF-Token with every state change. The token itself is never kept by the
// browser. A session ends at sign-out, after kIdle without a request, or when
// kMax are open and it is the least recently used. In memory only: a daemon
// restart signs everybody out. Control thread only.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>

#include "api/auth.h"

namespace hv::api {

constexpr std::string_view kSessionCookie = "hv_session";

struct Session {
  Caller caller;
  std::string csrf;  // 64 hex chars
  std::chrono::steady_clock::time_point lastSeen;
};

class SessionStore {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  static constexpr std::chrono::minutes kIdle{30};
  static constexpr size_t kMax = 4096;

  // A new session for `caller`; returns its id (the cookie's value).
  std::string open(Caller caller, TimePoint now);
  // The live session of `id` (its idle clock restarted), or nullptr.
  Session* find(std::string_view id, TimePoint now);
  void close(std::string_view id);
  // Sessions of an account whose token was rotated or which was deleted.
  void closeAccount(const std::string& account);
  size_t size() const { return sessions_.size(); }

 private:
  // Keyed by the SHA-256 of the id: a timing side channel in the map's
  // comparisons tells nothing about a live id.
  std::unordered_map<std::string, Session> sessions_;
};

// The value of cookie `name` in a Cookie header ("" if absent).
std::string_view cookieValue(std::string_view header, std::string_view name);

}  // namespace hv::api
