#!/usr/bin/env bash
# Two viscount binaries side by side in one run: CPU microseconds and req/s per request of each,
# alternating rounds, medians, and the ratio new/base. For a change that should not move the
# request path (a refactoring), the ratio should sit within the rounds' spread.
#
#   BASE_BIN=/path/to/old/viscount tests/bench/compare_builds.sh     # NEW_BIN: build/proxy/viscount
#   ROUNDS=7 DURATION=8s BASE_BIN=... NEW_BIN=... tests/bench/compare_builds.sh
#
# Layout (side_by_side.sh's cross-check): each viscount alone on core 1, the upstream nginx and
# wrk -t1 -c64 on core 0, so /proc's CPU figure for viscount is exact (nothing else runs on its
# core). One worker, io_uring as the machine allows, ids and the JSON access log on.
# It is a benchmark, not a test: it never fails on a figure. Compare only within one run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
root=$bench_root
find_peers
base=${BASE_BIN:?set BASE_BIN to the viscount binary to compare against}
new=${NEW_BIN:-$root/build/proxy/viscount}
rounds=${ROUNDS:-5} duration=${DURATION:-8s}
need_tools wrk nginx taskset
start_work
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1==k{print $2}'; }
config() {  # port admin_port
  cat <<YAML
workers: 1
listeners:
  - {name: inbound, address: 127.0.0.1:$1, upstream: app, limits: {max_connections: 20000}}
upstreams:
  - name: app
    url: http://127.0.0.1:18080
    timeouts: {request: 120s}
    pool: {size: 64, max_overflow: 64}
logging: {access_log: $work/access-$1.log, format: json}
admin: {address: 127.0.0.1:$2}
YAML
}

taskset -c 0 nginx -c "$peers/peers/upstream-nginx.conf" &
pids+=($!)
wait_port 18080
config 18185 18195 >"$work/base.yaml"
config 18186 18196 >"$work/new.yaml"
taskset -c 1 "$base" --config "$work/base.yaml" 2>"$work/base-events.log" &
pids+=($!)
base_pid=$!
taskset -c 1 "$new" --config "$work/new.yaml" 2>"$work/new-events.log" &
pids+=($!)
new_pid=$!
wait_port 18185
wait_port 18186
echo "# base: $base"
echo "# new:  $new"
echo "# $(nproc) cores, $(uname -r); wrk -t1 -c64 -d$duration on core 0 with the upstream, each viscount alone on core 1"
for round in $(seq "$rounds"); do
  for entry in "base 18185 $base_pid" "new 18186 $new_pid"; do
    set -- $entry
    # Its access log is truncated between rounds so the disk does not fill during long runs.
    : >"$work/access-$2.log"
    line=$("$peers/cpu_per_req.sh" "$3" "http://127.0.0.1:$2/x" -t1 -c64 -d"$duration")
    echo "round $round $1 $line" | tee -a "$work/rounds.txt"
  done
done
for name in base new; do
  grep " $name " "$work/rounds.txt" | field cpu_us_per_req | median >"$work/cpu_$name"
  grep " $name " "$work/rounds.txt" | field rps | median >"$work/rps_$name"
  spread=$(grep " $name " "$work/rounds.txt" | field cpu_us_per_req | sort -g | sed -n '1p;$p' | paste -sd- -)
  echo "$name: CPU $(cat "$work/cpu_$name") µs/request (rounds $spread), $(cat "$work/rps_$name") req/s"
done
awk -v a="$(cat "$work/cpu_base")" -v b="$(cat "$work/cpu_new")" -v ra="$(cat "$work/rps_base")" -v rb="$(cat "$work/rps_new")" \
  'BEGIN{printf "new/base of the medians: CPU per request %.3f x, req/s %.3f x\n", b/a, rb/ra}'
# A virtual machine's speed drifts over a run by more than a refactoring moves; the two binaries
# of one round ran seconds apart, so the ratio within each round is the steadier figure.
paste <(grep " base " "$work/rounds.txt" | field cpu_us_per_req) \
  <(grep " new " "$work/rounds.txt" | field cpu_us_per_req) | awk '{print $2/$1}' >"$work/paired"
echo "new/base within each round: CPU per request median $(median <"$work/paired" | awk '{printf "%.3f", $1}') x (rounds $(sort -g "$work/paired" | sed -n '1p;$p' | awk '{printf "%.3f ", $1}'| sed 's/ $//;s/ /-/'))"
