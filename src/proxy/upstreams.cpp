#include "proxy/upstreams.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace hv::proxy {

Upstreams::Lease::Lease(State* state) : state_(state) {
  state_->peak = std::max(state_->peak, ++state_->active);
}

Upstreams::Lease& Upstreams::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    reset();
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

void Upstreams::Lease::reset() {
  if (state_) --state_->active;
  state_ = nullptr;
}

Upstreams::Pick Upstreams::choose(const RouteEntry& route, const std::vector<tcp::endpoint>& tried, TimePoint now) {
  std::vector<size_t> live, healthy;
  bool starting = false;
  for (size_t i = 0; i < route.endpoints.size(); ++i) {
    const auto health = route.route.upstreams[i].health;
    starting |= health == Upstream::Health::kStarting;
    if (health != Upstream::Health::kUp) continue;
    if (std::find(tried.begin(), tried.end(), route.endpoints[i]) != tried.end()) continue;
    live.push_back(i);
    if (!ejected(route.endpoints[i], now)) healthy.push_back(i);
  }
  if (live.empty()) {
    if (starting) return {Pick::Kind::kStarting};
    return {tried.empty() ? Pick::Kind::kDown : Pick::Kind::kExhausted};
  }
  const std::vector<size_t>& pool = healthy.empty() ? live : healthy;
  const uint64_t turn = turns_[route.id]++;
  if (route.route.balance == Route::Balance::kRoundRobin) return {Pick::Kind::kEndpoint, pool[turn % pool.size()]};
  // Least connections; ties go round-robin so equal upstreams share the load.
  size_t best = pool[turn % pool.size()];
  for (size_t k = 0; k < pool.size(); ++k) {
    const size_t i = pool[(turn + k) % pool.size()];
    if (state(route.endpoints[i]).active < state(route.endpoints[best]).active) best = i;
  }
  return {Pick::Kind::kEndpoint, best};
}

void Upstreams::eject(const tcp::endpoint& ep, TimePoint now) {
  State& s = state(ep);
  s.ejectedUntil = now + limits_.ejectTime;
  s.idle.clear();  // pooled connections to a failing upstream are suspect too
}

bool Upstreams::ejected(const tcp::endpoint& ep, TimePoint now) {
  auto it = states_.find(ep);
  return it != states_.end() && now < it->second.ejectedUntil;
}

namespace {

// An idle HTTP connection must have nothing to read: a FIN, a reset or stray
// bytes all mean the upstream is done with it.
bool stillOpen(UpstreamConn& conn) {
  char byte;
  const ssize_t n = ::recv(conn.stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::unique_ptr<UpstreamConn> Upstreams::takeIdle(const tcp::endpoint& ep, uint64_t run, TimePoint now,
                                                  bool check) {
  auto it = states_.find(ep);
  if (it == states_.end()) return nullptr;
  auto& idle = it->second.idle;
  while (!idle.empty()) {
    std::unique_ptr<UpstreamConn> conn = std::move(idle.back());
    idle.pop_back();
    // Another run on this address: whoever holds the other end is not the
    // program this request is routed to (retain() normally closed it already).
    if (conn->run != run) continue;
    const auto idleFor = now - conn->idleSince;
    if (idleFor >= limits_.upstreamIdleTimeout) continue;
    if ((check || idleFor >= kTrustIdle) && !stillOpen(*conn)) continue;
    return conn;
  }
  return nullptr;
}

void Upstreams::putIdle(std::unique_ptr<UpstreamConn> conn, TimePoint now) {
  if (!live_.contains(RunKey{conn->endpoint, conn->run})) return;  // its run left the table meanwhile
  State& s = state(conn->endpoint);
  if (s.idle.size() >= std::max<size_t>(limits_.idleUpstreamsPerHost, s.peak)) return;
  conn->idleSince = now;
  conn->buffer.clear();
  conn->buffer.shrink_to_fit();
  s.idle.push_back(std::move(conn));
}

void Upstreams::sweep(TimePoint now) {
  for (auto& [_, s] : states_) {
    std::erase_if(s.idle, [&](const auto& c) { return now - c->idleSince >= limits_.upstreamIdleTimeout; });
    s.peak = s.active;
  }
}

void Upstreams::retain(const RouteTable& table) {
  live_.clear();
  for (const RouteEntry& entry : table.entries())
    for (size_t i = 0; i < entry.endpoints.size(); ++i) live_.insert(RunKey{entry.endpoints[i], entry.route.upstreams[i].run});
  for (auto& [ep, s] : states_)
    std::erase_if(s.idle, [&](const auto& c) { return !live_.contains(RunKey{ep, c->run}); });
}

void Upstreams::closeAll() {
  for (auto& [_, s] : states_) s.idle.clear();
}

}  // namespace hv::proxy
