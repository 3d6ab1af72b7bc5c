// Cidr and AllowEntry: the allowlist's vocabulary, and how an entry becomes
// keys of the BPF allowlist trie (netpolicy_abi.h). Pure values and
// functions: no system calls, safe from any thread.
//
// Address rules (the programs in netpolicy.bpf.c apply the same ones):
// - a v4-mapped IPv6 prefix (::ffff:a.b.c.d/96+n) is an IPv4 prefix, and a
//   v4-mapped destination is checked as IPv4 (the kernel sends it over IPv4),
//   so "::/0" never opens IPv4, nor "0.0.0.0/0" IPv6;
// - loopback (127.0.0.0/8, ::1) is reached only through entries that lie
//   wholly inside it: "0.0.0.0/0:443" opens port 443 of the world, not of
//   the host's own services (0.0.0.0 and :: as destinations mean loopback,
//   inet_connect(7): the kernel routes them to the local host).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "os/netpolicy/netpolicy_abi.h"

namespace hv::os::netpolicy {

struct Cidr {
  bool v6 = false;
  std::array<uint8_t, 16> addr{};  // network order; IPv4 in the first 4 bytes
  uint8_t prefixLen = 0;           // <= 32 for IPv4, <= 128 for IPv6

  // "10.0.0.0/8", "127.0.0.1" (= /32), "::1" (= /128), "2001:db8::/32".
  // Host bits beyond the prefix are cleared ("10.1.2.3/8" is 10.0.0.0/8).
  static Result<Cidr> parse(std::string_view text);
  // Canonical text: "10.0.0.0/8", "::1/128".
  std::string toString() const;
  bool operator==(const Cidr&) const = default;
};

struct AllowEntry {
  Cidr prefix;
  uint16_t port = 0;     // 0 = any port
  uint8_t protocol = 0;  // 0 = any, 6 = tcp, 17 = udp

  bool operator==(const AllowEntry&) const = default;
};

// "CIDR:PORT" or "[IPV6-CIDR]:PORT" ("10.0.0.0/8:443", "[::1]:8080",
// "127.0.0.1:5432"); any protocol. Host names are the daemon's to resolve:
// they fail here with kInvalidArgument.
Result<AllowEntry> parseAllowEntry(std::string_view text);

// An egress entry naming a host: "db.example.com:5432". Resolved by the
// daemon (src/supervisor/egress.h); each address becomes an AllowEntry.
struct HostPort {
  std::string host;  // lower case, no trailing dot
  uint16_t port = 0;
  bool operator==(const HostPort&) const = default;
};

// A host name as DNS and /etc/hosts know it (RFC 1123): labels of 1-63
// letters, digits and '-' (not first or last), joined by dots, 253 at most,
// an optional trailing dot; the last label not all digits (so "10.0.0.300"
// is a bad address, not a name).
bool validHostName(std::string_view host);

// What an account's egress entry may be: parseAllowEntry's forms, or
// "HOST:PORT" with validHostName(HOST). kInvalidArgument otherwise, saying
// why.
using EgressEntry = std::variant<AllowEntry, HostPort>;
Result<EgressEntry> parseEgressEntry(std::string_view text);

// A v4-mapped IPv6 prefix (::ffff:a.b.c.d/96+n) as the IPv4 prefix it
// stands for; any other prefix unchanged.
Cidr unmapped(const Cidr& c);
// Wholly inside loopback (127.0.0.0/8 or ::1): only such entries open the
// host's own services (see the address rules above). Expects unmapped().
bool isLoopbackOnly(const Cidr& c);

// The trie key (netpolicy_abi.h) that makes `entry` allow traffic for the
// run cgroup `cgroupId`.
struct hv_allow_key allowKey(uint64_t cgroupId, const AllowEntry& entry);

}  // namespace hv::os::netpolicy
