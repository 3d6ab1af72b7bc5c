#!/usr/bin/env bash
# `make demo`: runs hostvisor with its embedded defaults in the foreground,
# with one example instance, and prints how to reach it. Ctrl-C stops both.
set -euo pipefail
BIN=$(realpath "${1:-build/hostvisor}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA_DIR=${HOSTVISOR_DATA_DIR:-$( [ "$(id -u)" -eq 0 ] && echo /var/lib/hostvisor || echo "${XDG_DATA_HOME:-$HOME/.local/share}/hostvisor")}
export HOSTVISOR_DATA_DIR=$DATA_DIR

# An instance's program lives in its account's home: copy the example there.
APP_DIR="$HOME/hostvisor-demo"
mkdir -p "$APP_DIR"
install -m 0755 "$ROOT/examples/hello/server.py" "$APP_DIR/hello.py"

# Its own session: Ctrl-C reaches this script, whose trap stops the instances too.
setsid "$BIN" serve &
DAEMON=$!
cleanup() {
  "$BIN" shutdown --stop-instances >/dev/null 2>&1 || kill "$DAEMON" 2>/dev/null || true
  wait "$DAEMON" 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# The daemon answers on its socket once it is ready (or has died: then stop).
for _ in $(seq 100); do
  "$BIN" ls >/dev/null 2>&1 && break
  kill -0 "$DAEMON" 2>/dev/null || { echo "demo: the daemon did not start (see above)" >&2; exit 1; }
  sleep 0.1
done

if "$BIN" status hello >/dev/null 2>&1; then
  "$BIN" start hello >/dev/null
else
  "$BIN" create hello --command "$APP_DIR/hello.py" >/dev/null
fi
PORT=$("$BIN" status hello --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')

cat <<MSG

  hostvisor is running (data dir $DATA_DIR).

  The example instance 'hello' got port $PORT:   curl http://127.0.0.1:$PORT/
  Its state and logs:                           $BIN ls
                                                $BIN logs hello -n 20
  REST API (token in $DATA_DIR/admin.token):
      curl -H "Authorization: Bearer \$(cat $DATA_DIR/admin.token)" http://127.0.0.1:8070/api/v1/instances
  Create your own:  $BIN create web --command ~/srv.sh

  Press Ctrl-C to stop hostvisor and its instances.

MSG
"$BIN" ls
wait "$DAEMON"
