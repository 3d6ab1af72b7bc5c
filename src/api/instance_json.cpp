#include "api/instance_json.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <charconv>

#include "api/wire/wire.h"
#include "base/strings.h"
#include "proxy/route.h"
#include "supervisor/validation.h"

namespace hv::api {

namespace json = boost::json;
using supervisor::InstanceStatus;

namespace {

// A JSON writer straight into one string: no DOM, no allocation per field.
// Strings are escaped as RFC 8259 requires ('"', '\\', controls); well-formed
// UTF-8 is copied as it is, and a byte that starts no well-formed sequence
// becomes U+FFFD: a program's output (last_output) may be any bytes, and the
// listing must stay JSON that every parser accepts.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void str(std::string_view v) {
    out_.push_back('"');
    size_t run = 0;  // start of the bytes not yet copied
    for (size_t i = 0; i < v.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(v[i]);
      if (c >= 0x80) {
        const size_t n = utf8SequenceAt(v, i);
        if (n > 0) {
          i += n - 1;
          continue;
        }
        out_.append(v.data() + run, i - run);
        run = i + 1;
        out_.append("\\ufffd");
        continue;
      }
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out_.append(v.data() + run, i - run);
      run = i + 1;
      switch (c) {
        case '"': out_.append("\\\""); break;
        case '\\': out_.append("\\\\"); break;
        case '\n': out_.append("\\n"); break;
        case '\r': out_.append("\\r"); break;
        case '\t': out_.append("\\t"); break;
        case '\b': out_.append("\\b"); break;
        case '\f': out_.append("\\f"); break;
        default: {
          static constexpr char kHex[] = "0123456789abcdef";
          const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
          out_.append(esc, 6);
        }
      }
    }
    out_.append(v.data() + run, v.size() - run);
    out_.push_back('"');
  }
  template <class Int>
  void num(Int v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
  }
  void real(double v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that reads back equal
    out_.append(buf, r.ptr);
  }
  void boolean(bool v) { out_.append(v ? "true" : "false"); }
  void null() { out_.append("null"); }
  // `,"key":` (no comma before the first key of an object).
  void key(std::string_view k) {
    if (!first_) out_.push_back(',');
    first_ = false;
    out_.push_back('"');
    out_.append(k);  // keys are ASCII literals: nothing to escape
    out_.append("\":");
  }
  // The same for a key from data (escaped).
  void anyKey(std::string_view k) {
    if (!first_) out_.push_back(',');
    first_ = false;
    str(k);
    out_.push_back(':');
  }
  void open(char c) {
    out_.push_back(c);
    first_ = true;
  }
  void close(char c) {
    out_.push_back(c);
    first_ = false;
  }
  void strings(const std::vector<std::string>& v) {
    out_.push_back('[');
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out_.push_back(',');
      str(v[i]);
    }
    out_.push_back(']');
  }

 private:
  std::string& out_;
  bool first_ = true;
};

}  // namespace

void appendInstanceJson(std::string& out, const InstanceStatus& s) {
  const store::InstanceRecord& spec = s.spec;
  Writer w(out);
  w.open('{');
  w.key("name"), w.str(spec.name);
  w.key("account"), w.str(spec.account);
  w.key("command"), w.str(spec.command);
  w.key("args"), w.strings(spec.args);
  w.key("env"), w.open('{');
  for (const auto& [k, v] : spec.env) w.anyKey(k), w.str(v);
  w.close('}');
  w.key("cwd"), w.str(spec.cwd);
  w.key("route"), w.str(spec.route);
  w.key("access"), w.strings(spec.access);
  w.key("strip_prefix"), w.boolean(spec.stripPrefix);
  w.key("restart"), w.str(supervisor::restartModeName(spec.restart));
  w.key("autostart"), w.boolean(spec.autostart);
  w.key("port"), w.num(spec.port);
  w.key("state"), w.str(supervisor::stateName(s.state));
  w.key("pid");
  if (s.pid > 0) w.num(s.pid); else w.null();
  w.key("restarts"), w.num(s.restarts);
  w.key("uptime"), w.num(s.uptimeSeconds);
  w.key("started_at");
  if (s.startedAt > 0) w.num(s.startedAt); else w.null();
  const bool exited = s.lastExit && s.lastExit->code >= 0;
  w.key("exit_code");
  if (exited && !s.lastExit->signaled) w.num(s.lastExit->code); else w.null();
  w.key("exit_signal");
  if (exited && s.lastExit->signaled) w.num(s.lastExit->code); else w.null();
  w.key("reason"), w.str(s.reason);
  w.key("last_output"), w.str(s.lastOutput);
  w.key("cpu_seconds");
  if (s.cpuSeconds) w.real(*s.cpuSeconds); else w.null();
  w.key("rss_bytes");
  if (s.rssBytes) w.num(*s.rssBytes); else w.null();
  w.key("blocked"), w.open('{');
  w.key("bind"), w.num(s.blocked.bind);
  w.key("connect"), w.num(s.blocked.connect);
  w.key("sendmsg"), w.num(s.blocked.sendmsg);
  w.key("ingress"), w.num(s.blocked.ingress);
  w.close('}');
  w.key("log"), w.open('{');
  w.key("written_bytes"), w.num(s.output.writtenBytes);
  w.key("dropped_lines"), w.num(s.output.droppedLines);
  w.key("dropped_bytes"), w.num(s.output.droppedBytes);
  w.close('}');
  w.key("start_secs"), w.num(spec.startSecs);
  w.key("ready"), w.str(spec.ready == store::ReadyCheck::kPort ? "port" : "start_secs");
  w.key("stop_signal"), w.num(spec.stopSignal);
  w.key("stop_grace_ms"), w.num(spec.stopGraceMs);
  w.key("memory"), w.num(spec.memoryBytes);
  w.key("cpu"), w.num(spec.cpuPercent);
  w.key("procs"), w.num(spec.maxProcs);
  w.key("created_at"), w.num(spec.createdAt);
  w.close('}');
}

std::string instanceJson(const InstanceStatus& s) {
  std::string out;
  out.reserve(1024);
  appendInstanceJson(out, s);
  return out;
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
