#include "cli/output.h"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <vector>

#include "base/strings.h"

namespace hv::cli {

namespace json = boost::json;

namespace {

// Values come from programs and accounts: nothing in them may drive the
// admin's terminal (escape sequences, carriage returns).
std::string text(const json::value* v, bool keepNewlines = false) {
  if (!v || v->is_null()) return "-";
  if (v->is_string()) return printable(v->as_string(), keepNewlines);
  return printable(json::serialize(*v), keepNewlines);
}

std::string field(const json::object& o, std::string_view key) { return text(o.if_contains(key)); }

}  // namespace

std::string formatDuration(int64_t s) {
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{}h", s / 86400, s % 86400 / 3600);
}

std::string renderTable(const json::array& instances) {
  static const std::vector<std::string> kHeader = {"NAME", "ACCOUNT", "STATE", "PID", "PORT",
                                                   "UPTIME", "RESTARTS", "ROUTE", "COMMAND"};
  std::vector<std::vector<std::string>> rows{kHeader};
  for (const auto& v : instances) {
    if (!v.is_object()) continue;
    const auto& o = v.as_object();
    const json::value* up = o.if_contains("uptime");
    const bool hasPid = o.contains("pid") && !o.at("pid").is_null();
    std::string route = field(o, "route");
    rows.push_back({field(o, "name"), field(o, "account"), field(o, "state"), field(o, "pid"),
                    field(o, "port"),
                    hasPid && up && up->is_int64() ? formatDuration(up->as_int64()) : "-",
                    field(o, "restarts"), route.empty() ? "-" : route, field(o, "command")});
  }
  std::vector<size_t> width(kHeader.size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i)
      line += i + 1 == r.size() ? r[i] : fmt::format("{:<{}}  ", r[i], width[i]);
    out += line + "\n";
  }
  return out;
}

std::string logForStdout(std::string_view bytes) {
  static const bool terminal = ::isatty(STDOUT_FILENO) == 1;
  return terminal ? printable(bytes, true) : std::string(bytes);
}

std::string renderStatus(const json::object& o) {
  std::string out;
  size_t width = 0;
  for (const auto& [k, v] : o) width = std::max(width, k.size());
  for (const auto& [k, v] : o)
    out += fmt::format("{:<{}}  {}\n", printable(k, false) + ":", width + 1, text(&v, k == "last_output"));
  return out;
}

}  // namespace hv::cli
