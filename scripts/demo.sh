#!/usr/bin/env bash
# `make demo`: runs hostvisor with its embedded defaults in the foreground,
# with one example instance, and prints how to reach it. Ctrl-C stops both.
set -euo pipefail
BIN=$(realpath "${1:-build/hostvisor}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA_DIR=${HOSTVISOR_DATA_DIR:-$( [ "$(id -u)" -eq 0 ] && echo /var/lib/hostvisor || echo "${XDG_DATA_HOME:-$HOME/.local/share}/hostvisor")}
export HOSTVISOR_DATA_DIR=$DATA_DIR

# An instance's program lives in its account's home: copy the examples there.
APP_DIR="$HOME/hostvisor-demo"
BUILD_DIR=$(dirname "$BIN")
mkdir -p "$APP_DIR"
chmod 755 "$APP_DIR"
install -m 0755 "$ROOT/examples/hello/server.py" "$APP_DIR/hello.py"
install -m 0755 "$BUILD_DIR/examples/hostvisor-chat" "$APP_DIR/hostvisor-chat"

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

# ensure NAME ROUTE COMMAND: the demo's instances are made afresh each run.
ensure() {
  "$BIN" rm "$1" >/dev/null 2>&1 || true
  "$BIN" create "$1" --route "$2" --command "$3" >/dev/null
}
ensure chat /chat/ "$APP_DIR/hostvisor-chat"
ensure hello /hello/ "$APP_DIR/hello.py"
PORT=$("$BIN" status chat --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')

cat <<MSG

  hostvisor is running (data dir $DATA_DIR).

  The control panel:                  http://127.0.0.1:8070/
  (sign in with the admin token:      $(cat "$DATA_DIR/admin.token"))

  The chat, behind the front proxy:   http://127.0.0.1:8080/chat/   (open it in two tabs)
  (the instance 'chat' got port $PORT; the proxy routes /chat/ to it, WebSocket included)
  A plain HTTP example:               curl http://127.0.0.1:8080/hello/
  State and logs:                     $BIN ls
                                      $BIN logs chat -f
  REST API (token in $DATA_DIR/admin.token):
      curl -H "Authorization: Bearer \$(cat $DATA_DIR/admin.token)" http://127.0.0.1:8070/api/v1/instances
  Create your own:  $BIN create web --command ~/srv.sh

  Press Ctrl-C to stop hostvisor and its instances.

MSG
"$BIN" ls
wait "$DAEMON"
