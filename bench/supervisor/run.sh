#!/usr/bin/env bash
# Supervisor benchmark: hostvisor against supervisord 4.2.5, side by side, in one run.
#   bench/supervisor/run.sh                 # n=1000, builds build/hostvisor first
#   bench/supervisor/run.sh --quick         # n=100 smoke run
#   bench/supervisor/run.sh --update-docs   # also put the table in docs/benchmarks.md
#   bench/supervisor/run.sh --bin PATH      # an already built binary (skips make build)
# Other options: /usr/bin/python3 bench/supervisor/bench.py --help
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

need=()
[ -x /usr/bin/python3 ] || need+=(python3)
[ -x /usr/bin/supervisord ] && [ -x /usr/bin/supervisorctl ] || need+=(supervisor)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "run.sh: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  # (on a systemd host the package may also start its own service; the benchmark uses
  # its own config, socket and temp dir and leaves that service alone)
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

have_bin=0
for a in "$@"; do [ "$a" = "--bin" ] || [[ "$a" == --bin=* ]] && have_bin=1; done
if [ "$have_bin" -eq 0 ]; then
  make -C "$repo" build >&2
fi

# Whatever happens to the driver (even kill -9), leave no process of this run behind.
trap '/usr/bin/python3 "$here/bench.py" --sweep-stale' EXIT
/usr/bin/python3 "$here/bench.py" "$@"
