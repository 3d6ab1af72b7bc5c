// hostvisor: the command-line client. `serve` runs the daemon, which is a
// separate binary, hostvisord, next to this one: this process execs it with
// the same arguments (same pid, same command line). Kept apart, a client
// command does not load, relocate and initialise the daemon's OpenSSL,
// SQLite, libbpf and proxy: measured on the 2-core VM, `ls --json` against
// an empty daemon took 3.6–3.8 ms of CPU and 5.8 ms instead of 6.5–7.2 ms
// and 10.4–10.9 ms (109 page faults instead of 262).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>

#include "cli/commands.h"

namespace {

// The daemon binary: HOSTVISOR_DAEMON if set, else hostvisord in this
// binary's directory.
std::string daemonPath() {
  if (const char* env = std::getenv("HOSTVISOR_DAEMON"); env != nullptr && *env != '\0') return env;
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "hostvisord";
  std::string dir(self, static_cast<size_t>(n));
  dir.resize(dir.rfind('/') + 1);
  return dir + "hostvisord";
}

// `serve` and `log-keeper` belong to the daemon binary: all their arguments
// (--help included) are its to parse. The subcommand is the first argument
// that is not the global --data-dir option.
bool isDaemonCommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--data-dir") {
      ++i;
      continue;
    }
    if (a.starts_with("--data-dir=")) continue;
    return a == "serve" || a == "log-keeper";
  }
  return false;
}

int execDaemon(char** argv) {
  const std::string daemon = daemonPath();
  ::execv(daemon.c_str(), argv);
  std::cerr << "hostvisor: error: cannot run the daemon binary " << daemon << ": " << std::strerror(errno) << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (isDaemonCommand(argc, argv)) return execDaemon(argv);
  CLI::App app{"hostvisor: run background programs safely on shared hosting"};
  app.require_subcommand(1);
  app.fallthrough();
  hv::cli::GlobalOptions global;
  app.add_option("--data-dir", global.dataDir, "data directory (env HOSTVISOR_DATA_DIR)");
  int exitCode = 0;
  // Listed for --help only: isDaemonCommand() runs it before any parsing.
  app.add_subcommand("serve", "run the daemon in the foreground (options: hostvisor serve --help)");
  hv::cli::addClientCommands(app, global, &exitCode);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    // An answer the CLI cannot read (not JSON, not the expected shape): say
    // so, never abort with a core dump.
    std::cerr << "hostvisor: error: unexpected answer from the daemon: " << e.what() << "\n";
    return 1;
  }
  return exitCode;
}
