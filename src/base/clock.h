// Clock: the one seam for time, so logic that depends on it (restart backoff,
// uptime) is tested with a FakeClock instead of sleeps.
// SystemClock is stateless and thread-safe; FakeClock is for single-threaded tests.
#pragma once

#include <chrono>
#include <cstdint>

namespace hv {

class Clock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;          // monotonic
  virtual int64_t wallSeconds() const = 0;    // Unix time, for display and storage
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  int64_t wallSeconds() const override;
};

class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return now_; }
  int64_t wallSeconds() const override {
    return 1'700'000'000 + std::chrono::duration_cast<std::chrono::seconds>(now_.time_since_epoch()).count();
  }
  void advance(Duration d) { now_ += d; }

 private:
  TimePoint now_{};
};

}  // namespace hv
