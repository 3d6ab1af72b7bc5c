#include "proxy/stats_text.h"

#include <gtest/gtest.h>

namespace hv::proxy {
namespace {

TEST(StatsText, EveryCounterIsAPrometheusSeries) {
  Stats s;
  s.requests = 7;
  s.responses2xx = 5;
  s.responses5xx = 2;
  s.tunnelsOpen = 1;
  s.tunnelBytesOut = 99;
  s.upstreamFailures = 3;
  s.httpBytesIn = 12;
  const std::string text = prometheusText(s);
  for (const char* line : {"# TYPE hostvisor_proxy_requests_total counter\nhostvisor_proxy_requests_total 7\n",
                           "hostvisor_proxy_responses_total{class=\"2xx\"} 5\n",
                           "hostvisor_proxy_responses_total{class=\"5xx\"} 2\n",
                           "# TYPE hostvisor_proxy_tunnels_open gauge\nhostvisor_proxy_tunnels_open 1\n",
                           "hostvisor_proxy_tunnel_bytes_total{direction=\"out\"} 99\n",
                           "hostvisor_proxy_upstream_errors_total 3\n",
                           "hostvisor_proxy_http_bytes_total{direction=\"in\"} 12\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\nin:\n" << text;
  EXPECT_EQ(text.back(), '\n');
}

}  // namespace
}  // namespace hv::proxy
