// Small string helpers shared by every module. Pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hv {

std::vector<std::string> split(std::string_view s, char sep);
bool startsWith(std::string_view s, std::string_view prefix);
// Replaces every occurrence of `from` in `s` with `to`.
std::string replaceAll(std::string s, std::string_view from, std::string_view to);
// Parses a whole decimal integer in [lo, hi]; false on any junk or overflow.
bool parseInt(std::string_view s, long long lo, long long hi, long long* out);

}  // namespace hv
