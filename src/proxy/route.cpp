#include "proxy/route.h"

#include <fmt/format.h>

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>

#include "base/strings.h"

namespace hv::proxy {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses "ADDR" or "ADDR/LEN" into the 128-bit form.
Result<std::pair<std::array<uint8_t, 16>, uint8_t>> parseCidr(std::string_view text) {
  const size_t slash = text.find('/');
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(std::string(text.substr(0, slash)), ec);
  if (ec) return fail(Errc::kInvalidArgument, fmt::format("'{}' is not an IP address", text.substr(0, slash)));
  const bool v4 = address.is_v4();
  const long long maxLen = v4 ? 32 : 128;
  long long len = maxLen;
  if (slash != std::string_view::npos && !parseInt(text.substr(slash + 1), 0, maxLen, &len))
    return fail(Errc::kInvalidArgument, fmt::format("'{}' has a bad prefix length (0-{})", text, maxLen));
  auto bytes = v4 ? boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, address.to_v4()).to_bytes()
                  : address.to_v6().to_bytes();
  const auto prefix = static_cast<uint8_t>(v4 ? len + 96 : len);
  std::array<uint8_t, 16> network{};
  for (size_t bit = 0; bit < prefix; ++bit) network[bit / 8] |= bytes[bit / 8] & (0x80 >> (bit % 8));
  return std::pair{network, prefix};
}

}  // namespace

Result<CidrRule> CidrRule::parse(std::string_view text) {
  text = trim(text);
  const size_t space = text.find_first_of(" \t");
  const std::string verb = lower(text.substr(0, space));
  if (verb != "allow" && verb != "deny")
    return fail(Errc::kInvalidArgument,
                fmt::format("access rule '{}' must start with 'allow' or 'deny'", text));
  const std::string_view what = space == std::string_view::npos ? "" : trim(text.substr(space));
  if (what.empty())
    return fail(Errc::kInvalidArgument, fmt::format("access rule '{}' names no address (try 'all')", text));
  CidrRule rule;
  rule.allow = verb == "allow";
  if (lower(what) == "all") return rule;
  auto cidr = parseCidr(what);
  if (!cidr) return std::unexpected(cidr.error().context(fmt::format("access rule '{}'", text)));
  rule.network = cidr->first;
  rule.prefixLength = cidr->second;
  return rule;
}

bool CidrRule::matches(const std::array<uint8_t, 16>& address) const {
  const size_t full = prefixLength / 8;
  if (!std::equal(network.begin(), network.begin() + full, address.begin())) return false;
  const unsigned rest = prefixLength % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (address[full] & mask) == network[full];
}

std::string CidrRule::toString() const {
  const char* verb = allow ? "allow" : "deny";
  if (prefixLength == 0) return fmt::format("{} all", verb);
  const boost::asio::ip::address_v6 v6(network);
  if (v6.is_v4_mapped() && prefixLength >= 96)
    return fmt::format("{} {}/{}", verb,
                       boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string(),
                       prefixLength - 96);
  return fmt::format("{} {}/{}", verb, v6.to_string(), prefixLength);
}

bool accessAllowed(const std::vector<CidrRule>& rules, const std::array<uint8_t, 16>& address) {
  for (const CidrRule& rule : rules)
    if (rule.matches(address)) return rule.allow;
  return true;
}

}  // namespace hv::proxy
