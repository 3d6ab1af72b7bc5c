#include "api/wire/wire.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include "base/strings.h"

namespace hv::api::wire {

namespace json = boost::json;

std::string errorBody(std::string_view code, std::string_view message) {
  json::object inner{{"code", code}, {"message", message}};
  return json::serialize(json::object{{"error", std::move(inner)}});
}

std::optional<std::string> errorMessage(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::value* err = v.as_object().if_contains("error");
  if (!err || !err->is_object()) return std::nullopt;
  const json::value* msg = err->as_object().if_contains("message");
  if (!msg || !msg->is_string()) return std::nullopt;
  return std::string(msg->as_string());
}

int httpStatusOf(Errc code) {
  switch (code) {
    case Errc::kInvalidArgument: return 400;
    case Errc::kUnauthorized: return 401;
    case Errc::kForbidden: return 403;
    case Errc::kNotFound: return 404;
    case Errc::kConflict: return 409;
    case Errc::kExhausted: return 409;
    case Errc::kUnavailable: return 503;
    case Errc::kInternal: return 500;
  }
  return 500;
}

Result<int64_t> parseSize(std::string_view text) {
  auto bad = [&] {
    return fail(Errc::kInvalidArgument,
                fmt::format("size '{}' is not a number of bytes with an optional K, M, G or T "
                            "suffix (e.g. 256M)", text));
  };
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  long long n = 0;
  if (digits == 0 || !parseInt(text.substr(0, digits), 0, INT64_MAX, &n)) return bad();
  std::string unit(text.substr(digits));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.ends_with("IB")) unit.resize(unit.size() - 2);
  else if (unit.size() > 1 && unit.ends_with("B")) unit.pop_back();
  int shift = 0;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "K") shift = 10;
  else if (unit == "M") shift = 20;
  else if (unit == "G") shift = 30;
  else if (unit == "T") shift = 40;
  else return bad();
  if (shift > 0 && n > (INT64_MAX >> shift)) return bad();
  return static_cast<int64_t>(n) << shift;
}

std::string formatSize(int64_t bytes) {
  static constexpr std::pair<int, char> kUnits[] = {{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
  if (bytes <= 0) return std::to_string(bytes);
  for (auto [shift, unit] : kUnits) {
    if (bytes % (int64_t{1} << shift) == 0) return fmt::format("{}{}", bytes >> shift, unit);
  }
  return std::to_string(bytes);
}

}  // namespace hv::api::wire
