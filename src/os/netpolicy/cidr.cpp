#include "os/netpolicy/cidr.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <cstring>

namespace hv::os::netpolicy {
namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void clearHostBits(Cidr& c) {
  const size_t bytes = c.v6 ? 16 : 4;
  for (size_t i = 0; i < bytes; ++i) {
    const int keep = static_cast<int>(c.prefixLen) - static_cast<int>(i * 8);
    if (keep >= 8) continue;
    c.addr[i] &= keep <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
  }
}

bool isV4Mapped(const Cidr& c) {
  return c.v6 && c.prefixLen >= 96 && std::memcmp(c.addr.data(), kV4MappedPrefix.data(), 12) == 0;
}

}  // namespace

Cidr unmapped(const Cidr& c) {
  if (!isV4Mapped(c)) return c;
  Cidr v4;
  std::memcpy(v4.addr.data(), c.addr.data() + 12, 4);
  v4.prefixLen = static_cast<uint8_t>(c.prefixLen - 96);
  return v4;
}

bool isLoopbackOnly(const Cidr& c) {
  if (!c.v6) return c.prefixLen >= 8 && c.addr[0] == 127;
  static constexpr std::array<uint8_t, 16> kLoopback6{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return c.prefixLen == 128 && c.addr == kLoopback6;
}

bool validHostName(std::string_view host) {
  if (host.ends_with('.')) host.remove_suffix(1);
  if (host.empty() || host.size() > 253) return false;
  size_t start = 0;
  bool lastAllDigits = false;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    if (dot == std::string_view::npos) dot = host.size();
    std::string_view label = host.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    lastAllDigits = true;
    for (char ch : label) {
      const bool digit = ch >= '0' && ch <= '9';
      const bool letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
      if (!digit && !letter && ch != '-') return false;
      if (!digit) lastAllDigits = false;
    }
    start = dot + 1;
  }
  return !lastAllDigits;
}

Result<EgressEntry> parseEgressEntry(std::string_view text) {
  Result<AllowEntry> entry = parseAllowEntry(text);
  if (entry) return EgressEntry{*entry};
  const size_t colon = text.rfind(':');
  // Anything with brackets, more than one colon, a slash or a leading digit
  // and only digits and dots is meant as an address: keep its error.
  if (text.starts_with('[') || colon == std::string_view::npos || text.find(':') != colon) {
    return std::unexpected(entry.error());
  }
  std::string_view host = text.substr(0, colon);
  if (host.find('/') != std::string_view::npos ||
      host.find_first_not_of("0123456789.") == std::string_view::npos) {
    return std::unexpected(entry.error());
  }
  if (!validHostName(host)) {
    return fail(Errc::kInvalidArgument,
                "\"" + std::string(host) + "\" is neither an IP address nor a valid host name (letters, digits, "
                "'-' and dots; labels of 1-63 characters, 253 in all)");
  }
  HostPort hp;
  std::string_view port = text.substr(colon + 1);
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), hp.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size()) {
    return fail(Errc::kInvalidArgument, "bad port in \"" + std::string(text) + "\"");
  }
  hp.host.assign(host);
  if (hp.host.ends_with('.')) hp.host.pop_back();
  for (char& ch : hp.host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return EgressEntry{hp};
}

Result<Cidr> Cidr::parse(std::string_view text) {
  const size_t slash = text.find('/');
  const std::string address(text.substr(0, slash));
  Cidr c;
  c.v6 = address.find(':') != std::string::npos;
  if (::inet_pton(c.v6 ? AF_INET6 : AF_INET, address.c_str(), c.addr.data()) != 1) {
    return fail(Errc::kInvalidArgument, "not an IP address or CIDR: \"" + std::string(text) + "\"");
  }
  const unsigned maxLen = c.v6 ? 128 : 32;
  unsigned len = maxLen;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || len > maxLen) {
      return fail(Errc::kInvalidArgument, "bad prefix length in \"" + std::string(text) + "\"");
    }
  }
  c.prefixLen = static_cast<uint8_t>(len);
  clearHostBits(c);
  return c;
}

std::string Cidr::toString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, addr.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefixLen);
}

Result<AllowEntry> parseAllowEntry(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const size_t close = text.find("]:");
    if (close == std::string_view::npos) {
      return fail(Errc::kInvalidArgument, "expected [IPV6]:PORT in \"" + std::string(text) + "\"");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return fail(Errc::kInvalidArgument, "expected CIDR:PORT or [IPV6]:PORT in \"" + std::string(text) + "\"");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  AllowEntry entry;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), entry.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size()) {
    return fail(Errc::kInvalidArgument, "bad port in \"" + std::string(text) + "\"");
  }
  Result<Cidr> prefix = Cidr::parse(host);
  if (!prefix) return std::unexpected(prefix.error());
  entry.prefix = *prefix;
  return entry;
}

struct hv_allow_key allowKey(uint64_t cgroupId, const AllowEntry& entry) {
  const Cidr c = unmapped(entry.prefix);
  struct hv_allow_key key {};
  key.prefixlen = HV_ALLOW_FIXED_BITS + c.prefixLen;
  key.protocol = entry.protocol;
  if (c.v6) {
    key.family = isLoopbackOnly(c) ? HV_FAMILY_LOOP6 : HV_FAMILY_V6;
  } else {
    key.family = isLoopbackOnly(c) ? HV_FAMILY_LOOP4 : HV_FAMILY_V4;
  }
  key.port = entry.port;
  key.cgroup_id = cgroupId;
  std::memcpy(key.addr, c.addr.data(), c.v6 ? 16 : 4);
  return key;
}

}  // namespace hv::os::netpolicy
