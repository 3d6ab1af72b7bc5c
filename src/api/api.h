// Api: the REST endpoints of docs/api.md over the supervisor and the store.
//
// handle() is called on the control thread for every complete request; it
// answers through `respond`, at once or later (a stop answers once the
// process is gone). An account sees and touches only its own instances:
// anyone else's are "not found", so names do not leak.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>

#include "api/auth.h"
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

struct ApiHooks {
  std::function<void(bool stopInstances)> shutdown;
  // What the sandbox enforces on this host, for GET /api/v1/doctor.
  std::function<std::vector<os::MechanismReport>()> mechanisms;
  const AuditLog* audit = nullptr;  // every change is recorded here
  // More Prometheus text for /metrics (the front proxy's counters).
  std::function<std::string()> extraMetrics;
};

struct LogFollowTarget;  // log_stream.h

class Api {
 public:
  Api(supervisor::Supervisor& supervisor, store::Database& db, Authenticator auth, ApiHooks hooks)
      : supervisor_(supervisor), db_(db), auth_(std::move(auth)), hooks_(std::move(hooks)) {}

  void handle(const Request& req, const Peer& peer, Respond respond);

  // For a WebSocket upgrade: which log the caller may follow, or why not
  // (an error response to send instead).
  std::expected<LogFollowTarget, Response> logFollowTarget(const Request& req, const Peer& peer);

  // For errors found before a request reaches handle() (parse errors, limits).
  static Response errorResponse(unsigned version, int status, std::string_view code,
                                std::string_view message);

 private:
  struct Call;

  Result<Caller> authenticate(const Request& req, const Peer& peer);
  void handleApi(Call& call, const Caller& caller);
  void handleInstance(Call& call, const Caller& caller, const std::string& name,
                      const std::string& action);
  void listInstances(Call& call, const Caller& caller);
  void createInstance(Call& call, const Caller& caller);
  void patchInstance(Call& call, const Caller& caller, const std::string& name);
  void answerInstance(Call& call, const Result<supervisor::InstanceStatus>& r, int status = 200);
  void answerSettled(Call& call, const std::string& name, Result<supervisor::InstanceStatus> r);
  void metrics(Call& call);
  // Accounts (account_handlers.cpp).
  void handleAccounts(Call& call, const Caller& caller, const std::string& name, const std::string& action);
  void createAccount(Call& call, const Caller& caller);
  void patchAccount(Call& call, const Caller& caller, const store::AccountRecord& account);
  void deleteAccount(Call& call, const Caller& caller, const std::string& name);
  void rotateToken(Call& call, const Caller& caller, store::AccountRecord account);
  void audit(const Caller& caller, std::string_view action, std::string_view target, const Status& outcome);

  supervisor::Supervisor& supervisor_;
  store::Database& db_;
  Authenticator auth_;
  ApiHooks hooks_;
  size_t listBytesHint_ = 0;  // size of the last list body, to reserve the next
};

}  // namespace hv::api
