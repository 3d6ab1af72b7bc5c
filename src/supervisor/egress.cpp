#include "supervisor/egress.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <variant>

namespace hv::supervisor {

namespace asio = boost::asio;
namespace np = os::netpolicy;

struct Egress::Impl : std::enable_shared_from_this<Impl> {
  struct Run {
    np::RunTarget target;
    uint16_t listenPort = 0;
    std::string account;
    std::vector<np::EgressEntry> entries;
  };
  struct Name {
    EgressName shown;
    std::vector<np::Cidr> addrs;
  };

  Impl(asio::io_context& io, np::Enforcer& enforcer, Options options)
      : io(io), enforcer(enforcer), options(std::move(options)), timer(io) {
    if (!this->options.lookup) this->options.lookup = systemLookup;
  }

  asio::io_context& io;
  np::Enforcer& enforcer;
  Options options;
  asio::steady_timer timer;
  std::map<uint64_t, Run> runs;
  std::map<std::string, Name> names;

  // The worker: names to resolve, in order, each once.
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::string> queue;
  bool stopping = false;
  std::thread worker;

  void start() {
    worker = std::thread([self = this] { self->work(); });
    std::weak_ptr<Impl> weak = weak_from_this();
    // After load(): the survivors of an earlier daemon nobody re-policed.
    asio::post(io, [weak] {
      if (auto self = weak.lock()) self->retainOnly();
    });
    scheduleRefresh();
  }

  void stop() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    if (worker.joinable()) worker.join();
    timer.cancel();
  }

  void enqueue(const std::string& host) {
    {
      std::lock_guard lock(mutex);
      if (std::find(queue.begin(), queue.end(), host) != queue.end()) return;
      queue.push_back(host);
    }
    wake.notify_one();
  }

  void work() {
    while (true) {
      std::string host;
      {
        std::unique_lock lock(mutex);
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) return;
        host = queue.front();
      }
      Result<std::vector<np::Cidr>> got = options.lookup(host);
      {
        std::lock_guard lock(mutex);
        if (!queue.empty() && queue.front() == host) queue.pop_front();
      }
      std::weak_ptr<Impl> weak = weak_from_this();
      asio::post(io, [weak, host, got = std::move(got)] {
        if (auto self = weak.lock()) self->resolved(host, got);
      });
    }
  }

  void scheduleRefresh() {
    timer.expires_after(options.refresh);
    std::weak_ptr<Impl> weak = weak_from_this();
    timer.async_wait([weak](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->refresh();
      self->scheduleRefresh();
    });
  }

  std::set<std::string> hostsInUse() const {
    std::set<std::string> hosts;
    for (const auto& [key, run] : runs) {
      for (const np::EgressEntry& e : run.entries) {
        if (const auto* hp = std::get_if<np::HostPort>(&e)) hosts.insert(hp->host);
      }
    }
    return hosts;
  }

  void refresh() {
    const std::set<std::string> inUse = hostsInUse();
    std::erase_if(names, [&](const auto& item) { return !inUse.contains(item.first); });
    for (const std::string& host : inUse) enqueue(host);
  }

  void retainOnly() {
    std::vector<uint64_t> keep;
    for (const auto& [key, run] : runs) keep.push_back(key);
    if (Status s = enforcer.retainOnly(keep); !s) spdlog::error("network policy: clearing ended runs: {}", s.error().message);
  }

  np::InstancePolicy policyOf(const Run& run) {
    np::InstancePolicy policy;
    policy.listenPort = run.listenPort;
    for (const np::EgressEntry& e : run.entries) {
      if (const auto* entry = std::get_if<np::AllowEntry>(&e)) {
        policy.allow.push_back(*entry);
        continue;
      }
      const auto& hp = std::get<np::HostPort>(e);
      auto it = names.find(hp.host);
      if (it == names.end()) {
        names[hp.host].shown.host = hp.host;
        enqueue(hp.host);
        continue;
      }
      for (const np::Cidr& addr : it->second.addrs) policy.allow.push_back(np::AllowEntry{addr, hp.port, 0});
    }
    return policy;
  }

  void resolved(const std::string& host, const Result<std::vector<np::Cidr>>& got) {
    if (!hostsInUse().contains(host)) return;
    Name& name = names[host];
    name.shown.host = host;
    name.shown.resolvedAt = std::time(nullptr);
    std::vector<np::Cidr> addrs = got ? *got : std::vector<np::Cidr>{};
    std::sort(addrs.begin(), addrs.end(), [](const np::Cidr& a, const np::Cidr& b) {
      return std::tie(a.v6, a.addr, a.prefixLen) < std::tie(b.v6, b.addr, b.prefixLen);
    });
    const std::string error = got ? (addrs.empty() ? "no addresses" : "") : got.error().message;
    if (!error.empty() && error != name.shown.error) {
      spdlog::warn("egress name {}: {}: it opens nothing", host, error);
    }
    name.shown.error = error;
    if (addrs == name.addrs) return;
    name.addrs = std::move(addrs);
    name.shown.addresses.clear();
    for (const np::Cidr& c : name.addrs) {
      std::string text = c.toString();
      name.shown.addresses.push_back(text.substr(0, text.find('/')));
    }
    spdlog::info("egress name {} resolves to {}", host,
                 name.shown.addresses.empty() ? std::string("nothing") : fmt::format("{}", fmt::join(name.shown.addresses, ", ")));
    for (auto& [key, run] : runs) {
      const bool lists = std::any_of(run.entries.begin(), run.entries.end(), [&](const np::EgressEntry& e) {
        const auto* hp = std::get_if<np::HostPort>(&e);
        return hp && hp->host == host;
      });
      if (!lists) continue;
      if (Status s = enforcer.set(run.target, policyOf(run)); !s) {
        spdlog::error("account {}: network policy not updated for {}: {}", run.account, host, s.error().message);
      }
    }
  }
};

Egress::Egress(asio::io_context& io, std::unique_ptr<np::Enforcer> enforcer, Options options)
    : enforcer_(std::move(enforcer)), impl_(std::make_shared<Impl>(io, *enforcer_, std::move(options))) {
  impl_->start();
}

Egress::~Egress() { impl_->stop(); }

Status Egress::police(const np::RunTarget& run, uint16_t listenPort, const std::string& account,
                      const std::vector<std::string>& egress) {
  Impl::Run r{run, listenPort, account, {}};
  for (const std::string& text : egress) {
    Result<np::EgressEntry> entry = np::parseEgressEntry(text);
    if (!entry) {
      spdlog::warn("account {}: egress entry '{}' not applied: {}", account, text, entry.error().message);
      continue;
    }
    r.entries.push_back(std::move(*entry));
  }
  if (Status s = enforcer_->set(run, impl_->policyOf(r)); !s) return s;
  impl_->runs[run.cgroupId] = std::move(r);
  return {};
}

void Egress::unpolice(uint64_t key) {
  impl_->runs.erase(key);
  if (Status s = enforcer_->clear(key); !s) spdlog::warn("network policy: clearing run {}: {}", key, s.error().message);
}

std::vector<EgressName> Egress::names() const {
  std::vector<EgressName> out;
  for (const auto& [host, name] : impl_->names) out.push_back(name.shown);
  return out;
}

Result<std::vector<np::Cidr>> Egress::systemLookup(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list); rc != 0) {
    return fail(Errc::kNotFound, fmt::format("does not resolve: {}", ::gai_strerror(rc)));
  }
  std::vector<np::Cidr> out;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    np::Cidr c;
    if (ai->ai_family == AF_INET) {
      std::memcpy(c.addr.data(), &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr, 4);
      c.prefixLen = 32;
    } else if (ai->ai_family == AF_INET6) {
      c.v6 = true;
      std::memcpy(c.addr.data(), &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr, 16);
      c.prefixLen = 128;
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  ::freeaddrinfo(list);
  return out;
}

}  // namespace hv::supervisor
