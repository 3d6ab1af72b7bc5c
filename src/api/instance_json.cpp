#include "api/instance_json.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "api/wire/wire.h"
#include "proxy/route.h"
#include "supervisor/validation.h"

namespace hv::api {

namespace json = boost::json;
using supervisor::InstanceStatus;

json::object instanceToJson(const InstanceStatus& s) {
  const store::InstanceRecord& spec = s.spec;
  json::array args;
  for (const auto& a : spec.args) args.emplace_back(a);
  json::object env;
  for (const auto& [k, v] : spec.env) env[k] = v;
  json::object o;
  o["name"] = spec.name;
  o["account"] = spec.account;
  o["command"] = spec.command;
  o["args"] = std::move(args);
  o["env"] = std::move(env);
  o["cwd"] = spec.cwd;
  o["route"] = spec.route;
  json::array access;
  for (const auto& rule : spec.access) access.emplace_back(rule);
  o["access"] = std::move(access);
  o["strip_prefix"] = spec.stripPrefix;
  o["restart"] = supervisor::restartModeName(spec.restart);
  o["autostart"] = spec.autostart;
  o["port"] = spec.port;
  o["state"] = supervisor::stateName(s.state);
  o["pid"] = s.pid > 0 ? json::value(s.pid) : json::value(nullptr);
  o["restarts"] = s.restarts;
  o["uptime"] = s.uptimeSeconds;
  o["started_at"] = s.startedAt > 0 ? json::value(s.startedAt) : json::value(nullptr);
  const bool exited = s.lastExit && s.lastExit->code >= 0;
  o["exit_code"] = exited && !s.lastExit->signaled ? json::value(s.lastExit->code) : json::value(nullptr);
  o["exit_signal"] = exited && s.lastExit->signaled ? json::value(s.lastExit->code) : json::value(nullptr);
  o["reason"] = s.reason;
  o["last_output"] = s.lastOutput;
  o["cpu_seconds"] = s.cpuSeconds ? json::value(*s.cpuSeconds) : json::value(nullptr);
  o["rss_bytes"] = s.rssBytes ? json::value(*s.rssBytes) : json::value(nullptr);
  o["blocked"] = json::object{{"bind", s.blocked.bind}, {"connect", s.blocked.connect},
                              {"sendmsg", s.blocked.sendmsg}, {"ingress", s.blocked.ingress}};
  o["log"] = json::object{{"written_bytes", s.output.writtenBytes},
                          {"dropped_lines", s.output.droppedLines},
                          {"dropped_bytes", s.output.droppedBytes}};
  o["start_secs"] = spec.startSecs;
  o["ready"] = spec.ready == store::ReadyCheck::kPort ? "port" : "start_secs";
  o["stop_signal"] = spec.stopSignal;
  o["stop_grace_ms"] = spec.stopGraceMs;
  o["memory"] = spec.memoryBytes;
  o["cpu"] = spec.cpuPercent;
  o["procs"] = spec.maxProcs;
  o["created_at"] = spec.createdAt;
  return o;
}

namespace {

Status badField(std::string_view field, std::string_view what) {
  return fail(Errc::kInvalidArgument, fmt::format("field '{}' {}", field, what));
}

Result<std::string> stringField(const json::value& v, std::string_view field) {
  if (!v.is_string()) return std::unexpected(badField(field, "must be a string").error());
  return std::string(v.as_string());
}

Result<int64_t> intField(const json::value& v, std::string_view field, int64_t lo, int64_t hi) {
  int64_t n = 0;
  if (v.is_int64()) n = v.as_int64();
  else if (v.is_uint64() && v.as_uint64() <= static_cast<uint64_t>(INT64_MAX)) n = static_cast<int64_t>(v.as_uint64());
  else return std::unexpected(badField(field, "must be a whole number").error());
  if (n < lo || n > hi)
    return std::unexpected(badField(field, fmt::format("must be between {} and {}", lo, hi)).error());
  return n;
}

Status applyArgs(const json::value& v, store::InstanceRecord& spec) {
  if (!v.is_array()) return badField("args", "must be an array of strings");
  spec.args.clear();
  for (const auto& a : v.as_array()) {
    if (!a.is_string()) return badField("args", "must be an array of strings");
    spec.args.emplace_back(a.as_string());
  }
  return {};
}

Status applyEnv(const json::value& v, store::InstanceRecord& spec) {
  if (!v.is_object()) return badField("env", "must be an object of string values");
  spec.env.clear();
  for (const auto& [k, val] : v.as_object()) {
    if (!val.is_string()) return badField("env", fmt::format("value of {} must be a string", std::string_view(k)));
    spec.env.emplace_back(std::string(k), std::string(val.as_string()));
  }
  return {};
}

// Ordered like .htaccess, first match wins: "allow 10.0.0.0/8", "deny all".
Status applyAccess(const json::value& v, store::InstanceRecord& spec) {
  if (!v.is_array()) return badField("access", "must be an array of rules like \"allow 10.0.0.0/8\" or \"deny all\"");
  spec.access.clear();
  for (const auto& rule : v.as_array()) {
    if (!rule.is_string()) return badField("access", "must be an array of strings");
    auto parsed = proxy::CidrRule::parse(rule.as_string());
    if (!parsed) return badField("access", parsed.error().message);
    spec.access.emplace_back(rule.as_string());
  }
  return {};
}

Status applyMemory(const json::value& v, store::InstanceRecord& spec) {
  if (v.is_string()) {
    auto bytes = wire::parseSize(v.as_string());
    if (!bytes) return badField("memory", bytes.error().message);
    spec.memoryBytes = *bytes;
    return {};
  }
  auto n = intField(v, "memory", 0, INT64_MAX);
  if (!n) return std::unexpected(n.error());
  spec.memoryBytes = *n;
  return {};
}

// One field; `mode` decides which may appear.
Status applyField(std::string_view key, const json::value& v, BodyMode mode,
                  store::InstanceRecord& spec, bool* start) {
  auto str = [&](std::string& out) -> Status {
    auto s = stringField(v, key);
    if (!s) return std::unexpected(s.error());
    out = std::move(*s);
    return {};
  };
  auto num = [&](auto& out, int64_t lo, int64_t hi) -> Status {
    auto n = intField(v, key, lo, hi);
    if (!n) return std::unexpected(n.error());
    out = static_cast<std::remove_reference_t<decltype(out)>>(*n);
    return {};
  };
  auto flag = [&](bool& out) -> Status {
    if (!v.is_bool()) return badField(key, "must be true or false");
    out = v.as_bool();
    return {};
  };
  if (key == "name" || key == "account") {
    if (mode == BodyMode::kPatch) return badField(key, "cannot be changed; create a new instance");
    return str(key == "name" ? spec.name : spec.account);
  }
  if (key == "start") {
    if (mode == BodyMode::kPatch) return badField(key, "is only for create; use POST .../start");
    return flag(*start);
  }
  if (key == "command") return str(spec.command);
  if (key == "cwd") return str(spec.cwd);
  if (key == "route") return str(spec.route);
  if (key == "args") return applyArgs(v, spec);
  if (key == "env") return applyEnv(v, spec);
  if (key == "memory") return applyMemory(v, spec);
  if (key == "autostart") return flag(spec.autostart);
  if (key == "strip_prefix") return flag(spec.stripPrefix);
  if (key == "access") return applyAccess(v, spec);
  if (key == "start_secs") return num(spec.startSecs, 0, 3600);
  if (key == "stop_signal") return num(spec.stopSignal, 1, 64);
  if (key == "stop_grace_ms") return num(spec.stopGraceMs, 0, 3'600'000);
  if (key == "cpu") return num(spec.cpuPercent, 0, 102400);
  if (key == "procs") return num(spec.maxProcs, 0, 1'000'000);
  if (key == "ready") {
    auto r = stringField(v, key);
    if (!r) return std::unexpected(r.error());
    if (*r != "port" && *r != "start_secs")
      return badField(key, "must be \"port\" (running once the port accepts, or after start_secs) or \"start_secs\"");
    spec.ready = *r == "port" ? store::ReadyCheck::kPort : store::ReadyCheck::kStartSecs;
    return {};
  }
  if (key == "restart") {
    auto s = stringField(v, key);
    if (!s) return std::unexpected(s.error());
    auto mode2 = supervisor::parseRestartMode(*s);
    if (!mode2) return std::unexpected(mode2.error());
    spec.restart = *mode2;
    return {};
  }
  return fail(Errc::kInvalidArgument, fmt::format("unknown field '{}'", key));
}

}  // namespace

Status applyInstanceFields(const json::object& body, BodyMode mode, store::InstanceRecord& spec,
                           bool* start) {
  for (const auto& [key, value] : body) {
    if (auto s = applyField(key, value, mode, spec, start); !s) return s;
  }
  if (mode == BodyMode::kCreate) {
    if (!body.contains("name")) return badField("name", "is required");
    if (!body.contains("command")) return badField("command", "is required");
  }
  return {};
}

}  // namespace hv::api
