// NetPolicy's map operations (bpf(2) BPF_MAP_*_ELEM through libbpf's thin
// wrappers, which return -errno and set errno). Loading and attaching live
// in netpolicy_loader.cpp, the start-up probe in netpolicy_probe.cpp.
#include "os/netpolicy/netpolicy.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace hv::os::netpolicy {
namespace {

Errc errcOf(int err) {
  return err == E2BIG || err == ENOMEM || err == ENOSPC ? Errc::kExhausted : Errc::kInternal;
}

bool sameKey(const hv_allow_key& a, const hv_allow_key& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Every key of a map, read before anything is deleted (deleting the key
// get_next_key stands on restarts a hash walk).
template <class Key>
Result<std::vector<Key>> allKeys(int fd, const char* what) {
  std::vector<Key> keys;
  Key key{};
  const Key* prev = nullptr;
  while (true) {
    Key next{};
    if (bpf_map_get_next_key(fd, prev, &next) != 0) {
      if (errno == ENOENT) return keys;
      return failErrno(std::string("iterate map ") + what, errno);
    }
    keys.push_back(next);
    key = next;
    prev = &key;
    if (keys.size() > 2 * HV_MAX_ALLOW_ENTRIES) return fail(Errc::kInternal, std::string("map ") + what + " loops");
  }
}

Status deleteKey(int fd, const void* key, const char* what) {
  if (bpf_map_delete_elem(fd, key) != 0 && errno != ENOENT) return failErrno(std::string("delete from ") + what, errno);
  return {};
}

}  // namespace

Result<uint64_t> cgroupIdOf(const std::string& v2Path) {
  // struct file_handle with room for the 8-byte kernfs id (FILEID_KERNFS).
  struct {
    struct file_handle head;
    unsigned char bytes[16];
  } handle{};
  handle.head.handle_bytes = sizeof handle.bytes;
  int mountId = 0;
  if (::name_to_handle_at(AT_FDCWD, v2Path.c_str(), &handle.head, &mountId, 0) == 0 &&
      handle.head.handle_bytes == sizeof(uint64_t)) {
    uint64_t id = 0;
    std::memcpy(&id, handle.head.f_handle, sizeof id);
    return id;
  }
  struct stat st {};
  if (::stat(v2Path.c_str(), &st) != 0) {
    return failErrno("stat " + v2Path, errno, errno == ENOENT ? Errc::kNotFound : Errc::kInternal);
  }
  return static_cast<uint64_t>(st.st_ino);
}

NetPolicy::NetPolicy(NetPolicy&&) noexcept = default;
NetPolicy& NetPolicy::operator=(NetPolicy&&) noexcept = default;
NetPolicy::~NetPolicy() = default;

bool NetPolicy::enforcing() const {
  return usable() && std::all_of(mechanisms_.begin(), mechanisms_.end(), [](const MechanismReport& m) { return m.enforced; });
}

Status NetPolicy::set(uint64_t cgroupId, const InstancePolicy& policy) {
  if (!usable()) return fail(Errc::kUnavailable, "network policy unavailable: BPF programs not loaded");
  std::vector<hv_allow_key> keys;
  keys.reserve(policy.allow.size());
  for (const AllowEntry& entry : policy.allow) {
    if (entry.protocol != 0 && entry.protocol != 6 && entry.protocol != 17) {
      return fail(Errc::kInvalidArgument, "allowlist protocol must be 0 (any), 6 (tcp) or 17 (udp), not " +
                                              std::to_string(entry.protocol));
    }
    keys.push_back(allowKey(cgroupId, entry));
  }
  // New entries first, then the policy, then stale entries out: a change
  // never opens what neither the old nor the new policy allows.
  const uint8_t one = 1;
  for (const hv_allow_key& key : keys) {
    if (bpf_map_update_elem(allowFd_, &key, &one, BPF_ANY) != 0) {
      return failErrno("add allowlist entry", errno, errcOf(errno));
    }
  }
  const hv_blocked zero{};
  if (bpf_map_update_elem(blockedFd_, &cgroupId, &zero, BPF_NOEXIST) != 0 && errno != EEXIST) {
    return failErrno("add blocked counters", errno, errcOf(errno));
  }
  hv_policy value{};
  value.listen_port = policy.listenPort;
  if (bpf_map_update_elem(policiesFd_, &cgroupId, &value, BPF_ANY) != 0) {
    return failErrno("add policy", errno, errcOf(errno));
  }
  return clearAllow(cgroupId, keys);
}

Status NetPolicy::clearAllow(uint64_t cgroupId, const std::vector<hv_allow_key>& keep) {
  Result<std::vector<hv_allow_key>> keys = allKeys<hv_allow_key>(allowFd_, "allow");
  if (!keys) return std::unexpected(keys.error());
  for (const hv_allow_key& key : *keys) {
    if (key.cgroup_id != cgroupId) continue;
    if (std::any_of(keep.begin(), keep.end(), [&](const hv_allow_key& k) { return sameKey(k, key); })) continue;
    if (Status ok = deleteKey(allowFd_, &key, "allow"); !ok) return ok;
  }
  return {};
}

Status NetPolicy::clear(uint64_t cgroupId) {
  if (!usable()) return {};
  // The policy first: without it the programs no longer consult the rest.
  if (Status ok = deleteKey(policiesFd_, &cgroupId, "policies"); !ok) return ok;
  if (Status ok = clearAllow(cgroupId, {}); !ok) return ok;
  return deleteKey(blockedFd_, &cgroupId, "blocked");
}

Status NetPolicy::retainOnly(std::span<const uint64_t> keep) {
  if (!usable()) return {};
  auto kept = [&](uint64_t id) { return std::find(keep.begin(), keep.end(), id) != keep.end(); };
  for (int fd : {policiesFd_, blockedFd_}) {
    Result<std::vector<uint64_t>> ids = allKeys<uint64_t>(fd, "policies/blocked");
    if (!ids) return std::unexpected(ids.error());
    for (uint64_t id : *ids) {
      if (kept(id)) continue;
      if (Status ok = deleteKey(fd, &id, "policies/blocked"); !ok) return ok;
    }
  }
  Result<std::vector<hv_allow_key>> keys = allKeys<hv_allow_key>(allowFd_, "allow");
  if (!keys) return std::unexpected(keys.error());
  for (const hv_allow_key& key : *keys) {
    if (kept(key.cgroup_id)) continue;
    if (Status ok = deleteKey(allowFd_, &key, "allow"); !ok) return ok;
  }
  return {};
}

Result<std::vector<uint64_t>> NetPolicy::policed() const {
  if (!usable()) return std::vector<uint64_t>{};
  return allKeys<uint64_t>(policiesFd_, "policies");
}

Result<BlockedCounts> NetPolicy::blocked(uint64_t cgroupId) const {
  if (!usable()) return BlockedCounts{};
  hv_blocked value{};
  if (bpf_map_lookup_elem(blockedFd_, &cgroupId, &value) != 0) {
    if (errno == ENOENT) return BlockedCounts{};
    return failErrno("read blocked counters", errno);
  }
  return BlockedCounts{value.bind, value.connect, value.sendmsg, value.ingress};
}

// BPF_MAP_LOOKUP_BATCH (Linux 5.6): a few syscalls for the whole map instead
// of one lookup per instance. The batch position of a hash map is a bucket
// index; ENOENT says the last batch was returned.
Result<std::unordered_map<uint64_t, BlockedCounts>> NetPolicy::blockedAllBatched(uint32_t batch) const {
  std::unordered_map<uint64_t, BlockedCounts> out;
  if (!usable()) return out;
  batch = std::max(batch, 1u);
  std::vector<uint64_t> keys(batch);
  std::vector<hv_blocked> values(batch);
  uint64_t position = 0, next = 0;  // wider than the 4-byte bucket index the kernel uses
  for (bool first = true;; first = false) {
    uint32_t count = batch;
    const int rc = bpf_map_lookup_batch(blockedFd_, first ? nullptr : &position, &next, keys.data(), values.data(),
                                        &count, nullptr);
    const int err = rc < 0 ? errno : 0;
    if (rc < 0 && err != ENOENT) {
      if (err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP)
        return fail(Errc::kUnavailable, "this kernel has no batch read of BPF maps");
      return failErrno("read blocked counters", err);
    }
    for (uint32_t i = 0; i < count; ++i) {
      const hv_blocked& v = values[i];
      out[keys[i]] = BlockedCounts{v.bind, v.connect, v.sendmsg, v.ingress};
    }
    if (err == ENOENT) return out;
    position = next;
  }
}

}  // namespace hv::os::netpolicy
