// StatsHistory: each instance's CPU and memory over the last 15 minutes, for
// the panel's sparklines (GET /api/v1/instances/{name}/history). A sample
// every kInterval of all instances (the supervisor's cached cgroup stats, in
// one pass), kept in a ring of kSamples per instance: 30 × 6 bytes, well under
// the 1 KiB per instance the daemon may spend. CPU is the percent of one core
// used since the previous sample; memory the run's RSS in KiB.
// Control thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "supervisor/supervisor.h"

namespace hv::api {

class StatsHistory {
 public:
  static constexpr std::chrono::seconds kInterval{30};
  static constexpr size_t kSamples = 30;  // 15 minutes

  StatsHistory(boost::asio::io_context& io, const supervisor::Supervisor& supervisor);
  void start();
  void stop();
  // Takes one sample of every instance now (the timer calls it).
  void sample();

  struct Series {
    std::vector<double> cpuPercent;  // oldest first; NaN-free, 0 when not running
    std::vector<int64_t> rssBytes;
  };
  // An instance's samples, oldest first (empty if none yet).
  Series series(const std::string& name) const;

 private:
  struct Ring {
    std::array<uint16_t, kSamples> cpuTenths{};  // percent × 10, capped at 6553.5 %
    std::array<uint32_t, kSamples> rssKiB{};
    uint8_t next = 0;
    uint8_t count = 0;
    double lastCpuSeconds = -1;
    uint64_t run = 0;  // pid it was sampled from: a new process restarts the CPU delta
  };
  void arm();

  boost::asio::steady_timer timer_;
  const supervisor::Supervisor& supervisor_;
  std::unordered_map<std::string, Ring> rings_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace hv::api
