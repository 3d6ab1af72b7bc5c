// ApiClient: the CLI's synchronous HTTP client for the daemon's unix socket.
// One request per call, on its own connection; 60 s limit per call (a stop
// may wait out a grace period). Single-threaded use.
#pragma once

#include <cstdio>
#include <string>

#include "base/result.h"

namespace hv::cli {

struct ApiResponse {
  int status = 0;
  std::string body;
};

class ApiClient {
 public:
  // `token` ("" = none) is sent as a Bearer token: HOSTVISOR_TOKEN.
  ApiClient(std::string socketPath, std::string token)
      : socketPath_(std::move(socketPath)), token_(std::move(token)) {}

  // kUnavailable if the daemon cannot be reached (the message says where and why).
  Result<ApiResponse> call(std::string_view method, const std::string& target,
                           const std::string& body = "");

  // The same, but a successful (< 400) answer's body goes to `out` as it
  // arrives, through one 64 KiB buffer: `ls --json` prints the daemon's
  // bytes without holding them. An error answer's body is returned.
  Result<ApiResponse> stream(std::string_view method, const std::string& target, std::FILE* out);

  const std::string& socketPath() const { return socketPath_; }

 private:
  std::string socketPath_;
  std::string token_;
};

}  // namespace hv::cli
