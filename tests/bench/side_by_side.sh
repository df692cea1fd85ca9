#!/usr/bin/env bash
# viscount, nginx and HAProxy as equivalent sidecars (ids injected, JSON access log written) in
# front of the same fast nginx upstream, measured in one run and reported as ratios:
#   - CPU microseconds per request, req/s and context switches per request (wrk -t1 -c64 on
#     core 0; proxy and upstream on core 1), ROUNDS rounds alternating the proxies, medians
#     reported; viscount also with io_uring off (the send() path it takes where io_uring is
#     refused). CPU per request is read from perf samples of core 1 (each process's share of
#     the core over its req/s): the kernel's own per-process figures (/proc) move time between
#     two processes sharing a core (see "Why CPU is sampled" below), so they are reported beside
#     it, with a cross-check that needs neither: each proxy alone on core 1, the upstream moved
#     to core 0 with wrk, where /proc's figure is exact;
#   - latency added at a fixed rate below saturation: an open-loop generator (latency_probe,
#     built with the benchmarks) sends at half of nginx's saturation rate; p50/p99 through each
#     proxy minus direct to the upstream, ROUNDS rounds alternating, medians;
#   - RSS per idle keep-alive connection (IDLE_CONNS for all three; viscount also at 10,000)
#     and idle RSS after start;
#   - viscount's RSS growth while streaming a 1 GiB body to a slow (rate-limited) client;
#   - viscount with 1 and with 2 workers;
#   - HTTP/2 from clients: h2load -c16 -m16 (h2c) through viscount and through nghttpx (to the
#     same HTTP/1.1 upstream), req/s and CPU microseconds per request, alternating rounds.
# It writes OUT/results.md (the table) and OUT/results.png (the plot).
#
#   tests/bench/side_by_side.sh                 # installs wrk, nginx, haproxy, gnuplot if missing
#   SMOKE=1 OUT=/tmp/b tests/bench/side_by_side.sh   # seconds-long run: checks the script works
#   DURATION=20s ROUNDS=5 IDLE_CONNS=4000 VISCOUNT_BIN=... PEERS=... tests/bench/side_by_side.sh
#
# It is a benchmark, not a test: it never fails on a figure. Compare only within one run.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
peers=${PEERS:-}
for candidate in "$root/../shared/bench" /work/shared/bench; do
  if [ -z "$peers" ] && [ -d "$candidate/peers" ]; then peers=$candidate; fi
done
bin=${VISCOUNT_BIN:-$root/build/proxy/viscount}
probe=${LATENCY_PROBE:-$(dirname "$bin")/../tests/bench/latency_probe}
out=${OUT:-$root/tests/bench/results}
if [ "${SMOKE:-0}" = 1 ]; then
  duration=1s rounds=1 idle=200 idle_big=500 stream_mib=64 warm=1s
else
  duration=${DURATION:-10s} rounds=${ROUNDS:-3} idle=${IDLE_CONNS:-4000} idle_big=10000
  stream_mib=1024 warm=2s
fi
conns=64

if [ "$(id -u)" = 0 ] && [ "${VISCOUNT_SKIP_INSTALL:-0}" != 1 ]; then
  missing=()
  for pair in wrk:wrk nginx:nginx-light haproxy:haproxy gnuplot:gnuplot-nox curl:curl \
    h2load:nghttp2-client nghttpx:nghttp2-proxy perf:linux-perf; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
for tool in wrk nginx haproxy taskset curl gnuplot h2load nghttpx; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "missing: $bin (build first: cmake --build build)" >&2; exit 1; }
[ -x "$probe" ] || { echo "missing: $probe (build first: cmake --build build)" >&2; exit 1; }
[ -n "$peers" ] || { echo "missing: the peer configs (set PEERS to the shared bench folder)" >&2; exit 1; }

work=$(mktemp -d)
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)"  # idle connections need descriptors
pids=()
# The nginx peer appends its access log to a file its config names (about 2 GB per full run):
# what this run added is cut off again at the end, what was there before is kept.
nginx_log=$(awk '$1 == "access_log" && $2 ~ /^\// {print $2; exit}' "$peers/peers/proxy-nginx.conf")
nginx_log_size=$( [ -n "$nginx_log" ] && [ -f "$nginx_log" ] && stat -c %s "$nginx_log" || echo 0)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  if [ -n "$nginx_log" ] && [ -f "$nginx_log" ]; then truncate -s "$nginx_log_size" "$nginx_log" || true; fi
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# The same over the figures that were measured ("n/a" left out); nothing when there are none.
median_known() { awk '$1 != "n/a" && $1 != ""' | sort -g | awk '{a[NR]=$1} END{if (NR > 0) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1==k{print $2}'; }
# "1.23ms" / "456.00us" / "1.2s" -> microseconds
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v*1000} else {sub(/s$/,"",v); print v*1e6}}'; }

viscount_config() {  # port workers admin_port upstream_port [io_uring]
  cat <<EOF
workers: $2
io_uring: ${5:-true}
listeners:
  - name: inbound
    address: 127.0.0.1:$1
    upstream: app
    limits: {max_connections: 20000, max_request_body_size: 0}
upstreams:
  - name: app
    url: http://127.0.0.1:$4
    timeouts: {request: 120s}
    # As the peers: nginx keeps 64 idle upstream connections (keepalive 64) and opens more as
    # needed, HAProxy reuses every one (http-reuse always).
    pool: {size: 64, max_overflow: 64}
logging: {access_log: $work/viscount-$1.log, format: json}
admin: {address: 127.0.0.1:$3}
EOF
}

# ---- start everything --------------------------------------------------------------------------
taskset -c 1 nginx -c "$peers/peers/upstream-nginx.conf" &
pids+=($!)
upstream_master=$!
wait_port 18080
taskset -c 1 nginx -c "$peers/peers/proxy-nginx.conf" &
pids+=($!)
nginx_master=$!
taskset -c 1 haproxy -f "$peers/peers/proxy-haproxy.cfg" >/dev/null &
pids+=($!)
haproxy_pid=$!
viscount_config 18085 1 18095 18080 >"$work/viscount.yaml"
taskset -c 1 "$bin" --config "$work/viscount.yaml" 2>"$work/viscount-events.log" &
pids+=($!)
viscount_pid=$!
viscount_config 18090 1 18100 18080 false >"$work/viscount-send.yaml"
taskset -c 1 "$bin" --config "$work/viscount-send.yaml" 2>"$work/viscount-send-events.log" &
pids+=($!)
send_pid=$!
wait_port 18081
wait_port 18082
wait_port 18085
wait_port 18090
nginx_pid=$(pgrep -P "$nginx_master" | head -1)  # the worker: the master does no request work
sleep 0.5
idle_rss_viscount=$(rss_kb "$viscount_pid")
idle_rss_nginx=$(($(rss_kb "$nginx_pid") + $(rss_kb "$nginx_master")))
idle_rss_haproxy=$(rss_kb "$haproxy_pid")

proxies=("viscount 18085 $viscount_pid" "nginx 18081 $nginx_pid" "haproxy 18082 $haproxy_pid")
io_uring_used=$(grep -o '"io_uring":[a-z]*' "$work/viscount-events.log" | head -1 | cut -d: -f2)
switches() { awk '/ctxt_switches/{s+=$2} END{print s}' /proc/"$1"/task/*/status; }
proc_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
upstream_pid=$(pgrep -P "$upstream_master" | head -1)

# ---- CPU per request and req/s, alternating -----------------------------------------------------
# Why CPU is sampled: the kernel charges a process for its time on the CPU from its own clock
# readings at each switch, and after a wakeup that should preempt the running task it skips one
# reading, expecting the switch to follow at once. viscount's end-of-turn io_uring call wakes
# the upstream with its first send and goes on sending the rest of the turn's output in the
# kernel; the switch comes only when the call returns, and the time in between is charged to the
# upstream. /proc then shows viscount about 3 µs per request cheaper and the upstream as much
# dearer than they are (measured on 2026-12-06: /proc 10.4 µs, perf samples 13.2 µs, and 13.3
# µs by /proc with nothing else on the core). perf's cpu-clock samples of core 1 are taken by a
# timer whatever the scheduler thinks: a process's share of them over req/s is its CPU per
# request.
perf_ok=0
if command -v perf >/dev/null && perf record -q -a -C 1 -F 99 -o "$work/perf-probe.data" -- true >/dev/null 2>&1; then
  perf_ok=1
fi
sample_core1() {  # seconds output-file: perf samples of core 1, in the background
  if [ "$perf_ok" = 1 ]; then
    perf record -q -a -C 1 -F 999 -o "$2" -- sleep "$1" >/dev/null 2>&1 || true
  fi
}
share() {  # perf-file pid: the fraction of core 1's samples in that process (all its threads)
  [ -s "$1" ] || return 0
  perf script -i "$1" -F pid 2>/dev/null | awk -v p="$2" '{n++; if ($1 == p) k++} END{if (n > 0) printf "%.5f", k/n}'
}
per_req() {  # share rps -> µs per request, or n/a
  awk -v s="$1" -v r="$2" 'BEGIN{if (s == "" || r <= 0) print "n/a"; else printf "%.2f", s*1e6/r}'
}
secs=${duration%s}
# Samples cover the middle of each run (wrk's ramp-up and its last moments left out).
sample_delay=$(awk -v t="$secs" 'BEGIN{print (t >= 4) ? 1 : t/4}')
sample_len=$(awk -v t="$secs" 'BEGIN{print (t >= 4) ? t-2 : t/2}')
echo "# wrk -t1 -c$conns -d$duration x $rounds rounds; proxy and upstream on core 1, wrk on core 0"
[ "$perf_ok" = 1 ] || echo "# perf cannot sample here: CPU per request from the proxy-alone runs (/proc beside the upstream is skewed: see the script)"
cpu_entries=("${proxies[@]}" "viscount-send 18090 $send_pid")
for entry in "${cpu_entries[@]}"; do
  set -- $entry
  taskset -c 0 wrk -t1 -c"$conns" -d"$warm" "http://127.0.0.1:$2/warm" >/dev/null
done
for round in $(seq "$rounds"); do
  for entry in "${cpu_entries[@]}"; do
    set -- $entry
    s0=$(switches "$3")
    u0=$(proc_ticks "$upstream_pid")
    samples="$work/perf-$1-$round.data"
    (sleep "$sample_delay" && sample_core1 "$sample_len" "$samples") &
    sampler_pid=$!
    line=$("$peers/cpu_per_req.sh" "$3" "http://127.0.0.1:$2/x" -t1 -c"$conns" -d"$duration")
    wait "$sampler_pid" || true
    u1=$(proc_ticks "$upstream_pid")
    s1=$(switches "$3")
    rps_now=$(echo "$line" | field rps)
    sw=$(awk -v a="$s0" -v b="$s1" -v r="$rps_now" -v t="$secs" 'BEGIN{printf "%.3f", (r>0)?(b-a)/(r*t):0}')
    # The upstream shares the core: its CPU per request is the other half of req/s.
    up=$(awk -v a="$u0" -v b="$u1" -v r="$rps_now" -v t="$secs" -v hz="$(getconf CLK_TCK)" \
      'BEGIN{printf "%.2f", (r>0)?(b-a)/hz*1e6/(r*t):0}')
    sampled=$(per_req "$(share "$samples" "$3")" "$rps_now")
    up_sampled=$(per_req "$(share "$samples" "$upstream_pid")" "$rps_now")
    rm -f "$samples"
    echo "round $round $1 $line sampled_cpu_us_per_req=$sampled switches_per_req=$sw upstream_us_per_req=$up upstream_sampled_us_per_req=$up_sampled" |
      tee -a "$work/cpu.txt"
  done
done
# Cross-check without perf: the upstream (master and worker) moves to core 0 beside wrk, so each
# proxy has core 1 to itself and /proc's figure for it is exact. Its req/s is not comparable.
taskset -pc 0 "$upstream_master" >/dev/null
taskset -pc 0 "$upstream_pid" >/dev/null
for round in $(seq "$rounds"); do
  for entry in "${cpu_entries[@]}"; do
    set -- $entry
    line=$("$peers/cpu_per_req.sh" "$3" "http://127.0.0.1:$2/x" -t1 -c"$conns" -d"$duration")
    echo "alone round $round $1 $line" | tee -a "$work/cpu-alone.txt"
  done
done
taskset -pc 1 "$upstream_master" >/dev/null
taskset -pc 1 "$upstream_pid" >/dev/null
for name in viscount nginx haproxy viscount-send; do
  grep " $name " "$work/cpu.txt" | field cpu_us_per_req | median >"$work/proccpu_$name"
  grep " $name " "$work/cpu.txt" | field sampled_cpu_us_per_req | median_known >"$work/cpu_$name"
  grep " $name " "$work/cpu.txt" | field rps | median >"$work/rps_$name"
  grep " $name " "$work/cpu.txt" | field switches_per_req | median >"$work/sw_$name"
  grep " $name " "$work/cpu.txt" | field upstream_us_per_req | median >"$work/procup_$name"
  grep " $name " "$work/cpu.txt" | field upstream_sampled_us_per_req | median_known >"$work/up_$name"
  grep " $name " "$work/cpu-alone.txt" | field cpu_us_per_req | median >"$work/alone_$name"
  # Without perf the sampled figures are missing: the proxy-alone figure stands in for the
  # proxy's, /proc's for the upstream's, and the table says so.
  [ -s "$work/cpu_$name" ] || cp "$work/alone_$name" "$work/cpu_$name"
  [ -s "$work/up_$name" ] || cp "$work/procup_$name" "$work/up_$name"
done
sw() { cat "$work/sw_$1"; }
up() { cat "$work/up_$1"; }
procup() { cat "$work/procup_$1"; }
cpu() { cat "$work/cpu_$1"; }
proccpu() { cat "$work/proccpu_$1"; }
alone() { cat "$work/alone_$1"; }
rps() { cat "$work/rps_$1"; }

# ---- latency added at a fixed rate ------------------------------------------------------------
# An open-loop generator: requests are due at a steady rate whatever the proxy does, and each
# one's latency counts from when it was due (a closed-loop tool such as wrk only times what it
# manages to send). Half of nginx's saturation rate, 32 keep-alive connections, rounds alternate.
half=$(awk -v r="$(rps nginx)" 'BEGIN{printf "%d", r/2}')
lat_conns=32
echo "# latency at $half req/s (half of nginx's saturation): latency_probe, $lat_conns connections"
for round in $(seq "$rounds"); do
  for target in "direct 18080" "viscount 18085" "nginx 18081" "haproxy 18082"; do
    set -- $target
    res=$(taskset -c 0 "$probe" "$2" "$half" "${duration%s}" "$lat_conns" /x 1 || true)
    echo "round $round $1 $res" | tee -a "$work/lat.txt"
  done
done
lat() { grep " $1 " "$work/lat.txt" | field "$2" | median; }
added() { awk -v a="$(lat "$1" "$2")" -v d="$(lat direct "$2")" 'BEGIN{printf "%.0f", a-d}'; }

# ---- idle keep-alive connections --------------------------------------------------------------
# viscount on a fresh process: the one above reuses what the load left it (the memory of
# thousands of requests in flight) and would show about 0 B. The peers keep their loaded
# processes (nginx's master has forked its worker, HAProxy has one process).
viscount_config 18086 1 18096 18080 >"$work/viscount-idle.yaml"
fresh_idle() {  # connections
  local pid line
  taskset -c 1 "$bin" --config "$work/viscount-idle.yaml" 2>/dev/null &
  pid=$!
  pids+=($pid)
  wait_port 18086
  curl -s -o /dev/null "http://127.0.0.1:18086/" || true  # warm: one request, pools and buffers
  line=$(/usr/bin/python3 "$peers/idle_conns.py" 18086 "$pid" "$1")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$line"
}
echo "# $idle idle keep-alive connections each"
for entry in "${proxies[@]}"; do
  set -- $entry
  if [ "$1" = viscount ]; then
    line=$(fresh_idle "$idle")
  else
    line=$(/usr/bin/python3 "$peers/idle_conns.py" "$2" "$3" "$idle")
  fi
  echo "$1 $line" | tee -a "$work/idle.txt"
done
idle_b() { grep "^$1 " "$work/idle.txt" | field bytes_per_idle_conn; }

# viscount alone at 10,000 (nginx's worker_connections and HAProxy's maxconn are lower).
big_line=$(fresh_idle "$idle_big")
echo "viscount@$idle_big $big_line"
big_b=$(echo "$big_line" | field bytes_per_idle_conn)

# ---- a 1 GiB body through a slow client --------------------------------------------------------
mkdir -p "$work/www"
truncate -s "${stream_mib}M" "$work/www/big"
chmod 755 "$work" "$work/www" && chmod 644 "$work/www/big"  # nginx's worker runs as nobody
cat >"$work/stream-upstream.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/stream-upstream.pid;
error_log /dev/null crit;
events { worker_connections 64; }
http {
  access_log off;
  server { listen 127.0.0.1:18087; root $work/www; }
}
EOF
taskset -c 1 nginx -c "$work/stream-upstream.conf" &
pids+=($!)
viscount_config 18088 1 18098 18087 >"$work/viscount-stream.yaml"
taskset -c 1 "$bin" --config "$work/viscount-stream.yaml" 2>/dev/null &
pids+=($!)
stream_pid=$!
wait_port 18087
wait_port 18088
curl -s -o /dev/null "http://127.0.0.1:18088/" || true  # warm: one request, pools and buffers
stream_before=$(rss_kb "$stream_pid")
(
  peak=0
  while kill -0 "$stream_pid" 2>/dev/null; do
    r=$(rss_kb "$stream_pid" 2>/dev/null || echo 0)
    [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$work/stream_peak"
    sleep 0.05
  done
) &
sampler=$!
# The client reads at 200 MB/s, slower than the upstream sends: backpressure must hold the rest.
got=$(taskset -c 0 curl -s --limit-rate 200M -o /dev/null -w '%{size_download}' \
  "http://127.0.0.1:18088/big")
kill "$sampler" 2>/dev/null || true
stream_peak=$(cat "$work/stream_peak" 2>/dev/null || echo "$stream_before")
stream_growth=$((stream_peak - stream_before))
echo "# streamed $got bytes: viscount RSS $stream_before KiB before, peak $stream_peak KiB"
if [ "$got" != $((stream_mib * 1048576)) ]; then
  echo "the streamed body is incomplete ($got bytes): the memory figure means nothing" >&2
  stream_growth=n/a
fi
kill "$stream_pid"

# ---- HTTP/2 from clients: h2load vs nghttpx ---------------------------------------------------
# nghttpx as the HTTP/2 peer (h2c front end, HTTP/1.1 to the same upstream, one worker, an access
# log line per request); neither injects ids there, viscount still does.
taskset -c 1 nghttpx --frontend='127.0.0.1,18083;no-tls' --backend='127.0.0.1,18080' --workers=1 \
  --accesslog-file="$work/nghttpx.log" \
  --accesslog-format='{"remote":"$remote_addr","request":"$request","status":$status,"bytes":$body_bytes_sent,"time":$request_time}' \
  --errorlog-file="$work/nghttpx-error.log" --no-ocsp --conf=/dev/null 2>/dev/null &
pids+=($!)
nghttpx_master=$!
wait_port 18083 || { cat "$work/nghttpx-error.log" >&2; exit 1; }
nghttpx_pid=
for _ in $(seq 100); do  # the master binds, then forks the worker that does the work
  nghttpx_pid=$(pgrep -P "$nghttpx_master" | head -1 || true)
  [ -n "$nghttpx_pid" ] && break
  sleep 0.05
done
[ -n "$nghttpx_pid" ] || { echo "nghttpx started no worker" >&2; exit 1; }
h2_seconds=${duration%s}
h2run() {  # name port pid round
  local c0 c1 out samples sampler
  samples="$work/perf-h2-$1-$4.data"
  (sleep "$sample_delay" && sample_core1 "$sample_len" "$samples") &
  sampler=$!
  c0=$(awk '{print $14+$15}' "/proc/$3/stat")
  out=$(taskset -c 0 h2load -t1 -c16 -m16 -D "$h2_seconds" "http://127.0.0.1:$2/x" 2>&1)
  c1=$(awk '{print $14+$15}' "/proc/$3/stat")
  wait "$sampler" || true
  local rps_now
  rps_now=$(echo "$out" | awk '/^finished in/ {printf "%.0f", $4}')
  local sampled
  sampled=$(per_req "$(share "$samples" "$3")" "${rps_now:-0}")
  rm -f "$samples"
  echo "$out" | awk -v name="$1" -v c0="$c0" -v c1="$c1" -v t="$(getconf CLK_TCK)" -v sampled="$sampled" '
    /^finished in/ {rps=$4}
    /^requests:/ {ok=$8}
    /^status codes:/ {codes=$3}
    END {printf "%s rps=%.0f succeeded=%d cpu_us_per_req=%.2f sampled_cpu_us_per_req=%s\n", name, rps, ok, (ok>0)?(c1-c0)/t*1e6/ok:0, sampled}'
}
echo "# HTTP/2: h2load -t1 -c16 -m16 -D $h2_seconds x $rounds rounds (h2c), alternating"
for round in $(seq "$rounds"); do
  for target in "viscount 18085 $viscount_pid" "nghttpx 18083 $nghttpx_pid"; do
    set -- $target
    echo "round $round $(h2run "$1" "$2" "$3" "$round")" | tee -a "$work/h2.txt"
  done
done
for name in viscount nghttpx; do
  grep " $name " "$work/h2.txt" | field rps | median >"$work/h2rps_$name"
  grep " $name " "$work/h2.txt" | field cpu_us_per_req | median >"$work/h2proccpu_$name"
  grep " $name " "$work/h2.txt" | field sampled_cpu_us_per_req | median_known >"$work/h2cpu_$name"
  [ -s "$work/h2cpu_$name" ] || cp "$work/h2proccpu_$name" "$work/h2cpu_$name"
done
h2rps() { cat "$work/h2rps_$1"; }
h2cpu() { cat "$work/h2cpu_$1"; }
h2proccpu() { cat "$work/h2proccpu_$1"; }

# ---- 1 and 2 workers -----------------------------------------------------------------------
viscount_config 18089 2 18099 18080 >"$work/viscount-2w.yaml"
"$bin" --config "$work/viscount-2w.yaml" 2>/dev/null &
pids+=($!)
two_pid=$!
wait_port 18089
one_w=$(taskset -c 0 wrk -t1 -c"$conns" -d"$duration" "http://127.0.0.1:18085/x" |
  awk '/Requests\/sec/{printf "%d", $2}')
two_w=$(taskset -c 0 wrk -t1 -c"$conns" -d"$duration" "http://127.0.0.1:18089/x" |
  awk '/Requests\/sec/{printf "%d", $2}')
echo "# viscount workers=1 (core 1): $one_w req/s; workers=2 (both cores, shared with wrk): $two_w req/s"
kill "$two_pid"

lines=$(cat "$work"/viscount-18085.log | wc -l)

# ---- the table and the plot -------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
lower() { awk -v a="$1" -v b="$2" 'BEGIN{print (a<b)?a:b}'; }
best_cpu=$(lower "$(cpu nginx)" "$(cpu haproxy)")
cpu_ratio=$(ratio "$(cpu viscount)" "$best_cpu")
best_alone=$(lower "$(alone nginx)" "$(alone haproxy)")
best_proc=$(lower "$(proccpu nginx)" "$(proccpu haproxy)")
cpu_how=$([ "$perf_ok" = 1 ] && echo "perf samples of core 1" || echo "perf could not sample here: the proxy alone on core 1")
# The upstream's and HTTP/2's figures have no proxy-alone run to fall back on.
proc_how=$([ "$perf_ok" = 1 ] && echo "perf samples of core 1" || echo "perf could not sample here: /proc, skewed")
rps_ratio=$(ratio "$(rps viscount)" "$(rps nginx)")
verdict() { awk -v v="$1" -v lim="$2" -v dir="$3" 'BEGIN{ok=(dir=="le")?(v<=lim):(v>=lim); print ok?"met":"not met"}'; }
machine="$(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME")"
{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $machine$([ "${SMOKE:-0}" = 1 ] && echo ' (SMOKE run: figures are meaningless)')."
  echo "wrk -t1 -c$conns -d$duration, $rounds rounds alternating, medians; proxy and upstream pinned to core 1, wrk to core 0."
  [ "$perf_ok" = 1 ] || echo "perf could not sample on this machine: the CPU figure is the proxy-alone cross-check below."
  echo "CPU per request: each process's share of perf's cpu-clock samples of core 1 over its req/s; /proc's own figure beside it moves about 3 µs per request from viscount to the upstream (its io_uring call wakes the upstream and the kernel skips a clock reading until the call returns), so the cross-check runs each proxy alone on core 1 (the upstream on core 0 with wrk), where /proc is exact."
  echo "viscount: ids + JSON access log on ($lines lines written in the main run); io_uring in use: ${io_uring_used:-unknown}."
  echo "viscount (send()): the same with \`io_uring: false\`, the path taken where io_uring is refused (seccomp)."
  echo "Latency: latency_probe (open loop, $lat_conns keep-alive connections) at $half req/s, p50/p99 through the proxy minus direct, medians of $rounds rounds."
  echo
  echo "| | viscount | nginx | HAProxy | viscount (send()) |"
  echo "|---|---|---|---|---|"
  echo "| CPU µs per request ($cpu_how) | $(cpu viscount) | $(cpu nginx) | $(cpu haproxy) | $(cpu viscount-send) |"
  echo "| CPU µs per request, the proxy alone on core 1 (/proc, exact there) | $(alone viscount) | $(alone nginx) | $(alone haproxy) | $(alone viscount-send) |"
  echo "| CPU µs per request as /proc accounts it beside the upstream (skewed) | $(proccpu viscount) | $(proccpu nginx) | $(proccpu haproxy) | $(proccpu viscount-send) |"
  echo "| req/s (1 worker each) | $(rps viscount) | $(rps nginx) | $(rps haproxy) | $(rps viscount-send) |"
  echo "| context switches per request | $(sw viscount) | $(sw nginx) | $(sw haproxy) | $(sw viscount-send) |"
  echo "| the upstream's CPU µs per request behind it ($proc_how) | $(up viscount) | $(up nginx) | $(up haproxy) | $(up viscount-send) |"
  echo "| the same as /proc accounts it (skewed) | $(procup viscount) | $(procup nginx) | $(procup haproxy) | $(procup viscount-send) |"
  echo "| p50 / p99 added at $half req/s (µs) | $(added viscount p50_us) / $(added viscount p99_us) | $(added nginx p50_us) / $(added nginx p99_us) | $(added haproxy p50_us) / $(added haproxy p99_us) | |"
  echo "| RSS per idle keep-alive connection ($idle; viscount on a fresh process) | $(idle_b viscount) B | $(idle_b nginx) B | $(idle_b haproxy) B | |"
  echo "| idle RSS after start | $idle_rss_viscount KiB | $idle_rss_nginx KiB (master + worker) | $idle_rss_haproxy KiB | |"
  echo
  echo "Direct to the upstream at $half req/s: p50 $(lat direct p50_us) µs, p99 $(lat direct p99_us) µs."
  echo
  echo "| goal | measured | |"
  echo "|---|---|---|"
  echo "| CPU per request ≤ 0.75 × best of nginx/HAProxy | $cpu_ratio × ($(ratio "$(cpu viscount-send)" "$best_cpu") × with send(); alone on the core $(ratio "$(alone viscount)" "$best_alone") ×; /proc's skewed figure $(ratio "$(proccpu viscount)" "$best_proc") ×) | $(verdict "$cpu_ratio" 0.75 le) |"
  echo "| req/s ≥ 1.25 × nginx, one worker each | $rps_ratio × ($(ratio "$(rps viscount-send)" "$(rps nginx)") × with send()) | $(verdict "$rps_ratio" 1.25 ge) |"
  echo "| ≤ 512 B per idle keep-alive connection (at $idle_big) | $big_b B | $(verdict "$big_b" 512 le) |"
  echo "| idle RSS ≤ 8 MB | $idle_rss_viscount KiB | $(verdict "$idle_rss_viscount" 8192 le) |"
  echo "| RSS growth ≤ 2 MB streaming ${stream_mib} MiB to a 200 MB/s client | $stream_growth KiB | $([ "$stream_growth" = n/a ] && echo failed || verdict "$stream_growth" 2048 le) |"
  p99_added=$(added viscount p99_us)
  # A negative figure means the direct run's own p99 was the noisier one: nothing was measured.
  echo "| p99 added ≤ 100 µs at half of nginx's saturation | $p99_added µs | $([ "$p99_added" -lt 0 ] && echo 'inconclusive: direct p99 noisier' || verdict "$p99_added" 100 le) |"
  echo
  echo "Scaling: viscount with 1 worker $one_w req/s, with 2 workers $two_w req/s (2 cores shared with wrk)."
  echo
  echo "HTTP/2 from clients (h2c, h2load -t1 -c16 -m16, $rounds rounds alternating, medians; HTTP/1.1 to the upstream):"
  echo
  echo "| | viscount | nghttpx | viscount / nghttpx |"
  echo "|---|---|---|---|"
  echo "| req/s (1 worker each) | $(h2rps viscount) | $(h2rps nghttpx) | $(ratio "$(h2rps viscount)" "$(h2rps nghttpx)") × |"
  echo "| CPU µs per request ($proc_how) | $(h2cpu viscount) | $(h2cpu nghttpx) | $(ratio "$(h2cpu viscount)" "$(h2cpu nghttpx)") × |"
  echo "| CPU µs per request as /proc accounts it (skewed) | $(h2proccpu viscount) | $(h2proccpu nghttpx) | $(ratio "$(h2proccpu viscount)" "$(h2proccpu nghttpx)") × |"
} >"$out/results.md"

printf 'viscount %s %s\nnginx %s %s\nHAProxy %s %s\n' \
  "$(cpu viscount)" "$(idle_b viscount)" "$(cpu nginx)" "$(idle_b nginx)" \
  "$(cpu haproxy)" "$(idle_b haproxy)" >"$work/plot.dat"
gnuplot <<EOF
set terminal png size 900,360
set output "$out/results.png"
set multiplot layout 1,2 title "viscount vs nginx vs HAProxy, one run ($(date -u +%Y-%m-%d))"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.6
set yrange [0:*]
set grid ytics
unset key
set title "CPU microseconds per request (lower is better)"
plot "$work/plot.dat" using 2:xtic(1) linecolor rgb "#3465a4"
set title "bytes of RSS per idle keep-alive connection"
plot "$work/plot.dat" using 3:xtic(1) linecolor rgb "#cc6633"
unset multiplot
EOF
cat "$out/results.md"
echo "written: $out/results.md $out/results.png"
