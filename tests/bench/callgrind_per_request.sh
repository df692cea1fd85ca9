#!/usr/bin/env bash
# Instructions per proxied request of two viscount binaries, under valgrind --tool=callgrind, in
# one run: the figure that does not move with the machine's load or a VM's drifting speed, for a
# change whose cost is a few percent (CPU seconds on a shared two-core machine cannot show that).
#
#   BASE_BIN=/path/to/old/viscount tests/bench/callgrind_per_request.sh    # NEW_BIN: build/proxy/viscount
#   DURATION=15s EXTRA_YAML='logging: {sample: {success: 1}}' BASE_BIN=... tests/bench/callgrind_per_request.sh
#   KEEP_DUMPS=/tmp/cg BASE_BIN=... tests/bench/callgrind_per_request.sh   # keeps both dumps for
#                                   # callgrind_annotate, to see which functions the difference is in
#
# One worker, io_uring off (valgrind does not follow io_uring), the JSON access log on, the peers'
# nginx as upstream, wrk -t1 -c4. After a warm-up the counters are zeroed (callgrind_control), and
# Ir is the program's total over the measured run divided by the access-log lines written in it.
# It is a benchmark, not a test: it never fails on a figure.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
root=$bench_root
find_peers
base=${BASE_BIN:?set BASE_BIN to the viscount binary to compare against}
new=${NEW_BIN:-$root/build/proxy/viscount}
duration=${DURATION:-15s}
need_tools wrk nginx valgrind callgrind_annotate callgrind_control
start_work

nginx -c "$peers/peers/upstream-nginx.conf" &
pids+=($!)
wait_port 18080
echo "# $(nproc) cores, $(uname -r); valgrind --tool=callgrind, wrk -t1 -c4 -d$duration"
for name in base new; do
  bin=$base
  [ "$name" = new ] && bin=$new
  cat >"$work/$name.yaml" <<YAML
workers: 1
io_uring: false
listeners:
  - {name: inbound, address: 127.0.0.1:18187, upstream: app}
upstreams:
  - name: app
    url: http://127.0.0.1:18080
    timeouts: {request: 120s}
logging: {access_log: $work/access-$name.log, format: json}
admin: {address: 127.0.0.1:18197}
${EXTRA_YAML:-}
YAML
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" "$bin" --config "$work/$name.yaml" \
    2>"$work/$name-events.log" &
  pid=$!
  wait_port 18187
  # A warm-up, then the counters are zeroed: start-up and first-request costs stay out of the
  # figure, which is then the steady state over exactly the requests logged after the zeroing.
  wrk -t1 -c4 -d3s http://127.0.0.1:18187/x >/dev/null
  sleep 0.5
  callgrind_control -z "$pid" >/dev/null
  before=$(wc -l <"$work/access-$name.log")
  wrk -t1 -c4 -d"$duration" http://127.0.0.1:18187/x >"$work/$name-wrk.txt"
  sleep 0.5
  callgrind_control -d "$pid" >/dev/null
  after=$(wc -l <"$work/access-$name.log")
  kill -TERM "$pid"
  wait "$pid" || true
  lines=$((after - before))
  dump=$(ls "$work/$name.out".* | head -n 1)
  ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen {gsub(",","",$1); print $1; seen=1}')
  echo "$name: $lines requests, $ir Ir, $(awk -v i="$ir" -v n="$lines" 'BEGIN{printf "%.0f", i/n}') Ir/request ($bin)"
  echo "$ir $lines" >"$work/$name.figures"
  if [ -n "${KEEP_DUMPS:-}" ]; then mkdir -p "$KEEP_DUMPS" && cp "$dump" "$KEEP_DUMPS/$name.callgrind"; fi
done
read -r ir_b n_b <"$work/base.figures"
read -r ir_n n_n <"$work/new.figures"
awk -v a="$ir_b" -v na="$n_b" -v b="$ir_n" -v nb="$n_n" \
  'BEGIN{printf "new/base Ir per request: %.4f x\n", (b/nb)/(a/na)}'
