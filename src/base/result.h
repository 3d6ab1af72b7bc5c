// Result<T> and Error: how every module reports failure across its boundary.
//
// An Error carries a stable machine code (mapped to HTTP statuses and CLI exit
// codes by the api), a human message that names the problem, and, for system
// calls, the step that failed and its errno. No exceptions cross modules.
// Plain value types: safe from any thread.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace hv {

enum class Errc {
  kInvalidArgument,  // the caller sent something malformed or out of range
  kNotFound,         // the named thing does not exist (or is not the caller's)
  kConflict,         // it exists already, or its state forbids the action
  kExhausted,        // a pool or quota has nothing left
  kForbidden,        // authenticated, but not allowed
  kUnauthorized,     // no or bad credentials
  kUnavailable,      // a dependency is down; retry may succeed
  kInternal,         // a bug or an unexpected system failure
};

// The wire name of a code: "invalid_argument", "not_found", ...
std::string_view errcName(Errc code);

struct Error {
  Errc code = Errc::kInternal;
  std::string message;
  std::string step;   // the system step that failed ("chdir", "exec", ...), if any
  int sysErrno = 0;   // its errno, if any

  static Error make(Errc code, std::string message) {
    return Error{code, std::move(message), {}, 0};
  }
  // "STEP failed: strerror(err)" with code kInternal unless told otherwise.
  static Error fromErrno(std::string step, int err, Errc code = Errc::kInternal);
  // Prefix the message with context: "open database: <message>".
  Error& context(std::string_view what);
};

template <class T>
using Result = std::expected<T, Error>;

using Status = std::expected<void, Error>;

inline std::unexpected<Error> fail(Errc code, std::string message) {
  return std::unexpected(Error::make(code, std::move(message)));
}
inline std::unexpected<Error> failErrno(std::string step, int err, Errc code = Errc::kInternal) {
  return std::unexpected(Error::fromErrno(std::move(step), err, code));
}

}  // namespace hv
