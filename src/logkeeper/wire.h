// Messages between the daemon and its log keeper: one datagram of a
// SOCK_SEQPACKET unix socket each (message boundaries kept, descriptors
// passed with SCM_RIGHTS). A message is text: a first line naming it, then
// "key=value" lines; values are single-line (names and paths here never hold
// a newline: instance names are [a-z0-9-], paths come from the daemon).
//
//   daemon → keeper                         keeper → daemon
//   config  max_size keep                   ok | error message
//   attach  name path     + read, write end ok | error message
//   detach  name                            ok
//   flush   name                            ok, once what the pipe held is in the file
//   fetch                                   pipe name path + read, write end … end
//   stats                                   stats name=written,lines,bytes … (several) end
//   quit                                    ok, then it drains and exits
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace hv::logkeeper {

struct Message {
  std::string kind;
  std::vector<std::pair<std::string, std::string>> fields;
  std::vector<UniqueFd> fds;

  Message() = default;
  explicit Message(std::string k) : kind(std::move(k)) {}
  Message& with(std::string key, std::string value) & {
    fields.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  Message&& with(std::string key, std::string value) && {
    fields.emplace_back(std::move(key), std::move(value));
    return std::move(*this);
  }
  // "" when absent.
  std::string_view get(std::string_view key) const;
};

// Largest message either side sends; stats are split to stay below it.
inline constexpr size_t kMaxMessage = 64 * 1024;
inline constexpr size_t kMaxFds = 2;

Status send(int socket, const Message& message);
// Blocks until a message arrives. kNotFound at EOF (the peer closed).
Result<Message> receive(int socket);

}  // namespace hv::logkeeper
