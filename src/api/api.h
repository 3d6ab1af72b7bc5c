// Api: the REST endpoints of docs/api.md over the supervisor and the store.
//
// handle() is called on the control thread for every complete request; it
// answers through `respond`, at once or later (a stop answers once the
// process is gone). An account sees and touches only its own instances:
// anyone else's are "not found", so names do not leak.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <expected>
#include <functional>
#include <memory>
#include <unordered_map>
#include <optional>

#include "api/auth.h"
#include "api/sessions.h"
#include "os/cgroup.h"
#include "store/database.h"
#include "supervisor/supervisor.h"

namespace hv::api {

template <class T>
Status statusOf(const Result<T>& r) {
  if (r) return {};
  return std::unexpected(r.error());
}

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;
using Respond = std::function<void(Response)>;

class AuditLog;  // audit_log.h
class EventHub;  // event_stream.h
class StatsHistory;  // stats_history.h

struct ApiHooks {
  std::function<void(bool stopInstances)> shutdown;
  // What the sandbox enforces on this host, for GET /api/v1/doctor.
  std::function<std::vector<os::MechanismReport>()> mechanisms;
  const AuditLog* audit = nullptr;  // every change is recorded here
  // More Prometheus text for /metrics (the front proxy's counters).
  std::function<std::string()> extraMetrics;
  // The quotas of an account added without its own ([account_defaults]).
  store::AccountRecord accountDefaults;
  // [panel] host: a Host browser sessions accept besides addresses and localhost.
  std::string panelHost;
  const StatsHistory* history = nullptr;  // for GET /api/v1/instances/{name}/history
};

struct LogFollowTarget;  // log_stream.h

class Api {
 public:
  Api(supervisor::Supervisor& supervisor, store::Database& db, Authenticator auth, ApiHooks hooks);

  // `known`: the caller admit() found for this request, if it ran.
  void handle(const Request& req, const Peer& peer, Respond respond, const Caller* known = nullptr);

  // On the request head, before any body byte is read: the caller of a
  // request that needs one (/api/..., /metrics), or the refusal to send
  // (401/403, or 429 after too many failed sign-ins from the address).
  // nullopt caller: the request needs none (/healthz, unknown paths).
  std::expected<std::optional<Caller>, Response> admit(const Request& head, const Peer& peer);

  // For a WebSocket upgrade: which log the caller may follow, or why not
  // (an error response to send instead).
  std::expected<LogFollowTarget, Response> logFollowTarget(const Request& req, const Peer& peer);
  // For a WebSocket upgrade of /api/v1/events: the caller and its stream
  // slot (counted with the log follows), or the refusal.
  struct EventsTarget {
    Caller caller;
    std::shared_ptr<void> slot;
  };
  std::expected<EventsTarget, Response> eventsTarget(const Request& req, const Peer& peer);
  const std::shared_ptr<EventHub>& events() const { return events_; }
  // SupervisorOptions::onInstanceChanged.
  void instanceChanged(const std::string& name, const std::string& account);

  // For errors found before a request reaches handle() (parse errors, limits).
  static Response errorResponse(unsigned version, int status, std::string_view code,
                                std::string_view message);

 private:
  struct Call;

  Result<Caller> authenticate(const Request& req, const Peer& peer);
  // A browser's session cookie, with its checks: a Host that is this daemon's
  // (no DNS rebinding), an Origin that is the Host's, and for a state change
  // the session's CSRF token in X-CSRF-Token.
  Result<Caller> authenticateSession(const Request& req, std::string_view id);
  // /api/v1/session: sign in (POST, with a token), who am I (GET), sign out (DELETE).
  void handleSession(Call& call, const Peer& peer);
  void handleApi(Call& call, const Caller& caller);
  void handleInstance(Call& call, const Caller& caller, const std::string& name,
                      const std::string& action);
  void listInstances(Call& call, const Caller& caller);
  void createInstance(Call& call, const Caller& caller);
  void patchInstance(Call& call, const Caller& caller, const std::string& name);
  void answerInstance(Call& call, const Result<supervisor::InstanceStatus>& r, int status = 200);
  void answerSettled(Call& call, const std::string& name, Result<supervisor::InstanceStatus> r);
  void metrics(Call& call);
  void listFiles(Call& call, const Caller& caller);  // files.cpp
  // Accounts (account_handlers.cpp).
  void handleAccounts(Call& call, const Caller& caller, const std::string& name, const std::string& action);
  void createAccount(Call& call, const Caller& caller);
  void patchAccount(Call& call, const Caller& caller, const store::AccountRecord& account);
  void deleteAccount(Call& call, const Caller& caller, const std::string& name);
  void rotateToken(Call& call, const Caller& caller, store::AccountRecord account);
  void audit(const Caller& caller, std::string_view action, std::string_view target, const Status& outcome);
  Status checkRouteAllowed(const Caller& caller, const std::string& route);

  // Log follows (WebSocket streams): per account, and in all (the admin's count only there).
  static constexpr size_t kMaxFollowsPerAccount = 8;
  static constexpr size_t kMaxFollows = 64;
  Result<std::shared_ptr<void>> takeFollowSlot(const std::string& account);

  supervisor::Supervisor& supervisor_;
  store::Database& db_;
  Authenticator auth_;
  AuthThrottle throttle_;
  SessionStore sessions_;
  std::shared_ptr<EventHub> events_;
  ApiHooks hooks_;
  size_t listBytesHint_ = 0;  // size of the last list body, to reserve the next
  struct FollowCounts {
    size_t open = 0;
    std::unordered_map<std::string, size_t> byAccount;
  };
  // Shared with the slots: a stream may end after the Api is gone.
  std::shared_ptr<FollowCounts> follows_ = std::make_shared<FollowCounts>();
};

}  // namespace hv::api
