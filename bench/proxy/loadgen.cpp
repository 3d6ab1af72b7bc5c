// loadgen: the WebSocket client of the proxy benchmark (Asio, one thread).
// Prints one JSON object on stdout; bench.py drives it.
//
//   loadgen echo --target 127.0.0.1:P [--tls --sni NAME] --conns 64 --seconds 10 --warmup 2 --size 64
//           [--pid proxy:PID]... [--pid backend:PID]...
//       Closed loop: every connection keeps one message in flight (send a
//       masked binary frame, wait for its echo, send the next). Counts round
//       trips in the window [warmup, warmup + seconds] and, over exactly that
//       window, CPU time of each named process group (/proc/PID/task/*/schedstat
//       and utime/stime), this client's own CPU and the whole machine's (/proc/stat).
//   loadgen rtt  --target ... --count 10000 --warmup-count 1000 --size 64
//       One connection, blocking calls, one message at a time; percentiles of the
//       round trip (clock_gettime(CLOCK_MONOTONIC) around write + read).
//   loadgen idle --target ... --conns 8000 --settle 3 --pid proxy:PID...
//       Warm-up (64 connections, 10 messages each, closed), then VmRSS of the
//       proxy group; opens --conns WebSocket connections and leaves them idle;
//       after --settle seconds VmRSS again; then one echo on every connection
//       to prove each tunnel is alive.
// Connections are spread over source addresses 127.0.0.2, .3, ... (--per-src
// each, default 200): hostvisor's proxy admits 256 open connections per client
// address (Limits::maxConnsPerClient).
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

struct Options {
  std::string mode;
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  bool tls = false;
  std::string sni = "bench.test";
  std::string hostHeader;
  std::string path = "/echo";
  int conns = 64;
  double seconds = 10;
  double warmup = 2;
  size_t size = 64;
  int count = 10000;
  int warmupCount = 1000;
  double settle = 3;
  double rate = 0;  // echo: total messages/s offered, spread evenly over the connections; 0 = closed loop
  int perSrc = 200;
  int concurrency = 128;  // connection set-ups in flight (idle mode)
  std::vector<std::pair<std::string, int>> pids;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "loadgen: %s\n", what.c_str());
  std::exit(1);
}

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ---- /proc sampling --------------------------------------------------------

struct Cpu {
  double runNs = 0;    // sum of /proc/PID/task/*/schedstat field 1 (ns on CPU)
  double userS = 0;    // utime (clock ticks → s), whole process
  double systemS = 0;  // stime
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Cpu cpuOf(int pid) {
  Cpu c;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      const std::string s = slurp(dir + "/" + e->d_name + "/schedstat");
      c.runNs += std::strtod(s.c_str(), nullptr);
    }
    closedir(d);
  }
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren != std::string::npos) {
    std::istringstream in(stat.substr(paren + 2));
    std::string f;
    std::vector<std::string> fields;
    while (in >> f) fields.push_back(f);
    // fields[0] is field 3 (state); utime is field 14, stime 15
    if (fields.size() > 13) {
      const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
      c.userS = std::strtod(fields[11].c_str(), nullptr) / hz;
      c.systemS = std::strtod(fields[12].c_str(), nullptr) / hz;
    }
  }
  return c;
}

long statusKb(int pid, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::strtol(line.c_str() + n + 1, nullptr, 10);
  return -1;
}

// Machine-wide busy and total time from /proc/stat (all CPUs), in seconds.
std::pair<double, double> machineCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[10] = {};
  in >> cpu;
  for (double& x : v) in >> x;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double idle = v[3] + v[4];
  double total = 0;
  for (int i = 0; i < 8; ++i) total += v[i];  // guest time is already in user
  return {(total - idle) / hz, total / hz};
}

double selfCpu() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

struct Snapshot {
  double t = 0, self = 0, busy = 0, total = 0;
  std::map<std::string, Cpu> groups;
};

Snapshot snap(const Options& o) {
  Snapshot s;
  s.t = now();
  s.self = selfCpu();
  std::tie(s.busy, s.total) = machineCpu();
  for (const auto& [name, pid] : o.pids) {
    Cpu c = cpuOf(pid);
    Cpu& g = s.groups[name];
    g.runNs += c.runNs;
    g.userS += c.userS;
    g.systemS += c.systemS;
  }
  return s;
}

long groupRss(const Options& o, const std::string& group, const char* key) {
  long sum = 0;
  for (const auto& [name, pid] : o.pids)
    if (name == group) sum += statusKb(pid, key);
  return sum;
}

// ---- WebSocket bits --------------------------------------------------------

std::string upgradeRequest(const Options& o) {
  const std::string host = o.hostHeader.empty() ? o.host + ":" + std::to_string(o.port) : o.hostHeader;
  return "GET " + o.path + " HTTP/1.1\r\nHost: " + host +
         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n";
}

// A masked binary frame carrying `size` bytes (client → server).
std::string clientFrame(size_t size) {
  std::string f;
  f.push_back(static_cast<char>(0x82));
  if (size < 126) {
    f.push_back(static_cast<char>(0x80 | size));
  } else if (size < 65536) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(size >> 8));
    f.push_back(static_cast<char>(size & 0xff));
  } else {
    die("--size must be < 65536");
  }
  const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  f.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < size; ++i) f.push_back(static_cast<char>(('a' + i % 26) ^ mask[i & 3]));
  return f;
}

size_t echoLength(size_t size) { return (size < 126 ? 2 : 4) + size; }

bool echoOk(const char* data, size_t size) {
  if (static_cast<unsigned char>(data[0]) != 0x82) return false;
  const size_t head = size < 126 ? 2 : 4;
  for (size_t i = 0; i < size; ++i)
    if (data[head + i] != static_cast<char>('a' + i % 26)) return false;
  return true;
}

asio::ip::address sourceFor(const Options& o, int index) {
  const int n = index / o.perSrc;
  if (n > 250) die("too many connections for the 127.0.0.x source addresses");
  return asio::ip::make_address_v4("127.0.0." + std::to_string(2 + n));
}

// ---- streams ---------------------------------------------------------------

template <class S>
tcp::socket& lowest(S& s) {
  if constexpr (std::is_same_v<S, tcp::socket>) return s;
  else return s.next_layer();
}

template <class S>
std::unique_ptr<S> makeStream(asio::io_context& io, ssl::context* ctx) {
  if constexpr (std::is_same_v<S, tcp::socket>) return std::make_unique<S>(io);
  else return std::make_unique<S>(io, *ctx);
}

template <class S>
void prepareSocket(S& s, const Options& o, int index, bool spread) {
  tcp::socket& sock = lowest(s);
  sock.open(tcp::v4());
  if (spread) {
    int one = 1;
    ::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sock.bind(tcp::endpoint(sourceFor(o, index), 0));
  }
  if constexpr (!std::is_same_v<S, tcp::socket>) {
    if (!SSL_set_tlsext_host_name(s.native_handle(), o.sni.c_str())) die("SNI");
  }
}

template <class S>
struct Conn {
  std::unique_ptr<S> stream;
  std::unique_ptr<asio::steady_timer> pace;  // --rate: when the next message is due
  std::chrono::steady_clock::time_point due;
  std::string head;
  std::vector<char> rbuf;
  uint64_t done = 0;
  bool ok = false;
};

// Async set-up: connect, TLS handshake, upgrade; calls back with success.
template <class S>
void setUp(Conn<S>& c, const Options& o, const tcp::endpoint& target, const std::string& request,
           std::function<void(bool, const std::string&)> then) {
  lowest(*c.stream).async_connect(target, [&c, &o, &request, then](error_code ec) {
    if (ec) return then(false, "connect: " + ec.message());
    lowest(*c.stream).set_option(tcp::no_delay(true));
    auto upgrade = [&c, &request, then]() {
      asio::async_write(*c.stream, asio::buffer(request), [&c, then](error_code ec, size_t) {
        if (ec) return then(false, "write upgrade: " + ec.message());
        asio::async_read_until(*c.stream, asio::dynamic_buffer(c.head), "\r\n\r\n",
                               [&c, then](error_code ec, size_t n) {
                                 if (ec) return then(false, "read 101: " + ec.message());
                                 if (c.head.compare(0, 12, "HTTP/1.1 101") != 0)
                                   return then(false, "no 101: " + c.head.substr(0, c.head.find('\r')));
                                 if (c.head.size() != n) return then(false, "bytes after the 101");
                                 c.head.clear();
                                 c.head.shrink_to_fit();
                                 then(true, "");
                               });
      });
    };
    if constexpr (std::is_same_v<S, tcp::socket>) {
      upgrade();
    } else {
      c.stream->async_handshake(ssl::stream_base::client, [then, upgrade](error_code ec) {
        if (ec) return then(false, "TLS handshake: " + ec.message());
        upgrade();
      });
    }
  });
}

std::string cipherOf(tcp::socket&) { return ""; }
std::string cipherOf(ssl::stream<tcp::socket>& s) {
  const SSL* ssl = s.native_handle();
  return std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
}

void printCpu(std::ostringstream& out, const Snapshot& a, const Snapshot& b) {
  out << "\"cpu\":{";
  bool first = true;
  for (const auto& [name, cb] : b.groups) {
    const Cpu& ca = a.groups.at(name);
    if (!first) out << ",";
    first = false;
    out << "\"" << name << "\":{\"run_s\":" << (cb.runNs - ca.runNs) * 1e-9 << ",\"user_s\":" << cb.userS - ca.userS
        << ",\"system_s\":" << cb.systemS - ca.systemS << "}";
  }
  out << "},\"client_cpu_s\":" << b.self - a.self << ",\"machine_busy_s\":" << b.busy - a.busy
      << ",\"machine_total_s\":" << b.total - a.total;
}

// ---- modes -----------------------------------------------------------------

template <class S>
int runEcho(const Options& o, ssl::context* ctx) {
  asio::io_context io(1);
  auto guard = asio::make_work_guard(io);  // run_for must wait, not return, when nothing is pending
  const tcp::endpoint target(asio::ip::make_address(o.host), o.port);
  const std::string request = upgradeRequest(o);
  const std::string frame = clientFrame(o.size);
  const size_t echoLen = echoLength(o.size);
  std::vector<Conn<S>> conns(o.conns);
  int ready = 0, failed = 0;
  std::string firstError;
  bool running = false, stopped = false;
  // --rate: each connection sends every conns/rate seconds (staggered start); a late
  // message is sent at once and the schedule does not try to catch up beyond one period.
  const auto period = std::chrono::nanoseconds(o.rate > 0 ? static_cast<int64_t>(1e9 * o.conns / o.rate) : 0);
  std::function<void(Conn<S>&)> send;
  std::function<void(Conn<S>&)> loop = [&](Conn<S>& c) {
    if (period.count() == 0) return send(c);
    const auto now = std::chrono::steady_clock::now();
    c.due = std::max(c.due + period, now - period);
    if (c.due <= now) return send(c);
    c.pace->expires_at(c.due);
    c.pace->async_wait([&](error_code ec) {
      if (!ec && !stopped) send(c);
    });
  };
  send = [&](Conn<S>& c) {
    asio::async_write(*c.stream, asio::buffer(frame), [&](error_code ec, size_t) {
      if (ec) return (void)(stopped || (++failed, firstError = "write: " + ec.message(), true));
      asio::async_read(*c.stream, asio::buffer(c.rbuf.data(), echoLen), [&](error_code ec, size_t) {
        if (ec) return (void)(stopped || (++failed, firstError = "read: " + ec.message(), true));
        if (!echoOk(c.rbuf.data(), o.size)) {
          ++failed;
          firstError = "bad echo";
          return;
        }
        ++c.done;
        if (!stopped) loop(c);
      });
    });
  };
  for (int i = 0; i < o.conns; ++i) {
    Conn<S>& c = conns[i];
    c.stream = makeStream<S>(io, ctx);
    c.rbuf.resize(echoLen);
    prepareSocket(*c.stream, o, i, true);
    setUp(c, o, target, request, [&, i](bool ok, const std::string& err) {
      if (!ok) {
        ++failed;
        if (firstError.empty()) firstError = err;
        return;
      }
      if (++ready == o.conns) running = true;
    });
  }
  const double deadline = now() + 30;
  while (!running && failed == 0 && now() < deadline) io.run_one_for(std::chrono::milliseconds(100));
  if (!running) die("set-up failed: " + (firstError.empty() ? std::string("timeout") : firstError));
  const std::string cipher = cipherOf(*conns[0].stream);
  {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < o.conns; ++i) {
      conns[i].pace = std::make_unique<asio::steady_timer>(io);
      conns[i].due = start + period * i / o.conns - period;  // staggered
      loop(conns[i]);
    }
  }
  auto total = [&] {
    uint64_t n = 0;
    for (auto& c : conns) n += c.done;
    return n;
  };
  const double t0 = now();
  while (now() < t0 + o.warmup) io.run_for(std::chrono::milliseconds(20));
  const Snapshot a = snap(o);
  const uint64_t n0 = total();
  while (now() < a.t + o.seconds && failed == 0) io.run_for(std::chrono::milliseconds(5));
  const Snapshot b = snap(o);
  const uint64_t n1 = total();
  stopped = true;
  if (failed) die("during the run: " + firstError);
  uint64_t minDone = UINT64_MAX, maxDone = 0;
  for (auto& c : conns) minDone = std::min(minDone, c.done), maxDone = std::max(maxDone, c.done);
  std::ostringstream out;
  out.precision(9);
  const double secs = b.t - a.t;
  out << "{\"mode\":\"echo\",\"tls\":" << (o.tls ? "true" : "false") << ",\"cipher\":\"" << cipher
      << "\",\"conns\":" << o.conns << ",\"size\":" << o.size << ",\"rate\":" << o.rate << ",\"seconds\":" << secs
      << ",\"messages\":" << (n1 - n0) << ",\"msgs_per_s\":" << (n1 - n0) / secs << ",\"per_conn_min\":" << minDone
      << ",\"per_conn_max\":" << maxDone << ",";
  printCpu(out, a, b);
  out << "}";
  std::printf("%s\n", out.str().c_str());
  for (auto& c : conns) {
    error_code ignored;
    lowest(*c.stream).close(ignored);
  }
  return 0;
}

template <class S>
void syncSetUp(S& s, const Options& o) {
  const tcp::endpoint target(asio::ip::make_address(o.host), o.port);
  prepareSocket(s, o, 0, false);
  lowest(s).connect(target);
  lowest(s).set_option(tcp::no_delay(true));
  if constexpr (!std::is_same_v<S, tcp::socket>) s.handshake(ssl::stream_base::client);
  const std::string request = upgradeRequest(o);
  asio::write(s, asio::buffer(request));
  std::string head;
  const size_t n = asio::read_until(s, asio::dynamic_buffer(head), "\r\n\r\n");
  if (head.compare(0, 12, "HTTP/1.1 101") != 0 || n != head.size()) die("no clean 101: " + head.substr(0, 40));
}

template <class S>
int runRtt(const Options& o, ssl::context* ctx) {
  asio::io_context io(1);
  auto s = makeStream<S>(io, ctx);
  try {
    syncSetUp(*s, o);
  } catch (const std::exception& e) {
    die(std::string("set-up: ") + e.what());
  }
  const std::string frame = clientFrame(o.size);
  const size_t echoLen = echoLength(o.size);
  std::vector<char> rbuf(echoLen);
  std::vector<double> samples;
  samples.reserve(o.count);
  const Snapshot a0 = snap(o);
  for (int i = 0; i < o.warmupCount + o.count; ++i) {
    const double t = now();
    asio::write(*s, asio::buffer(frame));
    asio::read(*s, asio::buffer(rbuf));
    const double rt = now() - t;
    if (!echoOk(rbuf.data(), o.size)) die("bad echo");
    if (i >= o.warmupCount) samples.push_back(rt * 1e6);
  }
  const Snapshot b0 = snap(o);
  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double p) {  // nearest rank
    size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * sorted.size()));
    return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  double sum = 0;
  for (double x : samples) sum += x;
  std::ostringstream out;
  out.precision(6);
  out << "{\"mode\":\"rtt\",\"tls\":" << (o.tls ? "true" : "false") << ",\"count\":" << samples.size()
      << ",\"p50_us\":" << pct(50) << ",\"p90_us\":" << pct(90) << ",\"p99_us\":" << pct(99)
      << ",\"p999_us\":" << pct(99.9) << ",\"max_us\":" << sorted.back() << ",\"min_us\":" << sorted.front()
      << ",\"mean_us\":" << sum / samples.size() << ",\"seconds\":" << b0.t - a0.t << ",";
  printCpu(out, a0, b0);
  out << "}";
  std::printf("%s\n", out.str().c_str());
  return 0;
}

template <class S>
int runIdle(const Options& o, ssl::context* ctx) {
  asio::io_context io(1);
  auto guard = asio::make_work_guard(io);
  const tcp::endpoint target(asio::ip::make_address(o.host), o.port);
  const std::string request = upgradeRequest(o);
  const std::string frame = clientFrame(o.size);
  const size_t echoLen = echoLength(o.size);

  // Set up `n` connections starting at source index `base`, `concurrency` at a time.
  auto openAll = [&](std::vector<Conn<S>>& conns, int n, int base, int& failed, std::string& firstError) {
    conns.resize(n);
    int next = 0, finished = 0;
    std::function<void()> launch = [&]() {
      if (next >= n) return;
      const int i = next++;
      Conn<S>& c = conns[i];
      c.stream = makeStream<S>(io, ctx);
      c.rbuf.resize(echoLen);
      prepareSocket(*c.stream, o, base + i, true);
      setUp(c, o, target, request, [&, i](bool ok, const std::string& err) {
        ++finished;
        conns[i].ok = ok;
        if (!ok && failed++ == 0) firstError = err;
        launch();
      });
    };
    for (int k = 0; k < o.concurrency; ++k) launch();
    const double deadline = now() + 120;
    while (finished < n && now() < deadline) io.run_one_for(std::chrono::milliseconds(100));
    if (finished < n) {
      failed += n - finished;
      if (firstError.empty()) firstError = "set-up timed out";
    }
  };
  // One echo on every open connection; returns how many came back intact.
  auto echoAll = [&](std::vector<Conn<S>>& conns) {
    int good = 0, pending = 0;
    for (auto& c : conns) {
      if (!c.ok) continue;
      ++pending;
      asio::async_write(*c.stream, asio::buffer(frame), [&](error_code ec, size_t) {
        if (ec) return (void)--pending;
        asio::async_read(*c.stream, asio::buffer(c.rbuf.data(), echoLen), [&](error_code ec, size_t) {
          --pending;
          if (!ec && echoOk(c.rbuf.data(), o.size)) ++good;
        });
      });
    }
    const double deadline = now() + 60;
    while (pending > 0 && now() < deadline) io.run_one_for(std::chrono::milliseconds(100));
    return good;
  };
  auto closeAll = [&](std::vector<Conn<S>>& conns) {
    for (auto& c : conns) {
      error_code ignored;
      if (c.stream) lowest(*c.stream).close(ignored);
    }
    conns.clear();
    io.poll();
  };
  auto sleepFor = [&](double secs) {
    const double until = now() + secs;
    while (now() < until) io.run_for(std::chrono::milliseconds(50));
  };

  // Warm-up: the proxy's one-time allocations (TLS contexts, pools) are not per tunnel.
  {
    std::vector<Conn<S>> warm;
    int failed = 0;
    std::string err;
    openAll(warm, 64, 0, failed, err);
    if (failed) die("warm-up: " + err);
    for (int k = 0; k < 10; ++k)
      if (echoAll(warm) != 64) die("warm-up echo failed");
    closeAll(warm);
  }
  sleepFor(o.settle);
  const long before = groupRss(o, "proxy", "VmRSS");
  const long beforeAnon = groupRss(o, "proxy", "RssAnon");
  const Snapshot a = snap(o);
  std::vector<Conn<S>> conns;
  int failed = 0;
  std::string firstError;
  const double t0 = now();
  openAll(conns, o.conns, 0, failed, firstError);
  const double openSecs = now() - t0;
  sleepFor(o.settle);
  const long after = groupRss(o, "proxy", "VmRSS");
  const long afterAnon = groupRss(o, "proxy", "RssAnon");
  const long hwm = groupRss(o, "proxy", "VmHWM");
  const Snapshot b = snap(o);
  const int alive = echoAll(conns);
  const int opened = o.conns - failed;
  std::ostringstream out;
  out.precision(9);
  out << "{\"mode\":\"idle\",\"tls\":" << (o.tls ? "true" : "false") << ",\"conns\":" << o.conns
      << ",\"opened\":" << opened << ",\"alive\":" << alive << ",\"first_error\":\"" << firstError
      << "\",\"open_s\":" << openSecs << ",\"rss_before_kb\":" << before << ",\"rss_after_kb\":" << after
      << ",\"anon_before_kb\":" << beforeAnon << ",\"anon_after_kb\":" << afterAnon << ",\"hwm_kb\":" << hwm
      << ",\"bytes_per_conn\":" << (opened > 0 ? (after - before) * 1024.0 / opened : 0) << ",";
  printCpu(out, a, b);
  out << "}";
  std::printf("%s\n", out.str().c_str());
  std::fflush(stdout);
  closeAll(conns);
  return 0;
}

Options parse(int argc, char** argv) {
  Options o;
  if (argc < 2) die("usage: loadgen echo|rtt|idle --target HOST:PORT [options] (see the top of loadgen.cpp)");
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + a);
      return argv[++i];
    };
    if (a == "--target") {
      const std::string t = val();
      const size_t c = t.rfind(':');
      if (c == std::string::npos) die("--target HOST:PORT");
      o.host = t.substr(0, c);
      o.port = static_cast<unsigned short>(std::stoi(t.substr(c + 1)));
    } else if (a == "--tls") o.tls = true;
    else if (a == "--sni") o.sni = val();
    else if (a == "--host-header") o.hostHeader = val();
    else if (a == "--path") o.path = val();
    else if (a == "--conns") o.conns = std::stoi(val());
    else if (a == "--seconds") o.seconds = std::stod(val());
    else if (a == "--warmup") o.warmup = std::stod(val());
    else if (a == "--size") o.size = std::stoul(val());
    else if (a == "--count") o.count = std::stoi(val());
    else if (a == "--warmup-count") o.warmupCount = std::stoi(val());
    else if (a == "--settle") o.settle = std::stod(val());
    else if (a == "--rate") o.rate = std::stod(val());
    else if (a == "--per-src") o.perSrc = std::stoi(val());
    else if (a == "--concurrency") o.concurrency = std::stoi(val());
    else if (a == "--pid") {
      const std::string p = val();
      const size_t c = p.find(':');
      if (c == std::string::npos) die("--pid NAME:PID");
      o.pids.emplace_back(p.substr(0, c), std::stoi(p.substr(c + 1)));
    } else die("unknown option " + a);
  }
  if (o.port == 0) die("--target HOST:PORT is required");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_verify_mode(ssl::verify_none);  // the benchmark's own self-signed certificate
  try {
    if (o.mode == "echo") return o.tls ? runEcho<ssl::stream<tcp::socket>>(o, &ctx) : runEcho<tcp::socket>(o, nullptr);
    if (o.mode == "rtt") return o.tls ? runRtt<ssl::stream<tcp::socket>>(o, &ctx) : runRtt<tcp::socket>(o, nullptr);
    if (o.mode == "idle") return o.tls ? runIdle<ssl::stream<tcp::socket>>(o, &ctx) : runIdle<tcp::socket>(o, nullptr);
  } catch (const std::exception& e) {
    die(e.what());
  }
  die("unknown mode " + o.mode);
}
