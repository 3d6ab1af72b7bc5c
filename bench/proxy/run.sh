#!/usr/bin/env bash
# Proxy benchmark: hostvisor's front proxy against nginx and a direct connection,
# side by side, in one run (issue 4). Results: stdout + bench/proxy/results-DATE.md.
#   bench/proxy/run.sh                 # builds build/hostvisor first, ~13 min on an idle machine
#   bench/proxy/run.sh --quick         # smoke run (1 round, 3 s, 1,000 idle tunnels)
#   bench/proxy/run.sh --update-docs   # also put the table in docs/benchmarks.md (Proxy section)
#   bench/proxy/run.sh --bin PATH      # an already built binary (skips make build)
# Other options: /usr/bin/python3 bench/proxy/bench.py --help
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tools="$repo/build/bench-proxy"

need=()
for tool in nginx:nginx wrk:wrk openssl:openssl g++:g++ taskset:util-linux; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || need+=("${tool#*:}")
done
[ -x /usr/bin/python3 ] || need+=(python3)
[ -f /usr/include/boost/beast.hpp ] || need+=(libboost-dev)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "run.sh: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  # Debian's nginx package may try to start its own service on port 80; the benchmark
  # runs its own nginx with its own config in a temp dir and leaves that one alone.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
export PATH="$PATH:/usr/sbin"

have_bin=0
for a in "$@"; do [ "$a" = "--bin" ] || [[ "$a" == --bin=* ]] && have_bin=1; done
if [ "$have_bin" -eq 0 ]; then
  make -C "$repo" build >&2
fi

# The load generator and the echo backend (rebuilt when older than
# their sources). g++ -O2 against Debian's Boost 1.81 headers and OpenSSL 3.
mkdir -p "$tools"
build() {  # out src flags...
  local out="$1" src="$2"; shift 2
  if [ ! -x "$tools/$out" ] || [ "$here/$src" -nt "$tools/$out" ]; then
    echo "run.sh: building $out" >&2
    g++ -std=c++20 -O2 -Wall -Wextra -o "$tools/$out.tmp" "$here/$src" "$@"
    mv "$tools/$out.tmp" "$tools/$out"
  fi
}
build loadgen loadgen.cpp -lssl -lcrypto -pthread
build echo_backend echo_backend.cpp -lcrypto -pthread

# Whatever happens to the driver (even kill -9), leave no process of this run behind.
trap '/usr/bin/python3 "$here/bench.py" --sweep-stale' EXIT
/usr/bin/python3 "$here/bench.py" --tools "$tools" "$@"
