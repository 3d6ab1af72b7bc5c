// The JSON-encoded columns of `instances` (private to src/store).
//
// args is a JSON array of strings; env a JSON array of [name, value] string
// pairs, kept in the order given. Decoding a malformed cell returns an Error,
// never throws. Bytes that are not valid UTF-8 round-trip unchanged, because
// Unix arguments and environment values need not be UTF-8.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace hv::store {

using EnvList = std::vector<std::pair<std::string, std::string>>;

std::string encodeArgs(const std::vector<std::string>& args);
std::string encodeEnv(const EnvList& env);
Result<std::vector<std::string>> decodeArgs(std::string_view json);
Result<EnvList> decodeEnv(std::string_view json);

}  // namespace hv::store
