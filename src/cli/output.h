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
// A program's log bytes for stdout: on a terminal, control characters are
// shown (printable), not obeyed; into a pipe or file, the bytes as they are.
std::string logForStdout(std::string_view bytes);

}  // namespace hv::cli
