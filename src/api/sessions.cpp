#include "api/sessions.h"

#include <algorithm>

namespace hv::api {

std::string SessionStore::open(Caller caller, TimePoint now) {
  if (sessions_.size() >= kMax) {
    std::erase_if(sessions_, [&](const auto& kv) { return now - kv.second.lastSeen >= kIdle; });
    if (sessions_.size() >= kMax) {
      auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](const auto& a, const auto& b) {
        return a.second.lastSeen < b.second.lastSeen;
      });
      sessions_.erase(oldest);
    }
  }
  std::string id = newToken();
  sessions_[hashToken(id)] = Session{std::move(caller), newToken(), now};
  return id;
}

Session* SessionStore::find(std::string_view id, TimePoint now) {
  if (id.size() != 64) return nullptr;
  auto it = sessions_.find(hashToken(id));
  if (it == sessions_.end()) return nullptr;
  if (now - it->second.lastSeen >= kIdle) {
    sessions_.erase(it);
    return nullptr;
  }
  it->second.lastSeen = now;
  return &it->second;
}

void SessionStore::close(std::string_view id) { sessions_.erase(hashToken(id)); }

void SessionStore::closeAccount(const std::string& account) {
  std::erase_if(sessions_, [&](const auto& kv) { return !kv.second.caller.admin && kv.second.caller.account == account; });
}

std::string_view cookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const size_t semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
  }
  return {};
}

}  // namespace hv::api
