#!/usr/bin/env bash
# The first command of the README: install, build, and run viscount in front of the demo
# FastAPI service, then send it a few requests so both JSON logs show the same ids.
#   deploy/local/demo.sh          # keeps running until Ctrl-C
#   deploy/local/demo.sh --once   # exits after the demo requests (used by the test suite)
set -euo pipefail
cd "$(dirname "$0")/../.."
ONCE=0
[ "${1:-}" = "--once" ] && ONCE=1

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
cleanup() { kill "$APP_PID" "$PROXY_PID" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

/usr/bin/python3 -m uvicorn demo_app:app --app-dir deploy/local --host 127.0.0.1 \
  --port "$APP_PORT" --no-access-log >"$LOGDIR/app.log" 2>"$LOGDIR/app.err" &
APP_PID=$!
"$BIN" --upstream "http://127.0.0.1:$APP_PORT" --listen "127.0.0.1:$PROXY_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" \
  >"$LOGDIR/access.log" 2>"$LOGDIR/events.log" &
PROXY_PID=$!

# Wait for the app itself (asking through the proxy would log 502s while it starts).
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$APP_PORT") 2>/dev/null && break
  sleep 0.1
done
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/ready" 2>/dev/null && break
  sleep 0.1
done

echo "== requests through viscount (127.0.0.1:$PROXY_PORT -> demo app 127.0.0.1:$APP_PORT)"
curl -sS -i "http://127.0.0.1:$PROXY_PORT/"; echo
curl -sS -i -H 'x-request-id: my-own-id-123' -H 'x-user-id: alice' \
  -X POST --data 'hello' "http://127.0.0.1:$PROXY_PORT/echo"; echo
sleep 0.5
echo "== viscount access log (one JSON line per request)"
cat "$LOGDIR/access.log"
echo "== demo app log (the ids it received)"
cat "$LOGDIR/app.log"

if [ "$ONCE" = 1 ]; then exit 0; fi
echo "== running; try: curl -i http://127.0.0.1:$PROXY_PORT/  (Ctrl-C to stop)"
tail -f "$LOGDIR/access.log" "$LOGDIR/app.log"
