// NftPolicy: rule text, the table's life, and the start-up probe. Every
// change is one libnftables buffer, which nft commits as one transaction.
#include "os/netpolicy/nft_policy.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <nftables/libnftables.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>

#include "base/scope_exit.h"
#include "base/unique_fd.h"
#include "os/cgroup_dir.h"
#include "os/netpolicy/netpolicy.h"
#include "os/netpolicy/netpolicy_internal.h"

namespace hv::os::netpolicy {
namespace nft {
namespace {

std::string peerMatch(const Cidr& entry, const char* dir) {
  const Cidr c = unmapped(entry);
  const char* fam = c.v6 ? "ip6" : "ip";
  if (isLoopbackOnly(c)) return fmt::format("{} {} {}", fam, dir, c.toString());
  // A wide entry never opens the host's own services (cidr.h).
  std::string m = fmt::format("{} {} != {}", fam, dir, c.v6 ? "::1" : "127.0.0.0/8");
  if (c.prefixLen > 0) m += fmt::format(" {} {} {}", fam, dir, c.toString());
  return m;
}

std::string protoPort(uint8_t protocol, uint16_t port, const char* dir) {
  std::string m = protocol == 6    ? "meta l4proto tcp"
                  : protocol == 17 ? "meta l4proto udp"
                  : port != 0      ? "meta l4proto { tcp, udp }"
                                   : "";
  if (port != 0) m += fmt::format(" th {} {}", dir, port);
  return m;
}

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : b.empty() ? a : a + " " + b; }

std::string portSet(const std::vector<uint16_t>& ports) {
  if (ports.size() == 1) return std::to_string(ports[0]);
  std::string s = "{ ";
  for (size_t i = 0; i < ports.size(); ++i) s += (i ? ", " : "") + std::to_string(ports[i]);
  return s + " }";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

uint64_t number(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::string_view word(std::string_view s, size_t index) {
  for (size_t i = 0;; ++i) {
    s = trim(s);
    size_t end = s.find(' ');
    if (i == index) return s.substr(0, end);
    if (end == std::string_view::npos) return {};
    s.remove_prefix(end);
  }
}

}  // namespace

std::string tableName(const std::string& name) { return "hostvisor-" + name; }

GroupRules unionOf(const std::vector<const InstancePolicy*>& policies) {
  GroupRules g;
  for (const InstancePolicy* p : policies) {
    if (p->listenPort != 0 && std::find(g.ports.begin(), g.ports.end(), p->listenPort) == g.ports.end()) {
      g.ports.push_back(p->listenPort);
    }
    for (const AllowEntry& e : p->allow) {
      if (std::find(g.allow.begin(), g.allow.end(), e) == g.allow.end()) g.allow.push_back(e);
    }
  }
  std::sort(g.ports.begin(), g.ports.end());
  return g;
}

std::vector<std::string> outputRules(const std::string& group, const GroupRules& rules) {
  std::vector<std::string> out;
  if (!rules.ports.empty()) {
    // Its own port on loopback: its health checks of itself.
    for (const char* lo : {"ip daddr 127.0.0.0/8", "ip6 daddr ::1"}) {
      out.push_back(fmt::format("{} meta l4proto {{ tcp, udp }} th dport {} accept", lo, portSet(rules.ports)));
    }
  }
  for (const AllowEntry& e : rules.allow) {
    out.push_back(join(join(peerMatch(e.prefix, "daddr"), protoPort(e.protocol, e.port, "dport")), "accept"));
  }
  out.push_back(fmt::format("meta l4proto tcp counter name \"{}-connect\" reject with tcp reset", group));
  out.push_back(fmt::format("counter name \"{}-sendmsg\" drop", group));
  return out;
}

std::vector<std::string> inputRules(const std::string& group, const GroupRules& rules) {
  std::vector<std::string> in;
  if (!rules.ports.empty()) in.push_back(fmt::format("meta l4proto {{ tcp, udp }} th dport {} return", portSet(rules.ports)));
  in.push_back(fmt::format("meta l4proto tcp counter name \"{}-ingress\" reject with tcp reset", group));
  for (const AllowEntry& e : rules.allow) {
    if (e.protocol == 6) continue;
    std::string from = e.port != 0 ? fmt::format("meta l4proto udp th sport {}", e.port) : "meta l4proto udp";
    in.push_back(join(join(peerMatch(e.prefix, "saddr"), from), "return"));
  }
  in.push_back(fmt::format("meta l4proto udp counter name \"{}-ingress\" drop", group));
  return in;
}

std::string cgroupMatcher(std::string_view relPath, unsigned level) {
  return fmt::format("socket cgroupv2 level {} \"{}\"", level, relPath);
}

std::string uidMatcher(uint32_t uid) { return fmt::format("meta skuid {}", uid); }

Listing parseListing(std::string_view text) {
  Listing l;
  std::string chain, counter;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.starts_with("chain ")) {
      chain = std::string(word(line, 1));
      l.chains.push_back(chain);
      l.hasOutput |= chain == "output";
      l.hasInput |= chain == "input";
    } else if (line.starts_with("counter ") && line.find('{') != std::string_view::npos) {
      counter = std::string(word(line, 1));
      l.counters[counter] = 0;
    } else if (line.starts_with("}")) {
      chain.clear();
      counter.clear();
    } else if (!counter.empty() && line.starts_with("packets ")) {
      l.counters[counter] = number(word(line, 1));
    } else if (chain == "output" || chain == "input") {
      size_t jump = line.find(" jump ");
      size_t handle = line.find("# handle ");
      if (jump == std::string_view::npos || handle == std::string_view::npos) continue;
      std::string target(word(line.substr(jump + 6), 0));
      const std::string suffix = chain == "output" ? "-out" : "-in";
      if (!target.ends_with(suffix)) continue;
      target.resize(target.size() - suffix.size());
      (chain == "output" ? l.outputJumps : l.inputJumps)[target] = number(line.substr(handle + 9));
    }
  }
  return l;
}

}  // namespace nft

namespace {

constexpr uint16_t kProbePort = 1;              // the probe policy's assigned port
constexpr uint32_t kProbeUid = 2147483646;      // per-user probe: a uid no account has
constexpr uint64_t kProbeKey = ~uint64_t{0} - 1;  // its key (cgroup ids never get there)

bool validName(const std::string& name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

bool isCgroup2(const std::string& path) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && static_cast<long>(st.f_type) == CGROUP2_SUPER_MAGIC;
}

constexpr std::string_view kCgroupMount = "/sys/fs/cgroup/";

// nft resolves a cgroupv2 path below /sys/fs/cgroup; the level is the depth
// below the cgroup2 mount (its root is level 0).
Result<std::pair<std::string, unsigned>> cgroupPlace(const std::string& v2Path) {
  if (!v2Path.starts_with(kCgroupMount) || v2Path.size() == kCgroupMount.size()) {
    return fail(Errc::kUnavailable, v2Path + " is not below /sys/fs/cgroup, where nft resolves cgroupv2 paths");
  }
  unsigned level = 0;
  for (std::string p = v2Path;;) {
    const size_t slash = p.rfind('/');
    if (slash == 0 || slash == std::string::npos) break;
    p.resize(slash);
    if (!isCgroup2(p)) break;
    ++level;
  }
  return std::pair{v2Path.substr(kCgroupMount.size()), level};
}

std::string errorText(const char* buffer) {
  std::string text = buffer ? buffer : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  // nft repeats the failed command under the message; the first line says it.
  return text.substr(0, text.find('\n'));
}

// libnftables is loaded on first use (dlopen), not linked: a process that
// never takes the nftables mode (the CLI above all) does not map it.
struct NftLib {
  decltype(&::nft_ctx_new) ctxNew = nullptr;
  decltype(&::nft_ctx_free) ctxFree = nullptr;
  decltype(&::nft_ctx_buffer_output) bufferOutput = nullptr;
  decltype(&::nft_ctx_buffer_error) bufferError = nullptr;
  decltype(&::nft_ctx_output_set_flags) setOutputFlags = nullptr;
  decltype(&::nft_run_cmd_from_buffer) runCmd = nullptr;
  decltype(&::nft_ctx_get_output_buffer) outputBuffer = nullptr;
  decltype(&::nft_ctx_get_error_buffer) errorBuffer = nullptr;
  std::string error;  // why it could not be loaded ("" = loaded)
};

constexpr const char* kNftSoname = "libnftables.so.1";

const NftLib& nftLib() {
  static const NftLib lib = [] {
    NftLib l;
    void* h = ::dlopen(kNftSoname, RTLD_NOW | RTLD_LOCAL);  // never closed: contexts live to the end
    if (h == nullptr) {
      const char* why = ::dlerror();
      l.error = fmt::format("cannot load {}: {}", kNftSoname, why ? why : "unknown error");
      return l;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
      if (fn == nullptr && l.error.empty()) l.error = fmt::format("{} has no symbol {}", kNftSoname, name);
    };
    sym(l.ctxNew, "nft_ctx_new");
    sym(l.ctxFree, "nft_ctx_free");
    sym(l.bufferOutput, "nft_ctx_buffer_output");
    sym(l.bufferError, "nft_ctx_buffer_error");
    sym(l.setOutputFlags, "nft_ctx_output_set_flags");
    sym(l.runCmd, "nft_run_cmd_from_buffer");
    sym(l.outputBuffer, "nft_ctx_get_output_buffer");
    sym(l.errorBuffer, "nft_ctx_get_error_buffer");
    return l;
  }();
  return lib;
}

// Why newCtx() gave nullptr.
std::string ctxError() {
  const NftLib& lib = nftLib();
  return "libnftables: " + (lib.error.empty() ? std::string("cannot create a context") : lib.error);
}

nft_ctx* newCtx() {
  const NftLib& lib = nftLib();
  if (!lib.error.empty()) return nullptr;
  nft_ctx* ctx = lib.ctxNew(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return nullptr;
  lib.bufferOutput(ctx);
  lib.bufferError(ctx);
  lib.setOutputFlags(ctx, NFT_CTX_OUTPUT_HANDLE | NFT_CTX_OUTPUT_NUMERIC_ALL);
  return ctx;
}

Status runOn(nft_ctx* ctx, const std::string& commands) {
  if (nftLib().runCmd(ctx, commands.c_str()) != 0) {
    return fail(Errc::kInternal, "nft: " + errorText(nftLib().errorBuffer(ctx)));
  }
  return {};
}

std::string seen(int result) {
  if (result == 0) return "it succeeded";
  return "it failed with " + errnoName(result);
}

}  // namespace

void NftPolicy::CtxFree::operator()(nft_ctx* ctx) const { nftLib().ctxFree(ctx); }

NftPolicy::~NftPolicy() = default;

Status NftPolicy::run(const std::string& commands) const { return runOn(ctx_.get(), commands); }

Result<std::string> NftPolicy::list(const std::string& command) const {
  if (Status ok = run(command); !ok) return std::unexpected(ok.error());
  const char* out = nftLib().outputBuffer(ctx_.get());
  return std::string(out ? out : "");
}

Result<nft::Listing> NftPolicy::listTable() const {
  Result<std::string> text = list("list table inet " + table_);
  if (!text) return std::unexpected(text.error());
  return nft::parseListing(*text);
}

Result<std::unique_ptr<NftPolicy>> NftPolicy::open(const Options& options) {
  if (!validName(options.name)) return fail(Errc::kInvalidArgument, "bad network policy name \"" + options.name + "\"");
  std::unique_ptr<NftPolicy> np(new NftPolicy());
  np->table_ = nft::tableName(options.name);
  np->root_ = options.cgroupV2Root;
  np->daemonUid_ = ::geteuid();
  np->perRun_ = !options.perUser && !options.cgroupV2Root.empty() && cgroupPlace(options.cgroupV2Root).has_value();
  np->ctx_.reset(newCtx());
  if (!np->ctx_) return fail(Errc::kUnavailable, ctxError());
  auto degradeAll = [&](const std::string& why) {
    for (const HookInfo& h : kHooks) np->mechanisms_.push_back({h.row, false, "nftables: " + why});
    np->mechanisms_.push_back({"net pinning", false, "nftables: " + why});
  };

  std::unique_lock lock(np->mutex_);
  Result<nft::Listing> existing = np->listTable();
  if (!existing || !existing->hasOutput || !existing->hasInput) {
    const std::string& t = np->table_;
    std::string create = fmt::format(
        "add table inet {0}\n"
        "add chain inet {0} output {{ type filter hook output priority 0 ; policy accept ; }}\n"
        "add chain inet {0} input {{ type filter hook input priority 0 ; policy accept ; }}\n",
        t);
    if (!existing || !existing->hasOutput) create += fmt::format("add rule inet {} output ct state established,related accept\n", t);
    if (!existing || !existing->hasInput) create += fmt::format("add rule inet {} input ct state established,related accept\n", t);
    if (Status ok = np->run(create); !ok) {
      degradeAll("cannot create table inet " + t + ": " + ok.error().message);
      return np;
    }
  } else {
    // Runs restricted by an earlier daemon: kept until set() or retainOnly().
    for (const auto& [group, handle] : existing->outputJumps) {
      (void)handle;
      np->groups_[group].foundAtOpen = true;
      uint64_t key = 0;
      auto [end, ec] = std::from_chars(group.data() + 1, group.data() + group.size(), key);
      if (group.starts_with("r") && ec == std::errc() && end == group.data() + group.size()) np->groupOf_[key] = group;
    }
  }
  np->usable_ = true;
  size_t survivors = np->groups_.size();
  lock.unlock();
  np->probe();
  lock.lock();
  np->mechanisms_.push_back({"net pinning", true,
                             fmt::format("nftables: table inet {} stays loaded while the daemon is down: policies "
                                         "outlive it; {} rule set(s) of an earlier daemon found",
                                         np->table_, survivors)});
  return np;
}

void NftPolicy::probe() {
  const std::string how = perRun_ ? fmt::format("nftables (table inet {}, per run: socket cgroupv2)", table_)
                                  : fmt::format("nftables (table inet {}, per user: meta skuid)", table_);
  std::array<ProbeOutcome, kHookCount> out;
  const std::string bindWhy =
      how + ": nftables sees packets, not bind(): an instance can bind (and hold) a port it was not assigned, "
            "e.g. another stopped instance's port; connections to it are refused (see the listen gap row)";
  auto failAll = [&](const std::string& why) {
    for (ProbeOutcome& o : out) o = {false, how + ": the probe could not run: " + why};
  };
  std::string path;
  UniqueFd procs;
  uint64_t key = kProbeKey;
  RunTarget target{kProbeKey, "", kProbeUid};
  bool ready = true;
  if (perRun_) {
    path = root_ + "/.nft-probe";
    removeProbeDir(path);
    Result<CgroupDir> dir = CgroupDir::make(path);
    Result<uint64_t> id = dir ? cgroupIdOf(path) : Result<uint64_t>(std::unexpected(dir.error()));
    Result<UniqueFd> fd = dir ? dir->openFile("cgroup.procs", O_WRONLY) : Result<UniqueFd>(std::unexpected(dir.error()));
    if (!id || !fd) {
      failAll(!id ? id.error().message : fd.error().message);
      ready = false;
    } else {
      key = *id;
      target = RunTarget{key, path, 0};
      procs = std::move(*fd);
    }
  }
  ScopeExit removeDir([&] {
    if (!path.empty()) removeProbeDir(path);
  });
  if (ready) {
    if (Status ok = set(target, InstancePolicy{kProbePort, {}}); !ok) {
      failAll(ok.error().message);
      ready = false;
    }
  }
  ScopeExit clearPolicy([&] { (void)clear(key); });
  if (ready) {
    Status ran = runProbe(perRun_ ? procs.get() : -1, perRun_ ? -1 : int64_t{kProbeUid}, [&](const ProbeReport& r) {
      Result<BlockedCounts> counts = blocked(key);
      int tried = 0;
      std::string escaped;
      for (Attempt a : {kTryConnect4, kTryConnect6, kTryConnectMapped}) {
        if (r.result[a] == kNoFamily) continue;
        ++tried;
        if (r.result[a] != ECONNREFUSED && escaped.empty()) escaped = seen(r.result[a]);
      }
      const uint64_t resets = counts ? counts->connect : 0;
      ProbeOutcome connect{escaped.empty() && resets >= static_cast<uint64_t>(tried),
                           escaped.empty() && resets >= static_cast<uint64_t>(tried)
                               ? how + ": probe: connect() to unlisted 127.0.0.1, ::1 and ::ffff:127.0.0.1 is reset at once (ECONNREFUSED)"
                               : fmt::format("{}: probe: connect() to an unlisted peer: {}, {} of {} reset", how,
                                             escaped.empty() ? "refused" : escaped, resets, tried)};
      out[kConnect4] = out[kConnect6] = connect;
      auto sends = [&](std::initializer_list<Attempt> attempts, const char* what) {
        for (Attempt a : attempts) {
          if (r.result[a] != EPERM && r.result[a] != kNoFamily) {
            return ProbeOutcome{false, fmt::format("{}: probe: sendto() {}, yet {}, not EPERM", how, what, seen(r.result[a]))};
          }
        }
        return ProbeOutcome{true, fmt::format("{}: probe: sendto() {} fails with EPERM (dropped in the output hook)", how, what)};
      };
      out[kSendmsg4] = sends({kTrySend4}, "unlisted 127.0.0.1");
      out[kSendmsg6] = sends({kTrySend6, kTrySendMapped}, "unlisted ::1 and ::ffff:127.0.0.1");
      if (!perRun_) {
        out[kIngress] = {false, how + ": the input hook cannot see which user owns a listener, so a listener on an "
                                      "unassigned port (listen() without bind()) is reachable"};
      } else if (r.listenPort == 0) {
        out[kIngress] = {false, how + ": probe: listen() without bind() failed: " + errnoName(r.result[kTryListen])};
      } else {
        ProbeOutcome o = judgeIngress(*this, key, r.listenPort);
        out[kIngress] = {o.enforced, how + ": " + o.detail};
      }
    });
    if (!ran) failAll(ran.error().message);
  }
  out[kBind4] = {false, bindWhy};
  out[kBind6] = {false, bindWhy};
  for (size_t h = 0; h < kHookCount; ++h) mechanisms_.push_back({kHooks[h].row, out[h].enforced, out[h].detail});
}

bool NftPolicy::enforcing() const {
  if (!usable_) return false;
  for (const MechanismReport& m : mechanisms_) {
    const bool needed = m.name == kHooks[kConnect4].row || m.name == kHooks[kConnect6].row ||
                        m.name == kHooks[kSendmsg4].row || m.name == kHooks[kSendmsg6].row;
    if (needed && !m.enforced) return false;
  }
  return !mechanisms_.empty();
}

Result<std::string> NftPolicy::groupAndMatcher(const RunTarget& target, std::string& matcher) const {
  if (perRun_) {
    if (target.v2Path.empty()) return fail(Errc::kUnavailable, "nftables: this run has no cgroup-v2 directory to match");
    Result<std::pair<std::string, unsigned>> place = cgroupPlace(target.v2Path);
    if (!place) return std::unexpected(place.error());
    matcher = nft::cgroupMatcher(place->first, place->second);
    return "r" + std::to_string(target.cgroupId);
  }
  if (target.uid == 0 || target.uid == daemonUid_) {
    return fail(Errc::kUnavailable, fmt::format("nftables per-user rules for uid {} would restrict the daemon itself", target.uid));
  }
  matcher = nft::uidMatcher(target.uid);
  return "u" + std::to_string(target.uid);
}

Status NftPolicy::rewrite(const std::string& group, const Group& g, const std::string& matcher, bool isNew) {
  std::vector<const InstancePolicy*> policies;
  for (const auto& [key, p] : g.runs) policies.push_back(&p);
  const nft::GroupRules rules = nft::unionOf(policies);
  const std::string& t = table_;
  std::string batch;
  if (isNew) {
    for (const char* c : {"connect", "sendmsg", "ingress"}) batch += fmt::format("add counter inet {} {}-{}\n", t, group, c);
  }
  batch += fmt::format("add chain inet {0} {1}-out\nflush chain inet {0} {1}-out\n", t, group);
  for (const std::string& r : nft::outputRules(group, rules)) batch += fmt::format("add rule inet {} {}-out {}\n", t, group, r);
  if (perRun_) {
    batch += fmt::format("add chain inet {0} {1}-in\nflush chain inet {0} {1}-in\n", t, group);
    for (const std::string& r : nft::inputRules(group, rules)) batch += fmt::format("add rule inet {} {}-in {}\n", t, group, r);
  }
  if (isNew) {
    batch += fmt::format("add rule inet {0} output ct state new {1} jump {2}-out\n", t, matcher, group);
    if (perRun_) batch += fmt::format("add rule inet {0} input ct state new {1} jump {2}-in\n", t, matcher, group);
  }
  return run(batch);
}

Status NftPolicy::set(const RunTarget& target, const InstancePolicy& policy) {
  for (const AllowEntry& entry : policy.allow) {
    if (entry.protocol != 0 && entry.protocol != 6 && entry.protocol != 17) {
      return fail(Errc::kInvalidArgument, "allowlist protocol must be 0 (any), 6 (tcp) or 17 (udp), not " +
                                              std::to_string(entry.protocol));
    }
  }
  std::lock_guard lock(mutex_);
  if (!usable_) return fail(Errc::kUnavailable, "network policy unavailable: the nftables table could not be made");
  std::string matcher;
  Result<std::string> group = groupAndMatcher(target, matcher);
  if (!group) return std::unexpected(group.error());
  auto it = groups_.find(*group);
  const bool isNew = it == groups_.end();
  Group g = isNew ? Group{} : it->second;
  g.runs[target.cgroupId] = policy;
  if (Status ok = rewrite(*group, g, matcher, isNew); !ok) return ok;
  groups_[*group] = std::move(g);
  groupOf_[target.cgroupId] = *group;
  return {};
}

Status NftPolicy::drop(const std::vector<std::string>& groups) {
  if (groups.empty()) return {};
  Result<nft::Listing> now = listTable();
  if (!now) return std::unexpected(now.error());
  const std::string& t = table_;
  std::string batch;
  auto has = [&](const std::string& chain) { return std::find(now->chains.begin(), now->chains.end(), chain) != now->chains.end(); };
  for (const std::string& g : groups) {
    if (auto h = now->outputJumps.find(g); h != now->outputJumps.end()) batch += fmt::format("delete rule inet {} output handle {}\n", t, h->second);
    if (auto h = now->inputJumps.find(g); h != now->inputJumps.end()) batch += fmt::format("delete rule inet {} input handle {}\n", t, h->second);
    for (const char* suffix : {"-out", "-in"}) {
      if (has(g + suffix)) batch += fmt::format("flush chain inet {0} {1}{2}\ndelete chain inet {0} {1}{2}\n", t, g, suffix);
    }
    for (const char* c : {"-connect", "-sendmsg", "-ingress"}) {
      if (now->counters.contains(g + c)) batch += fmt::format("delete counter inet {} {}{}\n", t, g, c);
    }
  }
  return batch.empty() ? Status{} : run(batch);
}

Status NftPolicy::clearLocked(uint64_t key) {
  auto it = groupOf_.find(key);
  if (it == groupOf_.end()) return {};
  const std::string group = it->second;
  Group& g = groups_[group];
  g.runs.erase(key);
  groupOf_.erase(it);
  if (g.runs.empty()) {
    groups_.erase(group);
    return drop({group});
  }
  // Another run of the same user is still there: its rules shrink.
  return rewrite(group, g, "", false);
}

Status NftPolicy::clear(uint64_t key) {
  std::lock_guard lock(mutex_);
  if (!usable_) return {};
  return clearLocked(key);
}

Status NftPolicy::retainOnly(std::span<const uint64_t> keep) {
  std::lock_guard lock(mutex_);
  if (!usable_) return {};
  auto kept = [&](uint64_t key) { return std::find(keep.begin(), keep.end(), key) != keep.end(); };
  std::vector<uint64_t> gone;
  for (const auto& [key, group] : groupOf_) {
    if (!kept(key)) gone.push_back(key);
  }
  for (uint64_t key : gone) {
    if (Status ok = clearLocked(key); !ok) return ok;
  }
  // Per-user rule sets of an earlier daemon that no run has claimed.
  std::vector<std::string> stale;
  for (const auto& [name, g] : groups_) {
    if (g.runs.empty() && !name.starts_with("r")) stale.push_back(name);
  }
  for (const std::string& name : stale) groups_.erase(name);
  return drop(stale);
}

Result<BlockedCounts> NftPolicy::blocked(uint64_t key) const {
  std::lock_guard lock(mutex_);
  auto it = groupOf_.find(key);
  if (!usable_ || it == groupOf_.end()) return BlockedCounts{};
  Result<std::string> text = list("list counters table inet " + table_);
  if (!text) return std::unexpected(text.error());
  const nft::Listing l = nft::parseListing(*text);
  auto get = [&](const char* suffix) {
    auto c = l.counters.find(it->second + suffix);
    return c == l.counters.end() ? uint64_t{0} : c->second;
  };
  return BlockedCounts{0, get("-connect"), get("-sendmsg"), get("-ingress")};
}

Result<std::unordered_map<uint64_t, BlockedCounts>> NftPolicy::blockedAll() const {
  std::lock_guard lock(mutex_);
  std::unordered_map<uint64_t, BlockedCounts> out;
  if (!usable_ || groupOf_.empty()) return out;
  Result<std::string> text = list("list counters table inet " + table_);
  if (!text) return std::unexpected(text.error());
  const nft::Listing l = nft::parseListing(*text);
  for (const auto& [key, group] : groupOf_) {
    auto get = [&](const char* suffix) {
      auto c = l.counters.find(group + suffix);
      return c == l.counters.end() ? uint64_t{0} : c->second;
    };
    out[key] = BlockedCounts{0, get("-connect"), get("-sendmsg"), get("-ingress")};
  }
  return out;
}

std::vector<uint64_t> NftPolicy::policed() const {
  std::lock_guard lock(mutex_);
  std::vector<uint64_t> keys;
  for (const auto& [key, group] : groupOf_) keys.push_back(key);
  return keys;
}

Status NftPolicy::removeTable(const std::string& name) {
  if (!validName(name)) return fail(Errc::kInvalidArgument, "bad network policy name \"" + name + "\"");
  std::unique_ptr<nft_ctx, CtxFree> ctx(newCtx());
  if (!ctx) return fail(Errc::kUnavailable, ctxError());
  const std::string table = nft::tableName(name);
  if (Status listed = runOn(ctx.get(), "list table inet " + table); !listed) return {};  // not there
  return runOn(ctx.get(), "delete table inet " + table);
}

Status removeAll(const std::string& name) {
  Status pins = NetPolicy::removePins(name);
  Status table = NftPolicy::removeTable(name);
  return !pins ? pins : table;
}

}  // namespace hv::os::netpolicy
