#!/usr/bin/env bash
# viscount's CPU per request to an upstream on a Unix socket against the same upstream on
# loopback TCP, in one run: one viscount (one worker) with a listener for each, in front of one
# nginx that listens on both; the two are measured in alternating rounds and viscount's own
# utime+stime (from /proc) is divided by the requests served. Not a test: no figure fails.
#   tests/bench/unix_vs_tcp.sh                 # wrk -t1 -c16, closed loop (saturated)
#   MODE=rate RATE=5000 tests/bench/unix_vs_tcp.sh   # latency_probe at a fixed rate
# Needs nginx and wrk (tests/bench/side_by_side.sh installs both) and a build.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${VISCOUNT_BIN:-build/proxy/viscount}
PROBE=${LATENCY_PROBE:-build/tests/bench/latency_probe}
MODE=${MODE:-wrk}
ROUNDS=${ROUNDS:-8}
DUR=${DURATION:-3}
RATE=${RATE:-5000}
BASE_PORT=${BASE_PORT:-18080}
UP_PORT=$((BASE_PORT + 1)) TCP_PORT=$((BASE_PORT + 10)) UNIX_PORT=$((BASE_PORT + 11))
ADMIN_PORT=$((BASE_PORT + 19))
W=$(mktemp -d)
cat >"$W/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $W/t1; proxy_temp_path $W/t2; fastcgi_temp_path $W/t3;
  uwsgi_temp_path $W/t4; scgi_temp_path $W/t5;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP_PORT;
    listen unix:$W/up.sock;
    location / { return 200 "hello world\n"; }
  }
}
NGINX
cat >"$W/viscount.yaml" <<YAML
workers: 1
watch_config: false
listeners:
  - {name: via_tcp, address: "127.0.0.1:$TCP_PORT", upstream: tcp}
  - {name: via_unix, address: "127.0.0.1:$UNIX_PORT", upstream: unix}
upstreams:
  - {name: tcp, url: "http://127.0.0.1:$UP_PORT"}
  - {name: unix, url: "unix:$W/up.sock"}
logging: {access_log: /dev/null}
admin: {address: "127.0.0.1:$ADMIN_PORT"}
YAML
# viscount alone on core 1, the load generator and the upstream on core 0: with the upstream on
# viscount's core, /proc would charge part of viscount's io_uring sends to it (README.md, "How
# CPU per request is measured").
taskset -c 0 nginx -c "$W/nginx.conf" -p "$W" & NGINX_PID=$!
taskset -c 1 "$BIN" --config "$W/viscount.yaml" 2>"$W/events.log" & PROXY_PID=$!
trap 'kill $PROXY_PID $NGINX_PID 2>/dev/null; wait; rm -rf "$W"' EXIT
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$TCP_PORT/" &&
    curl -fs -o /dev/null "http://127.0.0.1:$UNIX_PORT/" && break
  sleep 0.1
done
TICKS=$(getconf CLK_TCK)
echo "mode=$MODE rounds=$ROUNDS duration=${DUR}s $(nproc) cores"
for round in $(seq "$ROUNDS"); do
  for kind in tcp:$TCP_PORT unix:$UNIX_PORT; do
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$PROXY_PID/stat")
    if [ "$MODE" = rate ]; then
      out=$(taskset -c 0 "$PROBE" "${kind#*:}" "$RATE" "$DUR" 16 /x 0)
      requests=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$out")
    else
      out=$(taskset -c 0 wrk -t1 -c16 -d"${DUR}s" "http://127.0.0.1:${kind#*:}/" 2>&1)
      requests=$(awk '/requests in/ {print $1}' <<<"$out")
    fi
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$PROXY_PID/stat")
    awk -v r="$round" -v k="${kind%%:*}" -v n="$requests" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
      -v t="$TICKS" 'BEGIN { printf "round=%d upstream=%s requests=%d user_us=%.2f sys_us=%.2f cpu_us_per_request=%.2f\n",
        r, k, n, u / t * 1e6 / n, s / t * 1e6 / n, (u + s) / t * 1e6 / n }'
  done
done
