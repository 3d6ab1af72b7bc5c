// loops_shim.so: LD_PRELOAD into `hostvisor serve` so that
// std::thread::hardware_concurrency() returns $HV_BENCH_PROXY_LOOPS (default 1).
// The daemon starts its proxy with ProxyConfig::threads = 0 (one loop per CPU of
// the machine, whatever its CPU affinity) and has no config key for it; the proxy
// is the only caller of hardware_concurrency() in src/. This stands in for a
// `[proxy] threads = N` key, so hostvisor gets one loop against nginx's one worker.
#include <cstdlib>

extern "C" unsigned hv_bench_hardware_concurrency() noexcept __asm__("_ZNSt6thread20hardware_concurrencyEv");

extern "C" unsigned hv_bench_hardware_concurrency() noexcept {
  const char* v = std::getenv("HV_BENCH_PROXY_LOOPS");
  const int n = v ? std::atoi(v) : 1;
  return n > 0 ? static_cast<unsigned>(n) : 1u;
}
