#include "proxy/proxy.h"

#include <fmt/format.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <thread>

#include "base/strings.h"
#include "proxy/worker.h"

namespace hv::proxy {

struct Proxy::Impl {
  explicit Impl(ProxyConfig config) : shared(std::move(config)) {}
  Shared shared;
  std::vector<std::unique_ptr<Worker>> workers;
  std::string bound, tlsBound;
  std::string offloadStatus = "off";
  std::mutex routesMutex;  // orders publications, so every loop ends on the same table
  uint64_t routesVersion = 0;
  std::once_flag stopped;
};

namespace {

Result<tcp::endpoint> parseListen(const std::string& address) {
  const size_t colon = address.rfind(':');
  long long port = 0;
  if (colon == std::string::npos || !parseInt(address.substr(colon + 1), 0, 65535, &port))
    return fail(Errc::kInvalidArgument, fmt::format("proxy listen address '{}' is not ADDR:PORT", address));
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) return fail(Errc::kInvalidArgument, fmt::format("proxy listen address '{}' has no valid IP address", address));
  return tcp::endpoint(ip, static_cast<uint16_t>(port));
}

std::string endpointText(const tcp::endpoint& ep) {
  return ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                              : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

// Every worker binds the same address with SO_REUSEPORT; the first one
// resolves port 0 for the others. Returns the bound "ADDR:PORT".
Result<std::string> bindAll(std::vector<std::unique_ptr<Worker>>& workers, const std::string& address, bool tls) {
  auto endpoint = parseListen(address);
  if (!endpoint) return std::unexpected(endpoint.error());
  for (auto& worker : workers) {
    auto bound = worker->listen(*endpoint, tls);
    if (!bound) return std::unexpected(bound.error());
    endpoint->port(bound->port());
  }
  return endpointText(*endpoint);
}

// The CPUs this process may run on (taskset, cgroup cpusets, systemd's
// CPUAffinity=): one loop per CPU of the machine would put several on one CPU.
unsigned usableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

Result<std::unique_ptr<Proxy>> Proxy::start(ProxyConfig config) {
  if (config.listen.empty() && config.tlsListen.empty())
    return fail(Errc::kInvalidArgument, "the proxy needs a listen or a TLS listen address");
  const unsigned threads = config.threads ? config.threads : usableCpus();
  auto impl = std::make_unique<Impl>(std::move(config));
  const ProxyConfig& c = impl->shared.config;
  impl->shared.tls.setTakeover(c.tlsTakeover);
  if (!c.tlsListen.empty())
    if (auto s = impl->shared.tls.load(c.certificates); !s) return std::unexpected(s.error().context("proxy TLS"));
  if (c.tunnelOffload != TunnelOffloadMode::kOff) {
    auto offload = TunnelOffload::open();
    if (offload) {
      impl->shared.offload = std::move(*offload);
      impl->offloadStatus = "sockmap";
    } else if (c.tunnelOffload == TunnelOffloadMode::kSockmap) {
      return fail(Errc::kUnavailable,
                  fmt::format("proxy tunnel_offload = \"sockmap\", but the kernel cannot: {}", offload.error().message));
    } else {
      impl->offloadStatus = fmt::format("user space ({})", offload.error().message);
    }
  }
  for (unsigned i = 0; i < threads; ++i) impl->workers.push_back(std::make_unique<Worker>(impl->shared));
  if (!c.listen.empty()) {
    auto bound = bindAll(impl->workers, c.listen, false);
    if (!bound) return std::unexpected(bound.error());
    impl->bound = *bound;
  }
  if (!c.tlsListen.empty()) {
    auto bound = bindAll(impl->workers, c.tlsListen, true);
    if (!bound) return std::unexpected(bound.error());
    impl->tlsBound = *bound;
  }
  for (auto& worker : impl->workers) worker->start();
  spdlog::info("proxy: listening on {}{}{} with {} loops; tunnel offload: {}", impl->bound,
               impl->tlsBound.empty() ? "" : " and TLS on ", impl->tlsBound, threads, impl->offloadStatus);
  return std::unique_ptr<Proxy>(new Proxy(std::move(impl)));
}

Proxy::Proxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Proxy::~Proxy() { stop(); }

Status Proxy::setRoutes(std::vector<Route> routes) {
  auto table = RouteTable::build(std::move(routes));
  if (!table) return std::unexpected(table.error());
  auto shared = std::make_shared<const RouteTable>(std::move(*table));
  std::lock_guard lock(impl_->routesMutex);
  const uint64_t version = ++impl_->routesVersion;
  for (auto& worker : impl_->workers) worker->publish(shared, version);
  return {};
}

Status Proxy::reloadCertificates(std::vector<Certificate> certificates) {
  if (impl_->tlsBound.empty()) return fail(Errc::kConflict, "the proxy has no TLS listener");
  return impl_->shared.tls.load(certificates);
}

std::string Proxy::boundAddress() const { return impl_->bound; }
std::string Proxy::tlsBoundAddress() const { return impl_->tlsBound; }
std::string Proxy::tunnelOffloadStatus() const { return impl_->offloadStatus; }
size_t Proxy::offloadMapEntries() const { return impl_->shared.offload ? impl_->shared.offload->entries() : 0; }

Stats Proxy::stats() const {
  Stats s;
  auto add = [](uint64_t& to, const std::atomic<uint64_t>& from) { to += from.load(std::memory_order_relaxed); };
  for (const auto& worker : impl_->workers) {
    const WorkerStats& w = worker->stats();
    add(s.connectionsOpen, w.connectionsOpen);
    add(s.connectionsTotal, w.connectionsTotal);
    add(s.connectionsRejected, w.connectionsRejected);
    add(s.tunnelsOpen, w.tunnelsOpen);
    add(s.tunnelsTotal, w.tunnelsTotal);
    add(s.tunnelsOffloaded, w.tunnelsOffloaded);
    add(s.tunnelsTlsTakeover, w.tunnelsTlsTakeover);
    add(s.requests, w.requests);
    add(s.responses2xx, w.responses2xx);
    add(s.responses3xx, w.responses3xx);
    add(s.responses4xx, w.responses4xx);
    add(s.responses5xx, w.responses5xx);
    add(s.upstreamConnects, w.upstreamConnects);
    add(s.upstreamReuses, w.upstreamReuses);
    add(s.upstreamFailures, w.upstreamFailures);
    add(s.tunnelBytesIn, w.tunnelBytesIn);
    add(s.tunnelBytesOut, w.tunnelBytesOut);
    add(s.httpBytesIn, w.httpBytesIn);
    add(s.httpBytesOut, w.httpBytesOut);
  }
  return s;
}

void Proxy::stop() {
  // Workers stay (stopped) so that stats() still answers.
  std::call_once(impl_->stopped, [this] {
    for (auto& worker : impl_->workers) worker->stop();
  });
}

}  // namespace hv::proxy
