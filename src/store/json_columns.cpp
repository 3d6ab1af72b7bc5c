#include "store/json_columns.h"

#include <boost/json.hpp>

namespace hv::store {
namespace {

namespace json = boost::json;

Result<json::array> parseArray(std::string_view text) {
  json::parse_options options;
  options.allow_invalid_utf8 = true;
  boost::system::error_code ec;
  json::value value = json::parse(text, ec, {}, options);
  if (ec) return fail(Errc::kInternal, "malformed JSON: " + ec.message());
  if (!value.is_array()) return fail(Errc::kInternal, "expected a JSON array");
  return std::move(value.as_array());
}

Result<std::string> stringAt(const json::array& array, size_t index) {
  const json::string* s = array.at(index).if_string();
  if (s == nullptr) return fail(Errc::kInternal, "expected a JSON string");
  return std::string(s->data(), s->size());
}

}  // namespace

std::string encodeArgs(const std::vector<std::string>& args) {
  json::array array;
  for (const auto& arg : args) array.emplace_back(json::string_view(arg.data(), arg.size()));
  return json::serialize(array);
}

std::string encodeEnv(const EnvList& env) {
  json::array array;
  for (const auto& [name, value] : env) {
    array.push_back(json::array{json::string_view(name.data(), name.size()),
                                json::string_view(value.data(), value.size())});
  }
  return json::serialize(array);
}

Result<std::vector<std::string>> decodeArgs(std::string_view text) {
  auto array = parseArray(text);
  if (!array) return std::unexpected(std::move(array.error()));
  std::vector<std::string> args;
  args.reserve(array->size());
  for (size_t i = 0; i < array->size(); ++i) {
    auto arg = stringAt(*array, i);
    if (!arg) return std::unexpected(std::move(arg.error()));
    args.push_back(std::move(*arg));
  }
  return args;
}

Result<EnvList> decodeEnv(std::string_view text) {
  auto array = parseArray(text);
  if (!array) return std::unexpected(std::move(array.error()));
  EnvList env;
  env.reserve(array->size());
  for (const json::value& item : *array) {
    const json::array* pair = item.if_array();
    if (pair == nullptr || pair->size() != 2) {
      return fail(Errc::kInternal, "expected a [name, value] pair");
    }
    auto name = stringAt(*pair, 0);
    if (!name) return std::unexpected(std::move(name.error()));
    auto value = stringAt(*pair, 1);
    if (!value) return std::unexpected(std::move(value.error()));
    env.emplace_back(std::move(*name), std::move(*value));
  }
  return env;
}

}  // namespace hv::store
