#!/usr/bin/env bash
# viscount, nginx and HAProxy as sidecars in front of the same nginx upstream, measured in one run:
# CPU microseconds per request (wrk -t1 on core 0; each proxy and the upstream on core 1) and RSS
# bytes per idle keep-alive connection. Compare only within one run, as ratios.
#
#   tests/bench/side_by_side.sh            # needs build/proxy/viscount, wrk, nginx, haproxy
#   DURATION=20s CONNS=64 IDLE_CONNS=2000 VISCOUNT_BIN=... PEERS=.../bench tests/bench/side_by_side.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
peers=${PEERS:-$root/../shared/bench}
bin=${VISCOUNT_BIN:-$root/build/proxy/viscount}
duration=${DURATION:-10s}
conns=${CONNS:-64}
idle=${IDLE_CONNS:-2000}
work=$(mktemp -d)
ulimit -n "$(ulimit -Hn)"  # idle connections need descriptors

for tool in wrk nginx haproxy taskset; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install wrk nginx-light haproxy)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "missing: $bin (build first)" >&2; exit 1; }
[ -d "$peers/peers" ] || { echo "missing: peer configs in $peers (set PEERS)" >&2; exit 1; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

cat >"$work/viscount.yaml" <<EOF
workers: 1
listeners:
  - name: inbound
    address: 127.0.0.1:18085
    upstream: app
upstreams:
  - name: app
    url: http://127.0.0.1:18080
logging: {access_log: $work/viscount-access.log, format: json}
admin: {address: 127.0.0.1:18095}
EOF

taskset -c 1 nginx -c "$peers/peers/upstream-nginx.conf" &
pids+=($!)
wait_port 18080
taskset -c 1 nginx -c "$peers/peers/proxy-nginx.conf" &
pids+=($!)
taskset -c 1 haproxy -f "$peers/peers/proxy-haproxy.cfg" >/dev/null &
pids+=($!)
taskset -c 1 "$bin" --config "$work/viscount.yaml" 2>"$work/viscount-events.log" &
pids+=($!)
viscount_pid=$!
haproxy_pid=${pids[2]}
wait_port 18081
wait_port 18082
wait_port 18085
nginx_pid=$(pgrep -P "${pids[1]}" | head -1)  # the worker: the master does no request work

echo "# wrk -t1 -c$conns -d$duration, proxy and upstream on core 1, wrk on core 0"
for entry in "viscount 18085 $viscount_pid" "nginx 18081 $nginx_pid" "haproxy 18082 $haproxy_pid"; do
  set -- $entry
  taskset -c 0 wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$2/warm" >/dev/null
  printf '%-9s ' "$1"
  "$peers/cpu_per_req.sh" "$3" "http://127.0.0.1:$2/x" -t1 -c"$conns" -d"$duration"
done

echo "# $idle idle keep-alive connections"
for entry in "viscount 18085 $viscount_pid" "nginx 18081 $nginx_pid" "haproxy 18082 $haproxy_pid"; do
  set -- $entry
  printf '%-9s ' "$1"
  /usr/bin/python3 "$peers/idle_conns.py" "$2" "$3" "$idle"
done

lines=$(wc -l <"$work/viscount-access.log")
echo "# viscount access log: $lines lines"
