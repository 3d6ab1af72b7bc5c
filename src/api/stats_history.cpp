#include "api/stats_history.h"

#include <algorithm>
#include <unordered_set>

namespace hv::api {

StatsHistory::StatsHistory(boost::asio::io_context& io, const supervisor::Supervisor& supervisor)
    : timer_(io), supervisor_(supervisor) {}

void StatsHistory::start() {
  last_ = std::chrono::steady_clock::now();
  arm();
}

void StatsHistory::stop() { timer_.cancel(); }

void StatsHistory::arm() {
  timer_.expires_after(kInterval);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    sample();
    arm();
  });
}

void StatsHistory::sample() {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::max(1e-3, std::chrono::duration<double>(now - last_).count());
  last_ = now;
  std::unordered_set<std::string> seen;
  supervisor_.forEachStatus([&](const supervisor::InstanceStatus& s) {
    seen.insert(s.spec.name);
    Ring& r = rings_[s.spec.name];
    double cpu = 0;
    const uint64_t run = static_cast<uint64_t>(s.pid);
    if (s.cpuSeconds && s.pid > 0) {
      if (r.run == run && r.lastCpuSeconds >= 0) cpu = std::max(0.0, (*s.cpuSeconds - r.lastCpuSeconds) / elapsed * 100);
      r.lastCpuSeconds = *s.cpuSeconds;
    } else {
      r.lastCpuSeconds = -1;
    }
    r.run = run;
    r.cpuTenths[r.next] = static_cast<uint16_t>(std::min(65535.0, cpu * 10 + 0.5));
    r.rssKiB[r.next] = static_cast<uint32_t>(std::min<int64_t>(UINT32_MAX, s.rssBytes.value_or(0) / 1024));
    r.next = static_cast<uint8_t>((r.next + 1) % kSamples);
    r.count = static_cast<uint8_t>(std::min<size_t>(kSamples, r.count + 1u));
  });
  std::erase_if(rings_, [&](const auto& kv) { return !seen.contains(kv.first); });  // deleted ones
}

StatsHistory::Series StatsHistory::series(const std::string& name) const {
  Series out;
  auto it = rings_.find(name);
  if (it == rings_.end()) return out;
  const Ring& r = it->second;
  for (size_t i = 0; i < r.count; ++i) {
    const size_t at = (r.next + kSamples - r.count + i) % kSamples;
    out.cpuPercent.push_back(r.cpuTenths[at] / 10.0);
    out.rssBytes.push_back(static_cast<int64_t>(r.rssKiB[at]) * 1024);
  }
  return out;
}

}  // namespace hv::api
