#include "api/metrics.h"

#include <fmt/format.h>

#include <map>

namespace hv::api {
namespace {

// Label values escape \, " and newline (Prometheus text format).
std::string escapeLabel(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  return out;
}

}  // namespace

std::string renderMetrics(const std::vector<supervisor::InstanceStatus>& instances) {
  using supervisor::State;
  std::string out;
  std::map<std::string_view, int> byState;
  for (State s : {State::kStopped, State::kStarting, State::kRunning, State::kBackoff,
                  State::kStopping, State::kExited, State::kFatal})
    byState[supervisor::stateName(s)] = 0;
  for (const auto& i : instances) ++byState[supervisor::stateName(i.state)];
  out += "# HELP hostvisor_instances Instances by state.\n# TYPE hostvisor_instances gauge\n";
  for (const auto& [state, n] : byState) out += fmt::format("hostvisor_instances{{state=\"{}\"}} {}\n", state, n);

  struct Series { const char* name; const char* type; const char* help; };
  static constexpr Series kSeries[] = {
      {"hostvisor_instance_up", "gauge", "1 if the instance is running."},
      {"hostvisor_instance_restarts_total", "counter", "Automatic restarts since create."},
      {"hostvisor_instance_uptime_seconds", "gauge", "Seconds since the current process started."},
      {"hostvisor_instance_port", "gauge", "The TCP port assigned to the instance."},
  };
  for (const Series& series : kSeries) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", series.name, series.help, series.name, series.type);
    for (const auto& i : instances) {
      const std::string_view n = series.name;
      long long value = n == "hostvisor_instance_up" ? (i.state == State::kRunning ? 1 : 0)
                      : n == "hostvisor_instance_restarts_total" ? i.restarts
                      : n == "hostvisor_instance_uptime_seconds" ? i.uptimeSeconds
                                                                 : i.spec.port;
      out += fmt::format("{}{{instance=\"{}\",account=\"{}\"}} {}\n", series.name,
                         escapeLabel(i.spec.name), escapeLabel(i.spec.account), value);
    }
  }
  out += "# HELP hostvisor_instance_cpu_seconds_total CPU time of the current run (its cgroup).\n"
         "# TYPE hostvisor_instance_cpu_seconds_total counter\n";
  for (const auto& i : instances) {
    if (i.cpuSeconds)
      out += fmt::format("hostvisor_instance_cpu_seconds_total{{instance=\"{}\",account=\"{}\"}} {:.3f}\n",
                         escapeLabel(i.spec.name), escapeLabel(i.spec.account), *i.cpuSeconds);
  }
  out += "# HELP hostvisor_instance_blocked_total Network attempts the policy refused, by kind.\n"
         "# TYPE hostvisor_instance_blocked_total counter\n";
  for (const auto& i : instances) {
    const std::pair<const char*, uint64_t> kinds[] = {{"bind", i.blocked.bind}, {"connect", i.blocked.connect},
                                                      {"sendmsg", i.blocked.sendmsg}, {"ingress", i.blocked.ingress}};
    for (const auto& [kind, n] : kinds)
      out += fmt::format("hostvisor_instance_blocked_total{{instance=\"{}\",account=\"{}\",kind=\"{}\"}} {}\n",
                         escapeLabel(i.spec.name), escapeLabel(i.spec.account), kind, n);
  }
  out += "# HELP hostvisor_instance_log_dropped_lines_total Output lines lost (log buffer or disk full).\n"
         "# TYPE hostvisor_instance_log_dropped_lines_total counter\n";
  for (const auto& i : instances)
    out += fmt::format("hostvisor_instance_log_dropped_lines_total{{instance=\"{}\",account=\"{}\"}} {}\n",
                       escapeLabel(i.spec.name), escapeLabel(i.spec.account), i.output.droppedLines);
  out += "# HELP hostvisor_instance_rss_bytes Anonymous memory of the current run (its cgroup).\n"
         "# TYPE hostvisor_instance_rss_bytes gauge\n";
  for (const auto& i : instances) {
    if (i.rssBytes)
      out += fmt::format("hostvisor_instance_rss_bytes{{instance=\"{}\",account=\"{}\"}} {}\n",
                         escapeLabel(i.spec.name), escapeLabel(i.spec.account), *i.rssBytes);
  }
  return out;
}

}  // namespace hv::api
