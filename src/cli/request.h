// Private to src/cli: sending one request to the daemon and turning the
// outcome into the process exit code (see commands.h).
#pragma once

#include <fmt/format.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

#include "api/wire/wire.h"
#include "base/paths.h"
#include "cli/api_client.h"
#include "cli/commands.h"

namespace hv::cli {

constexpr int kRefused = 1;
constexpr int kUsage = 2;
constexpr int kUnreachable = 3;

inline int printError(std::string_view message, int code) {
  std::cerr << "hostvisor: error: " << message << "\n";
  return code;
}

inline ApiClient clientFor(const GlobalOptions& global) {
  const char* token = std::getenv("HOSTVISOR_TOKEN");
  return ApiClient(socketPath(global.dataDir.empty() ? defaultDataDir() : global.dataDir),
                   token ? token : "");
}

// Sends one request; on success hands the body to `onBody`, else prints the
// daemon's message and returns the exit code.
template <class F>
int request(const GlobalOptions& global, std::string_view method, const std::string& target,
            const std::string& body, F&& onBody) {
  auto res = clientFor(global).call(method, target, body);
  if (!res) return printError(res.error().message, kUnreachable);
  if (res->status >= 400) {
    auto message = api::wire::errorMessage(res->body);
    return printError(message ? *message : fmt::format("HTTP {}: {}", res->status, res->body), kRefused);
  }
  return onBody(res->body);
}

// The same for an answer printed as it comes (`ls --json`): the body goes
// straight to stdout; an error answer is handled as request() does.
inline int requestToStdout(const GlobalOptions& global, std::string_view method, const std::string& target) {
  std::cout.flush();  // what went before stays in order with the streamed bytes
  auto res = clientFor(global).stream(method, target, stdout);
  if (!res) return printError(res.error().message, kUnreachable);
  if (res->status >= 400) {
    auto message = api::wire::errorMessage(res->body);
    return printError(message ? *message : fmt::format("HTTP {}: {}", res->status, res->body), kRefused);
  }
  return 0;
}

void addAccountCommands(CLI::App& app, const GlobalOptions& global, int* exitCode);

}  // namespace hv::cli
