#include "base/result.h"

#include <cstring>

namespace hv {

std::string_view errcName(Errc code) {
  switch (code) {
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kNotFound: return "not_found";
    case Errc::kConflict: return "conflict";
    case Errc::kExhausted: return "exhausted";
    case Errc::kForbidden: return "forbidden";
    case Errc::kUnauthorized: return "unauthorized";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kInternal: return "internal";
  }
  return "internal";
}

Error Error::fromErrno(std::string step, int err, Errc code) {
  Error e;
  e.code = code;
  e.message = step + " failed: " + std::strerror(err);
  e.step = std::move(step);
  e.sysErrno = err;
  return e;
}

Error& Error::context(std::string_view what) {
  message.insert(0, std::string(what) + ": ");
  return *this;
}

}  // namespace hv
