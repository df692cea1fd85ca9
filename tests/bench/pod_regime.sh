#!/usr/bin/env bash
# The pod regime: the demo FastAPI app under uvicorn and the proxy share one core (a pod with a
# 1-CPU limit), wrk -c16 runs on the other core, and the app's own speed sets the rate (about
# 1,000 req/s here), so every request is its own wake-up. Direct to the app, then viscount, nginx
# and HAProxy (ids and a JSON access log on each; the peers' configs from the shared bench
# folder), in alternating rounds. Per target: req/s, p50/p99 (wrk), the proxy's and the app's CPU
# microseconds per request (utime+stime from /proc), the proxy's system calls per request (perf
# stat, raw_syscalls:sys_enter, every thread) and context switches per request (all threads), and
# the tax on the app: 1 - req/s through the proxy / req/s direct.
#   tests/bench/pod_regime.sh                    # 3 rounds of 8 s per target
#   ROUNDS=5 DURATION=10 tests/bench/pod_regime.sh
#   VISCOUNT_BIN=/path/to/other/viscount tests/bench/pod_regime.sh
#   BASE_BIN=/path/to/old/viscount tests/bench/pod_regime.sh   # adds viscount_base: a change's
#                                               # effect, measured in the same run as the peers
# It is a benchmark, not a test: no figure fails it. Compare only within one run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$bench_root"
BIN=${VISCOUNT_BIN:-build/proxy/viscount}
BASE_BIN=${BASE_BIN:-}
ROUNDS=${ROUNDS:-3}
DUR=${DURATION:-8}
find_peers
need_tools wrk nginx haproxy perf taskset
start_work

# The app and every proxy on core 1, the load on core 0.
taskset -c 1 /usr/bin/python3 -m uvicorn demo_app:app --app-dir deploy/local --host 127.0.0.1 \
  --port 18080 --log-level warning >/dev/null 2>&1 &
pids+=($!)
app=$!
cat >"$work/viscount.yaml" <<YAML
workers: 1
watch_config: false
listeners:
  - {name: inbound, address: "127.0.0.1:18087", upstream: app}
upstreams:
  - {name: app, url: "http://127.0.0.1:18080"}
logging: {access_log: $work/viscount-access.log, format: json}
admin: {address: "127.0.0.1:18097"}
YAML
taskset -c 1 "$BIN" --config "$work/viscount.yaml" 2>"$work/viscount-events.log" &
pids+=($!)
viscount=$!
targets=(direct viscount nginx haproxy)
if [ -n "$BASE_BIN" ]; then
  sed -e 's/18087/18088/; s/18097/18098/; s/viscount-access/viscount-base-access/' \
    "$work/viscount.yaml" >"$work/viscount-base.yaml"
  taskset -c 1 "$BASE_BIN" --config "$work/viscount-base.yaml" 2>"$work/viscount-base-events.log" &
  pids+=($!)
  viscount_base=$!
  targets+=(viscount_base)
fi
taskset -c 1 nginx -c "$peers/peers/proxy-nginx.conf" &
pids+=($!)
taskset -c 1 haproxy -f "$peers/peers/proxy-haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
haproxy=$!
for port in 18080 18087 18081 18082 ${BASE_BIN:+18088}; do wait_port "$port"; done
nginx_worker=$(pgrep -P "$(cat /tmp/bench-nginx.pid)" | head -n 1)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, all threads
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }
micros() {  # a wrk latency (850.00us, 1.20ms, 2.00s) in microseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000;
                         else print n * 1000000 }'
}
hz=$(getconf CLK_TCK)

# One measured run of one target: prints "name rps p50_us p99_us proxy_us app_us syscalls ctxsw".
measure() {
  local name=$1 port=$2 pid=${3:-}
  local app0 px0=0 cs0=0 perf_pid=""
  app0=$(ticks "$app")
  if [ -n "$pid" ]; then
    px0=$(ticks "$pid")
    cs0=$(switches "$pid")
    perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$work/perf.txt" &
    perf_pid=$!
    sleep 0.2
  fi
  taskset -c 0 wrk -t1 -c16 -d"${DUR}s" --latency "http://127.0.0.1:$port/" >"$work/wrk.txt"
  local app1 px1=0 cs1=0 sys=0
  app1=$(ticks "$app")
  if [ -n "$pid" ]; then
    px1=$(ticks "$pid")
    cs1=$(switches "$pid")
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    sys=$(awk -F, '/raw_syscalls/ {print $1}' "$work/perf.txt")
  fi
  local n rps p50 p99
  n=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
  p50=$(micros "$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")")
  p99=$(micros "$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")")
  awk -v name="$name" -v n="$n" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v hz="$hz" \
    -v px=$((px1 - px0)) -v ap=$((app1 - app0)) -v sys="$sys" -v cs=$((cs1 - cs0)) \
    'BEGIN { printf "%s %.0f %.0f %.0f %.1f %.1f %.2f %.2f\n", name, rps, p50, p99,
             px * 1e6 / hz / n, ap * 1e6 / hz / n, sys / n, cs / n }'
}

echo "# $(nproc) cores, $(uname -r), $(date -u +%FT%TZ); app + proxy on core 1, wrk -t1 -c16 on core 0, ${ROUNDS} x ${DUR}s"
run_target() {
  case $1 in
    direct) measure direct 18080 ;;
    viscount) measure viscount 18087 "$viscount" ;;
    nginx) measure nginx 18081 "$nginx_worker" ;;
    haproxy) measure haproxy 18082 "$haproxy" ;;
    viscount_base) measure viscount_base 18088 "$viscount_base" ;;
  esac
}
for target in "${targets[@]}"; do run_target "$target" >/dev/null; done  # warm-up
: >"$work/results.txt"
for round in $(seq "$ROUNDS"); do
  order=("${targets[@]}")
  if [ $((round % 2)) -eq 0 ]; then  # every other round in reverse: no target always goes first
    order=()
    for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[$i]}"); done
  fi
  for target in "${order[@]}"; do run_target "$target"; done | tee -a "$work/results.txt" | sed "s/^/# round $round: /"
done
# The medians, and the range over the rounds of the proxy's CPU per request.
awk -v targets="${targets[*]}" '
  { rps[$1] = rps[$1] " " $2; p50[$1] = p50[$1] " " $3; p99[$1] = p99[$1] " " $4
    px[$1] = px[$1] " " $5; ap[$1] = ap[$1] " " $6; sc[$1] = sc[$1] " " $7; cs[$1] = cs[$1] " " $8 }
  function med(s,   a, n, i, j, t) { n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  function lo(s,   a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
  function hi(s,   a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
  END {
    printf "| target | req/s | p50 µs | p99 µs | proxy CPU µs/req (range) | app CPU µs/req | syscalls/req | ctx switches/req | tax |\n"
    printf "|---|---|---|---|---|---|---|---|---|\n"
    direct = med(rps["direct"])
    count = split(targets, order, " ")
    for (k = 1; k <= count; k++) { t = order[k]
      printf "| %s | %.0f | %.0f | %.0f | %s | %.0f | %s | %s | %s |\n", t, med(rps[t]), med(p50[t]), med(p99[t]),
        t == "direct" ? "-" : sprintf("%.1f (%.1f-%.1f)", med(px[t]), lo(px[t]), hi(px[t])), med(ap[t]),
        t == "direct" ? "-" : sprintf("%.2f", med(sc[t])), t == "direct" ? "-" : sprintf("%.2f", med(cs[t])),
        t == "direct" ? "-" : sprintf("%.1f%%", 100 * (1 - med(rps[t]) / direct)) }
  }' "$work/results.txt"
