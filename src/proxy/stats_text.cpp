#include "proxy/stats_text.h"

#include <fmt/format.h>

namespace hv::proxy {
namespace {

void series(std::string& out, std::string_view name, std::string_view type, std::string_view help, uint64_t value) {
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type, value);
}

}  // namespace

std::string prometheusText(const Stats& s) {
  std::string out;
  series(out, "hostvisor_proxy_connections_open", "gauge", "Client connections open, tunnels included.",
         s.connectionsOpen);
  series(out, "hostvisor_proxy_connections_total", "counter", "Client connections accepted.", s.connectionsTotal);
  series(out, "hostvisor_proxy_connections_rejected_total", "counter",
         "Client connections refused over the per-client limit.", s.connectionsRejected);
  series(out, "hostvisor_proxy_requests_total", "counter", "Request heads received.", s.requests);
  out += "# HELP hostvisor_proxy_responses_total Final responses sent, by status class.\n"
         "# TYPE hostvisor_proxy_responses_total counter\n";
  for (auto [cls, n] : {std::pair{"2xx", s.responses2xx}, {"3xx", s.responses3xx}, {"4xx", s.responses4xx},
                        {"5xx", s.responses5xx}})
    out += fmt::format("hostvisor_proxy_responses_total{{class=\"{}\"}} {}\n", cls, n);
  series(out, "hostvisor_proxy_tunnels_open", "gauge", "WebSocket tunnels open.", s.tunnelsOpen);
  series(out, "hostvisor_proxy_tunnels_total", "counter", "WebSocket tunnels opened.", s.tunnelsTotal);
  series(out, "hostvisor_proxy_tunnels_offloaded_total", "counter",
         "WebSocket tunnels whose bytes the kernel copied (BPF sockmap).", s.tunnelsOffloaded);
  series(out, "hostvisor_proxy_tunnels_tls_takeover_total", "counter",
         "wss tunnels whose TLS 1.3 records the proxy's own record layer carried on (OpenSSL's SSL freed).",
         s.tunnelsTlsTakeover);
  out += "# HELP hostvisor_proxy_tunnel_bytes_total Bytes copied through tunnels after the 101.\n"
         "# TYPE hostvisor_proxy_tunnel_bytes_total counter\n";
  out += fmt::format("hostvisor_proxy_tunnel_bytes_total{{direction=\"in\"}} {}\n", s.tunnelBytesIn);
  out += fmt::format("hostvisor_proxy_tunnel_bytes_total{{direction=\"out\"}} {}\n", s.tunnelBytesOut);
  out += "# HELP hostvisor_proxy_http_bytes_total Bytes of HTTP requests sent upstream (in) and responses sent "
         "to clients (out), heads included.\n# TYPE hostvisor_proxy_http_bytes_total counter\n";
  out += fmt::format("hostvisor_proxy_http_bytes_total{{direction=\"in\"}} {}\n", s.httpBytesIn);
  out += fmt::format("hostvisor_proxy_http_bytes_total{{direction=\"out\"}} {}\n", s.httpBytesOut);
  series(out, "hostvisor_proxy_upstream_connects_total", "counter", "New upstream connections.", s.upstreamConnects);
  series(out, "hostvisor_proxy_upstream_reuses_total", "counter", "Requests sent on a pooled upstream connection.",
         s.upstreamReuses);
  series(out, "hostvisor_proxy_upstream_errors_total", "counter",
         "Failed upstream connects (each ejects the upstream for a while).", s.upstreamFailures);
  return out;
}

}  // namespace hv::proxy
