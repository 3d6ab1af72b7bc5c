#include "api/api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <openssl/crypto.h>

#include "api/api_call.h"
#include "api/audit_log.h"
#include "api/event_stream.h"
#include "api/instance_json.h"
#include "api/log_stream.h"
#include "api/metrics.h"
#include "api/panel.h"
#include "api/stats_history.h"
#include "api/wire/wire.h"
#include "base/strings.h"
#include "supervisor/validation.h"

namespace hv::api {

namespace http = boost::beast::http;
namespace json = boost::json;
using supervisor::InstanceStatus;

Response Api::errorResponse(unsigned version, int status, std::string_view code,
                            std::string_view message) {
  Response res{static_cast<http::status>(status), version};
  res.set(http::field::server, "hostvisor");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(false);
  res.body() = wire::errorBody(code, message) + "\n";
  res.prepare_payload();
  return res;
}

Api::Api(supervisor::Supervisor& supervisor, store::Database& db, Authenticator auth, ApiHooks hooks)
    : supervisor_(supervisor), db_(db), auth_(std::move(auth)), events_(std::make_shared<EventHub>(supervisor)),
      hooks_(std::move(hooks)) {}

void Api::instanceChanged(const std::string& name, const std::string& account) { events_->changed(name, account); }

std::expected<std::optional<Caller>, Response> Api::admit(const Request& head, const Peer& peer) {
  const std::string_view target = head.target();
  const std::string_view path = target.substr(0, target.find('?'));
  if (!path.starts_with("/api/") && path != "/metrics") return std::nullopt;
  if (path == "/api/v1/session" && head.method() == http::verb::post) return std::nullopt;  // signs in: a token in the body
  auto caller = authenticate(head, peer);
  if (caller) return std::optional<Caller>(std::move(*caller));
  Response res = errorResponse(head.version(), wire::httpStatusOf(caller.error().code), errcName(caller.error().code),
                               caller.error().message);
  if (caller.error().code == Errc::kExhausted) res.result(http::status::too_many_requests);
  return std::unexpected(std::move(res));
}

void Api::handle(const Request& req, const Peer& peer, Respond respond, const Caller* known) {
  Call call{req, std::move(respond), {}, {}};
  auto url = boost::urls::parse_origin_form(req.target());
  if (!url) return call.sendError(400, "invalid_argument", "the request target is not a valid path");
  for (auto seg : url->segments()) call.segments.push_back(seg);
  for (auto param : url->params()) call.query[param.key] = param.has_value ? param.value : "";
  const auto& seg = call.segments;

  if (seg == std::vector<std::string>{"healthz"}) {
    if (req.method() != http::verb::get && req.method() != http::verb::head)
      return call.sendError(405, "method_not_allowed", "use GET /healthz");
    return call.send(200, "ok\n", "text/plain");
  }
  const bool isMetrics = seg == std::vector<std::string>{"metrics"};
  if (!isMetrics && (seg.size() < 2 || seg[0] != "api" || seg[1] != "v1")) {
    if (auto page = servePanel(req)) return call.respond(std::move(*page));
    return call.sendError(404, "not_found", fmt::format("no such endpoint: {}", req.target()));
  }
  if (seg == std::vector<std::string>{"api", "v1", "session"}) return handleSession(call, peer);

  auto caller = known ? Result<Caller>(*known) : authenticate(req, peer);
  if (!caller) return call.sendError(caller.error());
  if (isMetrics) {
    if (!caller->admin) return call.sendError(403, "forbidden", "/metrics is for the admin");
    return metrics(call);
  }
  handleApi(call, *caller);
}

Result<Caller> Api::authenticate(const Request& req, const Peer& peer) {
  const auto now = std::chrono::steady_clock::now();
  if (!peer.address.empty()) {
    if (const int64_t wait = throttle_.blockedFor(peer.address, now))
      return fail(Errc::kExhausted, fmt::format("too many failed sign-ins from your address; try again in {} s", wait));
  }
  Peer who = peer;
  who.authorization = std::string(req[http::field::authorization]);
  if (who.authorization.empty() && !peer.viaUnixSocket) {
    const std::string_view id = cookieValue(req[http::field::cookie], kSessionCookie);
    if (!id.empty()) return authenticateSession(req, id);
  }
  auto accounts = db_.listAccounts();
  if (!accounts) return std::unexpected(accounts.error());
  auto caller = auth_.identify(who, *accounts);
  if (!caller && caller.error().code == Errc::kUnauthorized && !who.authorization.empty())
    throttle_.failed(peer.address.empty() ? "the unix socket" : peer.address, now);
  return caller;
}

std::expected<LogFollowTarget, Response> Api::logFollowTarget(const Request& req, const Peer& peer) {
  auto refuse = [&](int status, std::string_view code, std::string_view message) {
    return std::unexpected(errorResponse(req.version(), status, code, message));
  };
  auto url = boost::urls::parse_origin_form(req.target());
  if (!url) return refuse(400, "invalid_argument", "the request target is not a valid path");
  std::vector<std::string> seg;
  for (auto s : url->segments()) seg.push_back(s);
  if (seg.size() != 5 || seg[0] != "api" || seg[1] != "v1" || seg[2] != "instances" || seg[4] != "logs")
    return refuse(404, "not_found", "WebSocket upgrades are served on /api/v1/instances/{name}/logs only");
  auto caller = authenticate(req, peer);
  if (!caller)
    return refuse(caller.error().code == Errc::kExhausted ? 429 : wire::httpStatusOf(caller.error().code),
                  errcName(caller.error().code), caller.error().message);
  auto found = supervisor_.get(seg[3]);
  if (!found || !caller->owns(found->spec.account))
    return refuse(404, "not_found", fmt::format("no instance named '{}'", seg[3]));
  auto slot = takeFollowSlot(caller->admin ? std::string() : caller->account);
  if (!slot) return refuse(429, "exhausted", slot.error().message);
  LogFollowTarget target{&supervisor_.logs(),
                         [sup = &supervisor_, name = std::string(seg[3]), serial = supervisor_.serialOf(seg[3])] {
                           return sup->serialOf(name) == serial;
                         },
                         seg[3], 100, std::move(*slot)};
  if (auto n = url->params().find("n"); n != url->params().end()) {
    long long lines = 0;
    if (!(*n).has_value || !parseInt((*n).value, 0, 1'000'000, &lines))
      return refuse(400, "invalid_argument", "n must be a whole number from 0 to 1000000");
    target.lines = static_cast<int>(lines);
  }
  return target;
}

Result<std::shared_ptr<void>> Api::takeFollowSlot(const std::string& account) {
  // Each follow holds an inotify instance of the daemon's user (the host's
  // limit is often 128) and a socket: capped per account and in all.
  FollowCounts& counts = *follows_;
  if (counts.open >= kMaxFollows)
    return fail(Errc::kExhausted, fmt::format("the daemon already streams {} logs; try again later", kMaxFollows));
  size_t& mine = counts.byAccount[account];
  if (!account.empty() && mine >= kMaxFollowsPerAccount)
    return fail(Errc::kExhausted, fmt::format("account '{}' already follows {} logs; close one first", account,
                                              kMaxFollowsPerAccount));
  ++mine;
  ++counts.open;
  return std::shared_ptr<void>(nullptr, [counts = follows_, account](void*) {
    --counts->open;
    if (--counts->byAccount[account] == 0) counts->byAccount.erase(account);
  });
}

namespace {

// Browsers reach the daemon by an address, "localhost" or the [panel] host
// (through the front proxy): a Host naming
// anything else is a page on some other name that resolves here (DNS
// rebinding), which must not ride on the session cookie.
bool hostIsOurs(std::string_view host, std::string_view panelHost) {
  if (host.empty()) return false;
  std::string_view name = host;
  if (!panelHost.empty() && boost::beast::iequals(name.substr(0, name.find(':')), panelHost)) return true;
  if (name.front() == '[') {
    const size_t end = name.find(']');
    if (end == std::string_view::npos) return false;
    boost::system::error_code ec;
    (void)boost::asio::ip::make_address_v6(name.substr(1, end - 1), ec);
    return !ec;
  }
  name = name.substr(0, name.find(':'));
  if (name == "localhost") return true;
  boost::system::error_code ec;
  (void)boost::asio::ip::make_address_v4(name, ec);
  return !ec;
}

bool isSafeMethod(http::verb m) { return m == http::verb::get || m == http::verb::head; }

}  // namespace

Result<Caller> Api::authenticateSession(const Request& req, std::string_view id) {
  Session* session = sessions_.find(id, std::chrono::steady_clock::now());
  if (!session) return fail(Errc::kUnauthorized, "your session has ended: sign in again");
  const std::string_view host = req[http::field::host];
  if (!hostIsOurs(host, hooks_.panelHost))
    return fail(Errc::kForbidden, fmt::format("Host '{}' is not this daemon's address", host));
  const bool upgrade = boost::beast::websocket::is_upgrade(req);
  const std::string_view origin = req[http::field::origin];
  if ((upgrade || !isSafeMethod(req.method()) || !origin.empty()) && origin != fmt::format("http://{}", host) &&
      origin != fmt::format("https://{}", host))
    return fail(Errc::kForbidden, fmt::format("a request from the page of another origin ('{}') is refused", origin));
  if (!isSafeMethod(req.method()) && !upgrade) {
    const std::string_view csrf = req["X-CSRF-Token"];
    if (csrf.size() != session->csrf.size() || CRYPTO_memcmp(csrf.data(), session->csrf.data(), csrf.size()) != 0)
      return fail(Errc::kForbidden, "missing or wrong X-CSRF-Token: reload the page");
  }
  return session->caller;
}

void Api::handleSession(Call& call, const Peer& peer) {
  const auto method = call.req.method();
  auto answer = [&](int status, const Caller& caller, const std::string& csrf) {
    call.sendJson(status, json::object{{"account", caller.account}, {"admin", caller.admin}, {"csrf", csrf}});
  };
  if (method == http::verb::post) {
    const auto now = std::chrono::steady_clock::now();
    const std::string_view origin = call.req[http::field::origin];
    const std::string_view host = call.req[http::field::host];
    if (!hostIsOurs(host, hooks_.panelHost)) return call.sendError(403, "forbidden", fmt::format("Host '{}' is not this daemon's address", host));
    if (!origin.empty() && origin != fmt::format("http://{}", host) && origin != fmt::format("https://{}", host))
      return call.sendError(403, "forbidden", fmt::format("a sign-in from another origin ('{}') is refused", origin));
    if (!peer.address.empty()) {
      if (const int64_t wait = throttle_.blockedFor(peer.address, now))
        return call.sendError(429, "exhausted", fmt::format("too many failed sign-ins from your address; try again in {} s", wait));
    }
    auto body = parseObject(call.req.body());
    if (!body) return call.sendError(body.error());
    const auto* token = body->if_contains("token");
    if (!token || !token->is_string() || token->as_string().empty())
      return call.sendError(400, "invalid_argument", "field 'token' is required: the account's API token");
    auto accounts = db_.listAccounts();
    if (!accounts) return call.sendError(accounts.error());
    Peer who;
    who.authorization = "Bearer " + std::string(token->as_string());
    auto caller = auth_.identify(who, *accounts);
    if (!caller) {
      throttle_.failed(peer.address.empty() ? "the unix socket" : peer.address, now);
      return call.sendError(401, "unauthorized", "wrong token");
    }
    const std::string id = sessions_.open(*caller, now);
    const Session* session = sessions_.find(id, now);
    const bool tls = call.req["X-Forwarded-Proto"] == "https";
    Response res{http::status::created, call.req.version()};
    res.set(http::field::server, "hostvisor");
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.set(http::field::set_cookie, fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict{}", kSessionCookie, id,
                                                 tls ? "; Secure" : ""));
    res.body() = json::serialize(json::object{{"account", caller->account}, {"admin", caller->admin},
                                              {"csrf", session->csrf}}) + "\n";
    res.keep_alive(call.req.keep_alive());
    res.prepare_payload();
    return call.respond(std::move(res));
  }
  const std::string_view id = cookieValue(call.req[http::field::cookie], kSessionCookie);
  auto caller = id.empty() ? Result<Caller>(fail(Errc::kUnauthorized, "not signed in")) : authenticateSession(call.req, id);
  if (!caller) return call.sendError(caller.error());
  if (method == http::verb::get) return answer(200, *caller, sessions_.find(id, std::chrono::steady_clock::now())->csrf);
  if (method != http::verb::delete_) return call.sendError(405, "method_not_allowed", "use POST, GET or DELETE");
  sessions_.close(id);
  Response res{http::status::ok, call.req.version()};
  res.set(http::field::server, "hostvisor");
  res.set(http::field::content_type, "application/json");
  res.set(http::field::set_cookie, fmt::format("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", kSessionCookie));
  res.body() = "{\"signed_out\":true}\n";
  res.keep_alive(call.req.keep_alive());
  res.prepare_payload();
  call.respond(std::move(res));
}

std::expected<Api::EventsTarget, Response> Api::eventsTarget(const Request& req, const Peer& peer) {
  auto caller = authenticate(req, peer);
  if (!caller)
    return std::unexpected(errorResponse(req.version(),
                                         caller.error().code == Errc::kExhausted ? 429 : wire::httpStatusOf(caller.error().code),
                                         errcName(caller.error().code), caller.error().message));
  auto slot = takeFollowSlot(caller->admin ? std::string() : caller->account);
  if (!slot) return std::unexpected(errorResponse(req.version(), 429, "exhausted", slot.error().message));
  return EventsTarget{*caller, std::move(*slot)};
}

void Api::handleApi(Call& call, const Caller& caller) {
  const auto& seg = call.segments;
  const auto method = call.req.method();
  if (seg.size() == 3 && seg[2] == "instances") {
    if (method == http::verb::get) return listInstances(call, caller);
    if (method == http::verb::post) return createInstance(call, caller);
    return call.sendError(405, "method_not_allowed", "use GET or POST on /api/v1/instances");
  }
  if (seg.size() >= 4 && seg.size() <= 5 && seg[2] == "instances")
    return handleInstance(call, caller, seg[3], seg.size() == 5 ? seg[4] : "");
  if (seg.size() >= 3 && seg.size() <= 5 && seg[2] == "accounts")
    return handleAccounts(call, caller, seg.size() > 3 ? seg[3] : "", seg.size() > 4 ? seg[4] : "");
  if (seg.size() == 3 && seg[2] == "files") return listFiles(call, caller);
  if (seg.size() == 3 && seg[2] == "doctor") {
    if (method != http::verb::get) return call.sendError(405, "method_not_allowed", "use GET");
    json::array rows;
    for (const auto& m : hooks_.mechanisms ? hooks_.mechanisms() : std::vector<os::MechanismReport>{})
      rows.push_back(json::object{{"name", m.name}, {"enforced", m.enforced}, {"detail", m.detail}});
    return call.sendJson(200, json::object{{"mechanisms", std::move(rows)}});
  }
  if (seg.size() == 3 && seg[2] == "shutdown") {
    if (method != http::verb::post) return call.sendError(405, "method_not_allowed", "use POST");
    if (!caller.admin) return call.sendError(403, "forbidden", "only the admin may stop the daemon");
    audit(caller, call.flag("stop_instances") ? "daemon.shutdown+stop_instances" : "daemon.shutdown", "", {});
    call.sendJson(202, json::object{{"shutting_down", true}});
    return hooks_.shutdown(call.flag("stop_instances"));
  }
  call.sendError(404, "not_found", fmt::format("no such endpoint: {}", call.req.target()));
}

void Api::listInstances(Call& call, const Caller& caller) {
  // One string, sized from the last list with room to spare (live fields
  // change length between calls: a doubling would copy it and fault in twice
  // the pages); ~600 bytes an instance the first time. The snapshots are
  // written as they are taken, one at a time (Supervisor::forEachStatus).
  std::string out;
  out.reserve(std::max(listBytesHint_ + listBytesHint_ / 8, supervisor_.size() * 640) + 4096);
  out.push_back('[');
  bool first = true;
  supervisor_.forEachStatus([&](const InstanceStatus& s) {
    if (!caller.owns(s.spec.account)) return;
    if (!first) out.push_back(',');
    first = false;
    appendInstanceJson(out, s);
  });
  out.append("]\n");
  listBytesHint_ = out.size();
  call.send(200, std::move(out));
}

void Api::createInstance(Call& call, const Caller& caller) {
  auto body = parseObject(call.req.body());
  if (!body) return call.sendError(body.error());
  store::InstanceRecord spec;
  spec.account = caller.account;
  bool start = true;
  if (auto s = applyInstanceFields(*body, BodyMode::kCreate, spec, &start); !s)
    return call.sendError(s.error());
  if (spec.account.empty())
    return call.sendError(400, "invalid_argument", "field 'account' is required: there is no default account");
  if (!caller.owns(spec.account))
    return call.sendError(403, "forbidden", "you may create instances only in your own account");
  if (auto s = checkRouteAllowed(caller, spec.route); !s) return call.sendError(s.error());
  const std::string name = spec.name;
  auto created = supervisor_.create(std::move(spec), start);
  audit(caller, "instance.create", name, statusOf(created));
  if (!created || !start || !call.flag("wait")) return answerInstance(call, created, 201);
  supervisor_.whenSettled(created->spec.name, std::chrono::seconds(30),
                          [call](Result<InstanceStatus> r) mutable {
                            if (!r) return call.sendError(r.error());
                            call.send(201, instanceJson(*r) + "\n");
                          });
}

void Api::handleInstance(Call& call, const Caller& caller, const std::string& name,
                         const std::string& action) {
  auto found = supervisor_.get(name);
  if (!found || !caller.owns(found->spec.account))
    return call.sendError(404, "not_found", fmt::format("no instance named '{}'", name));
  const auto method = call.req.method();
  if (action == "history") {
    if (method != http::verb::get) return call.sendError(405, "method_not_allowed", "use GET");
    const auto series = hooks_.history ? hooks_.history->series(name) : StatsHistory::Series{};
    json::array cpu, rss;
    for (double c : series.cpuPercent) cpu.push_back(c);
    for (int64_t r : series.rssBytes) rss.push_back(r);
    return call.sendJson(200, json::object{{"name", name},
                                           {"interval_s", StatsHistory::kInterval.count()},
                                           {"cpu_percent", std::move(cpu)},
                                           {"rss_bytes", std::move(rss)}});
  }
  if (action == "logs") {
    if (method != http::verb::get) return call.sendError(405, "method_not_allowed", "use GET");
    long long n = 100;
    if (auto it = call.query.find("n"); it != call.query.end() && !parseInt(it->second, 0, 1'000'000, &n))
      return call.sendError(400, "invalid_argument", "n must be a whole number from 0 to 1000000");
    auto text = supervisor_.logs().tail(name, static_cast<int>(n));
    if (!text) return call.sendError(text.error());
    return call.send(200, std::move(*text), "text/plain; charset=utf-8");
  }
  if (!action.empty()) {
    if (method != http::verb::post) return call.sendError(405, "method_not_allowed", "use POST");
    const bool wait = call.flag("wait");
    auto done = [this, call, name, wait, caller, action](Result<InstanceStatus> r) mutable {
      audit(caller, "instance." + action, name, statusOf(r));
      if (wait && r) return answerSettled(call, name, std::move(r));
      answerInstance(call, r);
    };
    if (action == "start") return done(supervisor_.start(name));
    if (action == "stop") return supervisor_.stop(name, [this, call, caller, name](Result<InstanceStatus> r) mutable {
      audit(caller, "instance.stop", name, statusOf(r));
      answerInstance(call, r);
    });
    if (action == "restart") return supervisor_.restart(name, std::move(done));
    return call.sendError(404, "not_found", fmt::format("no action '{}': use start, stop, restart, logs or history", action));
  }
  if (method == http::verb::get) return answerInstance(call, found);
  if (method == http::verb::patch) return patchInstance(call, caller, name);
  if (method == http::verb::delete_)
    return supervisor_.remove(name, [this, call, caller, name](Status s) mutable {
      audit(caller, "instance.delete", name, s);
      if (!s) return call.sendError(s.error());
      call.sendJson(200, json::object{{"name", name}, {"deleted", true}});
    });
  call.sendError(405, "method_not_allowed", "use GET, PATCH or DELETE");
}

void Api::patchInstance(Call& call, const Caller& caller, const std::string& name) {
  auto body = parseObject(call.req.body());
  if (!body) return call.sendError(body.error());
  auto updated = supervisor_.update(name, [&](store::InstanceRecord& spec) -> Status {
    const std::string before = spec.route;
    if (auto s = applyInstanceFields(*body, BodyMode::kPatch, spec, nullptr); !s) return s;
    return spec.route == before ? Status{} : checkRouteAllowed(caller, spec.route);
  });
  audit(caller, "instance.update", name, statusOf(updated));
  answerInstance(call, updated);
}

// A route without a host ("/x/") is served on every domain the proxy
// answers for, inside other accounts' sites (their cookies, their origin):
// only the admin (and the daemon's own user) may set one. Accounts give a
// host: "chat.example.com/ws/".
// And an account routes only hosts of its domains (set by the admin), so
// that no account can claim another's site first.
Status Api::checkRouteAllowed(const Caller& caller, const std::string& route) {
  if (caller.admin || route.empty()) return {};
  auto account = db_.findAccount(caller.account);
  if (!account) return std::unexpected(account.error());
  const std::vector<std::string> none;
  const auto& domains = *account ? (*account)->domains : none;
  const std::string example = domains.empty() ? "chat.example.com" : domains.front();
  if (route.starts_with('/'))
    return fail(Errc::kForbidden, fmt::format("route '{}' has no host, so it would answer on every domain of this "
                                              "server; give it one of yours, like '{}{}'", route, example, route));
  const std::string host = route.substr(0, route.find('/'));
  if (supervisor::hostInDomains(host, domains)) return {};
  return fail(Errc::kForbidden,
              domains.empty()
                  ? fmt::format("route '{}': account '{}' has no domains; the admin gives an account its domains "
                                "(hostvisor account set {} --domain {})", route, caller.account, caller.account, host)
                  : fmt::format("route '{}': host '{}' is not among the domains of account '{}' ({}); an account "
                                "routes only its own domains and their subdomains",
                                route, host, caller.account, fmt::join(domains, ", ")));
}

void Api::audit(const Caller& caller, std::string_view action, std::string_view target, const Status& outcome) {
  if (hooks_.audit) hooks_.audit->record(caller.who, action, target, outcome);
}

void Api::answerInstance(Call& call, const Result<InstanceStatus>& r, int status) {
  if (!r) return call.sendError(r.error());
  call.send(status, instanceJson(*r) + "\n");
}

void Api::answerSettled(Call& call, const std::string& name, Result<InstanceStatus> r) {
  if (r->state != supervisor::State::kStarting) return answerInstance(call, r);
  supervisor_.whenSettled(name, std::chrono::seconds(30), [this, call](Result<InstanceStatus> s) mutable {
    answerInstance(call, s);
  });
}

void Api::metrics(Call& call) {
  std::string text = renderMetrics(supervisor_.list());
  if (hooks_.extraMetrics) text += hooks_.extraMetrics();
  call.send(200, text, "text/plain; version=0.0.4; charset=utf-8");
}


}  // namespace hv::api
