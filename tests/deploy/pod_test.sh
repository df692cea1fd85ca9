#!/usr/bin/env bash
# The deploy test: builds the viscount and demo-app images, checks the Kubernetes manifests, runs
# the Deployment's pod with `podman kube play` and proves, through the published ports:
#   (a) requests through viscount get 200 and an x-request-id; the id a trusted caller sends
#       reaches the app and comes back; an untrusted caller's id is replaced;
#   (b) viscount's container log is JSON: one contract-shaped access-log line per request,
#       carrying those ids, and JSON events on stderr;
#   (c) SIGTERM to viscount (the older-cluster order: the app stays up): /ready turns 503 at
#       once, new connections are refused, a slow request in flight still ends with 200, and
#       viscount exits 0 as soon as it is done, well before drain_timeout.
#   tests/deploy/pod_test.sh     # as root on Debian bookworm with podman (install-deps.sh)
# tests/run.sh runs it after the optimised build; VISCOUNT_SKIP_POD_TEST=1 skips it there.
# Podman specifics (runc, explicit ulimits) come from deploy/container/containers.conf.
# Manifests are rendered with `kubectl kustomize` where kubectl exists (VISCOUNT_RENDER=builtin
# uses tests/deploy/manifests.py's own renderer, as on hosts without kubectl).
set -Eeuo pipefail  # -E: the ERR trap below also reports failures inside functions
cd "$(dirname "$0")/../.."
REPO=$PWD
export CONTAINERS_CONF=${CONTAINERS_CONF:-$REPO/deploy/container/containers.conf}
PY=/usr/bin/python3  # Debian's, with python3-yaml
CHECK="$PY $REPO/tests/deploy/pod_checks.py"
MANIFESTS="$PY $REPO/tests/deploy/manifests.py"
# Names of this run only: runs from other checkouts may share the host's podman.
POD=viscount-pod-test-$$
VERSION=$(sed -n 's/^project(viscount VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
RUN_TAG=pod-test-$$
VISCOUNT_IMAGE=localhost/viscount:$RUN_TAG
APP_IMAGE=localhost/viscount-demo-app:$RUN_TAG
WORK=$(mktemp -d /tmp/viscount-pod-test.XXXXXX)
STARTED=$SECONDS
CONFIG_VOLUME=
PLAYED=0

fail() {
  echo "pod_test: FAIL: $*" >&2
  exit 1
}
step() { echo "== [$((SECONDS - STARTED))s] $*"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$PLAYED" = 1 ]; then
    if [ "$rc" != 0 ]; then
      for c in viscount app; do
        echo "-- last lines of $POD-$c (stdout and stderr)" >&2
        podman logs --tail 25 "$POD-$c" >&2 2>&1 || true
      done
    fi
    podman pod rm --force --time 0 "$POD" >/dev/null 2>&1 || true
  fi
  # kube play turns the ConfigMap into a named volume that kube down leaves behind.
  [ -z "$CONFIG_VOLUME" ] || podman volume rm --force "$CONFIG_VOLUME" >/dev/null 2>&1 || true
  # The images stay, tagged with the version; only this run's tag goes.
  podman untag "$VISCOUNT_IMAGE" "$VISCOUNT_IMAGE" >/dev/null 2>&1 || true
  podman untag "$APP_IMAGE" "$APP_IMAGE" >/dev/null 2>&1 || true
  local pids
  pids=$(jobs -p)
  [ -z "$pids" ] || kill $pids 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
  if [ "$rc" = 0 ]; then echo "pod_test: passed in $((SECONDS - STARTED))s"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "pod_test: FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR

for tool in podman curl "$PY"; do
  command -v "$tool" >/dev/null || fail "$tool is missing (deploy/local/install-deps.sh)"
done
"$PY" -c 'import yaml' 2>/dev/null || fail "python3-yaml is missing (install-deps.sh)"

# --- images ----------------------------------------------------------------------------------
step "base image"
deploy/container/base-image.sh

build_image() {  # CONTAINERFILE NAME: tagged NAME:VERSION, and NAME:RUN_TAG for this run
  local t0=$SECONDS
  if ! podman build --pull=never --network=host -f "$1" -t "localhost/$2:$VERSION" \
    -t "localhost/$2:$RUN_TAG" . >"$WORK/build-$2.log" 2>&1; then
    tail -n 40 "$WORK/build-$2.log" >&2
    fail "building the $2 image failed"
  fi
  echo "   localhost/$2:$VERSION built in $((SECONDS - t0))s"
}
step "viscount image"
build_image deploy/container/Containerfile viscount
step "demo app image"
build_image deploy/container/demo-app.Containerfile viscount-demo-app

size_of() { podman image inspect --format '{{.Size}}' "$1"; }
VISCOUNT_SIZE=$(size_of "$VISCOUNT_IMAGE")
APP_SIZE=$(size_of "$APP_IMAGE")
BASE_SIZE=$(size_of docker.io/library/debian:bookworm-slim)

step "the image: non-root, default config valid, runs on a read-only root"
[ "$(podman image inspect --format '{{.Config.User}}' "$VISCOUNT_IMAGE")" = 65532:65532 ] ||
  fail "the viscount image must run as 65532:65532"
podman run --rm --read-only --network=none "$VISCOUNT_IMAGE" --validate \
  --config /etc/viscount/viscount.yaml >/dev/null 2>&1 ||
  fail "the image's default config /etc/viscount/viscount.yaml is not valid"

# --- manifests -------------------------------------------------------------------------------
step "kubernetes manifests: render, YAML, rules, config checked by the real binary"
# manifests.py renders both everywhere; where kubectl exists its rendering is used and the two
# must agree, so the renderer a host without kubectl relies on is checked on every run here.
$MANIFESTS render deploy/kubernetes/base >"$WORK/base-builtin.yaml"
$MANIFESTS render deploy/kubernetes/pre-1.29 >"$WORK/pre-1.29-builtin.yaml"
if command -v kubectl >/dev/null && [ "${VISCOUNT_RENDER:-kubectl}" = kubectl ]; then
  kubectl kustomize deploy/kubernetes/base >"$WORK/base.yaml"
  kubectl kustomize deploy/kubernetes/pre-1.29 >"$WORK/pre-1.29.yaml"
  $MANIFESTS same "$WORK/base.yaml" "$WORK/base-builtin.yaml"
  $MANIFESTS same "$WORK/pre-1.29.yaml" "$WORK/pre-1.29-builtin.yaml"
  echo "   rendered with kubectl kustomize (base and pre-1.29); manifests.py renders the same"
else
  cp "$WORK/base-builtin.yaml" "$WORK/base.yaml"
  cp "$WORK/pre-1.29-builtin.yaml" "$WORK/pre-1.29.yaml"
  echo "   without kubectl: base and pre-1.29 rendered by manifests.py"
fi
$MANIFESTS check "$WORK/pre-1.29.yaml"
for f in deploy/kubernetes/*/*.yaml; do
  "$PY" -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" ||
    fail "$f is not valid YAML"
done
$MANIFESTS check --native "$WORK/base.yaml"
$MANIFESTS config "$WORK/base.yaml" >"$WORK/viscount.yaml"
validate() {  # FILE -> the binary's exit code
  podman run --rm --read-only --network=none -v "$1:/config/viscount.yaml:ro" \
    "$VISCOUNT_IMAGE" --validate --config /config/viscount.yaml >"$WORK/validate.out" 2>&1
}
validate "$WORK/viscount.yaml" || { cat "$WORK/validate.out" >&2; fail "the ConfigMap's viscount.yaml is invalid"; }
cp "$WORK/viscount.yaml" "$WORK/broken.yaml"
echo "drain_timout: 5s" >>"$WORK/broken.yaml"  # a typo'd key must be refused, with its line
if validate "$WORK/broken.yaml" || ! grep -q 'viscount.yaml:[0-9]*:[0-9]*:' "$WORK/validate.out"; then
  fail "--validate accepted an unknown key (the validation step would prove nothing)"
fi

# --- the pod ---------------------------------------------------------------------------------
step "pod: derived from the Deployment, started with podman kube play"
read -r HTTP_PORT ADMIN_PORT < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
read -r LISTEN_PORT CONFIG_ADMIN_PORT DRAIN_S < <($MANIFESTS facts "$WORK/base.yaml")
$MANIFESTS pod "$WORK/base.yaml" --name "$POD" \
  --image "viscount=$VISCOUNT_IMAGE" --image "viscount-demo-app=$APP_IMAGE" \
  --publish "$LISTEN_PORT=$HTTP_PORT" --publish "$CONFIG_ADMIN_PORT=$ADMIN_PORT" >"$WORK/pod.yaml"
CONFIG_VOLUME=$("$PY" -c 'import sys, yaml
print(next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d["kind"] == "ConfigMap")["metadata"]["name"])' "$WORK/pod.yaml")
podman pod rm --force --time 0 "$POD" >/dev/null 2>&1 || true
podman volume rm --force "$CONFIG_VOLUME" >/dev/null 2>&1 || true  # never a stale config
PLAYED=1
podman kube play "$WORK/pod.yaml" >"$WORK/play.out" 2>&1 || { cat "$WORK/play.out" >&2; fail "podman kube play failed"; }
PROXY=http://127.0.0.1:$HTTP_PORT
ADMIN=http://127.0.0.1:$ADMIN_PORT
echo "   listener $PROXY, admin $ADMIN"

wait_for() {  # URL STATUS SECONDS
  local deadline=$((SECONDS + $3)) code
  while [ $SECONDS -lt $deadline ]; do
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true)
    [ "$code" = "$2" ] && return 0
    sleep 0.2
  done
  return 1
}
wait_for "$ADMIN/ready" 200 30 || fail "viscount's /ready did not answer 200 within 30s"
wait_for "$ADMIN/healthz" 200 5 || fail "viscount's /healthz did not answer 200"
wait_for "$PROXY/" 200 60 || fail "the app did not answer through viscount within 60s"

# --- (a) ids through the pod ----------------------------------------------------------------
step "(a) requests through viscount: status 200, ids sent, seen by the app, returned"
RUN_ID=$(date +%s)-$$
OUTSIDE_SENT=pod-test-outside-$RUN_ID
$CHECK fetch "$PROXY/" --header "x-request-id: $OUTSIDE_SENT" >"$WORK/outside.json"
OUTSIDE_ID=$($CHECK response "$WORK/outside.json")
TRUSTED_ID=pod-test-$RUN_ID
BODY="hello from inside the pod"
# From the app container: a loopback caller, which the ConfigMap trusts.
podman exec -i "$POD-app" python3 - fetch "http://127.0.0.1:$LISTEN_PORT/echo" \
  --header "x-request-id: $TRUSTED_ID" --header "x-user-id: alice" --data "$BODY" \
  <tests/deploy/pod_checks.py >"$WORK/trusted.json" || fail "the in-pod request failed"
$CHECK response "$WORK/trusted.json" --id "$TRUSTED_ID" --user alice --bytes ${#BODY} >/dev/null
echo "   outside caller: 200, its id replaced by $OUTSIDE_ID; in-pod caller: $TRUSTED_ID kept"
sleep 1  # the access log is written by its own thread
podman logs "$POD-app" >"$WORK/app.out" 2>/dev/null
$CHECK app-log "$WORK/app.out" --id "$TRUSTED_ID" --path /echo

# --- (b) logs ---------------------------------------------------------------------------------
step "(b) viscount's container log: JSON access lines with the ids, JSON events"
podman logs "$POD-viscount" >"$WORK/viscount.out" 2>"$WORK/viscount.err"
$CHECK access-log "$WORK/viscount.out" --id "$TRUSTED_ID" \
  --field method='"POST"' --field path='"/echo"' --field protocol='"HTTP/1.1"' \
  --field status=200 --field user_id='"alice"' --field upstream='"app"' \
  --field upstream_address='"127.0.0.1:8000"' --field error=null --field attempts=1 \
  --field bytes_in=${#BODY} >"$WORK/trusted-line.json"
$CHECK access-log "$WORK/viscount.out" --id "$OUTSIDE_ID" --field path='"/"' \
  --field status=200 --field user_id=null >/dev/null
OUTSIDE_PEER=$($CHECK untrusted "$WORK/viscount.out" --sent "$OUTSIDE_SENT" --got "$OUTSIDE_ID")
$CHECK events "$WORK/viscount.err" --event listener_bound --event admin_bound --event started
echo "   $(wc -l <"$WORK/viscount.out") access lines, all JSON; the outside caller was $OUTSIDE_PEER"
# Informational: whether the container runtime's seccomp profile lets viscount batch its writes.
echo "   io_uring in the pod: $(grep -o '"io_uring":[a-z]*' "$WORK/viscount.err" | head -1 | cut -d: -f2)"
echo "   $(cat "$WORK/trusted-line.json")"

# --- admin: probes for everyone, control from inside the pod only ---------------------------
step "admin split: probes and /metrics from outside the pod, /drain and /config refused there"
for path in /healthz /ready /metrics; do
  code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$ADMIN$path" || true)
  [ "$code" = 200 ] || fail "$path from outside the pod answered $code, not 200"
done
code=$(curl -s -o "$WORK/drain-outside.json" -m 5 -w '%{http_code}' -X POST "$ADMIN/drain" || true)
[ "$code" = 403 ] || fail "POST /drain from outside the pod answered $code, not 403"
grep -q '"admin_forbidden"' "$WORK/drain-outside.json" || fail "the 403 does not say admin_forbidden"
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$ADMIN/config" || true)
[ "$code" = 403 ] || fail "/config from outside the pod answered $code, not 403"
wait_for "$ADMIN/ready" 200 2 || fail "viscount is not ready after the refused drain"
wait_for "$PROXY/" 200 5 || fail "viscount stopped serving after the refused drain"
# From the app container (the pod's own network namespace): a loopback caller.
podman exec -i "$POD-app" python3 -c 'import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=5).status == 200 else 1)'   "http://127.0.0.1:$CONFIG_ADMIN_PORT/config" || fail "/config from inside the pod failed"
echo "   outside: probes 200, POST /drain 403, /config 403, still ready; inside: /config 200"

# --- (c) drain on SIGTERM -------------------------------------------------------------------
step "(c) SIGTERM to viscount: /ready 503, new connections refused, in-flight request finishes"
SLOW_MS=2000
curl -sS -m 30 -o "$WORK/slow.body" -w '%{http_code} %{time_total}\n' \
  "$PROXY/slow?ms=$SLOW_MS" >"$WORK/slow.status" 2>"$WORK/slow.err" &
SLOW_PID=$!
in_flight() {
  curl -s -m 2 "$ADMIN/metrics" | awk '/^viscount_upstream_requests_in_flight/ {n += $2} END {print n + 0}'
}
for _ in $(seq 50); do [ "$(in_flight)" -ge 1 ] && break; sleep 0.05; done
[ "$(in_flight)" -ge 1 ] || fail "the slow request never showed as in flight"
STOP_AT=$SECONDS
podman stop --time 60 "$POD-viscount" >"$WORK/stop.out" 2>&1 &
STOP_PID=$!
wait_for "$ADMIN/ready" 503 3 || fail "/ready did not turn 503 within 3s of SIGTERM"
# Each worker closes its own listener; give them a moment after /ready flipped.
refused=0
for _ in $(seq 20); do
  if ! curl -s -m 2 -o /dev/null "$PROXY/"; then refused=1 && break; fi
  sleep 0.1
done
[ "$refused" = 1 ] || fail "viscount still accepted new connections 2s into the drain"
READY_DURING=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$ADMIN/ready" || true)
wait "$SLOW_PID" || { cat "$WORK/slow.err" >&2; fail "the in-flight request failed during the drain"; }
read -r SLOW_CODE SLOW_TIME <"$WORK/slow.status"
[ "$SLOW_CODE" = 200 ] || fail "the in-flight request ended with $SLOW_CODE, not 200"
wait "$STOP_PID" || { cat "$WORK/stop.out" >&2; fail "podman stop failed"; }
STOP_TOOK=$((SECONDS - STOP_AT))
EXIT_CODE=$(podman inspect --format '{{.State.ExitCode}}' "$POD-viscount")
[ "$EXIT_CODE" = 0 ] || fail "viscount exited with $EXIT_CODE after SIGTERM, not 0"
[ "$STOP_TOOK" -lt "${DRAIN_S%.*}" ] ||
  fail "viscount took ${STOP_TOOK}s to exit: it should leave once the request is done"
[ "$(podman inspect --format '{{.State.Running}}' "$POD-app")" = true ] ||
  fail "the app stopped with viscount; it must outlive the drain"
podman logs "$POD-viscount" >"$WORK/viscount.out" 2>"$WORK/viscount.err"
$CHECK events "$WORK/viscount.err" --event drain_started --event drain_complete --event stopped
SLOW_ID=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["context_seen"]["x_request_id"])' "$WORK/slow.body")
$CHECK access-log "$WORK/viscount.out" --id "$SLOW_ID" --field status=200 --field error=null \
  --field path="\"/slow?ms=$SLOW_MS\"" >/dev/null
echo "   /ready during the drain: $READY_DURING; slow request: $SLOW_CODE after ${SLOW_TIME}s;" \
  "viscount exited $EXIT_CODE ${STOP_TOOK}s after SIGTERM"

step "pod down"
t0=$SECONDS
podman kube down "$WORK/pod.yaml" >/dev/null 2>&1 || fail "podman kube down failed"
PLAYED=0
echo "   removed in $((SECONDS - t0))s"

human() { numfmt --to=si --round=nearest --format=%.1f --suffix=B "$1"; }  # as podman shows them
echo "== summary"
echo "   images: viscount $(human "$VISCOUNT_SIZE") (base debian:bookworm-slim $(human "$BASE_SIZE"):" \
  "viscount adds $(human $((VISCOUNT_SIZE - BASE_SIZE)))), demo app $(human "$APP_SIZE")"
echo "   (a) ids: trusted id kept end to end, untrusted replaced; (b) access log: contract fields;" \
  "(c) drain: /ready 503, in-flight 200, exit 0"
