#!/usr/bin/env bash
# The first command of the README: install, build, and run viscount in front of the demo
# FastAPI service, then send it a few requests and a websocket message so both JSON logs show the
# same ids.
#   deploy/local/demo.sh          # keeps running until Ctrl-C
#   deploy/local/demo.sh --once   # exits after the demo requests (used by the test suite)
#   deploy/local/demo.sh --uds    # the app listens on a Unix socket (uvicorn --uds), as in a pod
set -euo pipefail
cd "$(dirname "$0")/../.."
ONCE=0
UDS=0
for arg in "$@"; do
  case $arg in
    --once) ONCE=1 ;;
    --uds) UDS=1 ;;
    *) echo "usage: deploy/local/demo.sh [--once] [--uds]" >&2; exit 2 ;;
  esac
done

if [ -n "${VISCOUNT_BIN:-}" ]; then
  BIN=$VISCOUNT_BIN  # a prebuilt binary (the test suite passes its own)
else
  if [ "${VISCOUNT_SKIP_INSTALL:-0}" != 1 ]; then deploy/local/install-deps.sh; fi
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build --target viscount
  BIN=build/proxy/viscount
fi

APP_PORT=${APP_PORT:-8000}
PROXY_PORT=${PROXY_PORT:-8080}
ADMIN_PORT=${ADMIN_PORT:-15000}
LOGDIR=$(mktemp -d)
APP_PID=
PROXY_PID=
cleanup() {
  for pid in $APP_PID $PROXY_PID; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

fail() { echo "demo.sh: $*" >&2; exit 1; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
busy_port() {  # variable name, port
  fail "port $2 is busy: another process already listens on 127.0.0.1:$2." \
       "Stop it, or pick another port with $1, e.g. $1=$(($2 + 1)) deploy/local/demo.sh"
}
# Whether process $1 is the one listening on port $2 (not just that something is): without
# that check the demo would happily talk to whatever else holds the port.
owns_port() {
  command -v ss >/dev/null || return 0  # no ss: rely on the process being alive and answering
  ss -Hltnp "sport = :$2" 2>/dev/null | grep -q "pid=$1,"
}

APP_SOCKET=$LOGDIR/app.sock
app_answers() {
  local body
  if [ "$UDS" = 1 ]; then
    body=$(curl -fsS --max-time 2 --unix-socket "$APP_SOCKET" http://app/ 2>/dev/null) || return 1
  else
    body=$(curl -fsS --max-time 2 "http://127.0.0.1:$APP_PORT/" 2>/dev/null) || return 1
  fi
  [[ $body == *'"service":"demo"'* ]]
}

# Ports someone else holds now would make the demo talk to them: say so before starting.
[ "$UDS" = 0 ] && listening "$APP_PORT" && busy_port APP_PORT "$APP_PORT"
listening "$PROXY_PORT" && busy_port PROXY_PORT "$PROXY_PORT"
listening "$ADMIN_PORT" && busy_port ADMIN_PORT "$ADMIN_PORT"

if [ "$UDS" = 1 ]; then
  APP_BIND=(--uds "$APP_SOCKET")
  UPSTREAM=unix:$APP_SOCKET
else
  APP_BIND=(--host 127.0.0.1 --port "$APP_PORT")
  UPSTREAM=http://127.0.0.1:$APP_PORT
fi
/usr/bin/python3 -m uvicorn demo_app:app --app-dir deploy/local "${APP_BIND[@]}" \
  --no-access-log >"$LOGDIR/app.log" 2>"$LOGDIR/app.err" &
APP_PID=$!

# Wait for the app itself (asking through the proxy would log 502s while it starts): our
# uvicorn, alive, listening on the port, and answering as the demo service.
app_up=0
for _ in $(seq 200); do
  if ! kill -0 "$APP_PID" 2>/dev/null; then
    grep -qi "address already in use" "$LOGDIR/app.err" && busy_port APP_PORT "$APP_PORT"
    fail "the demo app exited before serving; its stderr ($LOGDIR/app.err):
$(tail -n 5 "$LOGDIR/app.err")"
  fi
  if { [ "$UDS" = 1 ] || owns_port "$APP_PID" "$APP_PORT"; } && app_answers; then
    app_up=1
    break
  fi
  sleep 0.1
done
[ "$app_up" = 1 ] || fail "the demo app did not answer on ${UPSTREAM#http://} within 20 s" \
                          "(is APP_PORT=$APP_PORT taken?); its stderr: $LOGDIR/app.err"

"$BIN" --upstream "$UPSTREAM" --listen "127.0.0.1:$PROXY_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" \
  >"$LOGDIR/access.log" 2>"$LOGDIR/events.log" &
PROXY_PID=$!

# viscount itself, alive and holding both of its ports, and ready.
proxy_up=0
for _ in $(seq 200); do
  if ! kill -0 "$PROXY_PID" 2>/dev/null; then
    grep -q "bind 127.0.0.1:$PROXY_PORT: Address already in use" "$LOGDIR/events.log" &&
      busy_port PROXY_PORT "$PROXY_PORT"
    grep -q "bind 127.0.0.1:$ADMIN_PORT: Address already in use" "$LOGDIR/events.log" &&
      busy_port ADMIN_PORT "$ADMIN_PORT"
    fail "viscount exited before it was ready (a busy PROXY_PORT=$PROXY_PORT or" \
         "ADMIN_PORT=$ADMIN_PORT? set the variable to a free port); its events:
$(tail -n 5 "$LOGDIR/events.log")"
  fi
  if owns_port "$PROXY_PID" "$PROXY_PORT" && owns_port "$PROXY_PID" "$ADMIN_PORT" &&
     curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$ADMIN_PORT/ready" 2>/dev/null; then
    proxy_up=1
    break
  fi
  sleep 0.1
done
[ "$proxy_up" = 1 ] || fail "viscount was not ready on 127.0.0.1:$PROXY_PORT (admin" \
                            "$ADMIN_PORT) within 20 s; its events: $LOGDIR/events.log"

echo "== requests through viscount (127.0.0.1:$PROXY_PORT -> demo app ${UPSTREAM#http://})"
curl -sS -i "http://127.0.0.1:$PROXY_PORT/"; echo
curl -sS -i -H 'x-request-id: my-own-id-123' -H 'x-user-id: alice' \
  -X POST --data 'hello' "http://127.0.0.1:$PROXY_PORT/echo"; echo
echo "== a websocket through viscount (ws://127.0.0.1:$PROXY_PORT/ws)"
/usr/bin/python3 deploy/local/ws_client.py "127.0.0.1:$PROXY_PORT"; echo
sleep 0.5
echo "== viscount access log (one JSON line per request)"
cat "$LOGDIR/access.log"
echo "== demo app log (the ids it received)"
cat "$LOGDIR/app.log"

if [ "$ONCE" = 1 ]; then exit 0; fi
echo "== running; try: curl -i http://127.0.0.1:$PROXY_PORT/  (Ctrl-C to stop)"
tail -f "$LOGDIR/access.log" "$LOGDIR/app.log"
