// api/wire: the little the CLI and the daemon must agree on byte for byte:
// the error body, byte sizes ("256M"), and the HTTP status of each error code.
// Pure functions; safe from any thread.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace hv::api::wire {

// {"error":{"code":"not_found","message":"no instance named 'x'"}}
std::string errorBody(std::string_view code, std::string_view message);
// The message of an error body, or nullopt if `body` is not one.
std::optional<std::string> errorMessage(std::string_view body);

int httpStatusOf(Errc code);

// "1048576", "512K", "256M", "1G", "2GiB", "64MB" → bytes (binary units).
Result<int64_t> parseSize(std::string_view text);
// 268435456 → "256M" (exact binary unit if one fits, else bytes).
std::string formatSize(int64_t bytes);

}  // namespace hv::api::wire
