// Human output of the CLI: the instance table of `ls` and the key: value
// view of `status`. Pure: JSON in, text out.
#pragma once

#include <boost/json/value.hpp>

#include <string>

namespace hv::cli {

std::string renderTable(const boost::json::array& instances);
std::string renderStatus(const boost::json::object& instance);
// 3725 → "1h2m", 59 → "59s"
std::string formatDuration(int64_t seconds);

}  // namespace hv::cli
