# Sourced by the benchmark scripts that compare builds or peers (not run on its own): where the
# peers' configs are, the tools a script needs, a scratch directory whose background processes end
# with the script, and waiting for a port to open.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Sets `peers` to the shared bench folder: $PEERS, or the one beside the repository.
find_peers() {
  peers=${PEERS:-}
  for candidate in "$bench_root/../shared/bench" /work/shared/bench; do
    if [ -z "$peers" ] && [ -d "$candidate/peers" ]; then peers=$candidate; fi
  done
  [ -n "$peers" ] || { echo "missing: the peer configs (set PEERS to the shared bench folder)" >&2; exit 1; }
}

need_tools() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
  done
}

# Sets `work` to a new scratch directory; the processes whose pids the script adds to `pids` are
# killed when it exits, and the directory removed.
start_work() {
  work=$(mktemp -d)
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
}

wait_port() {
  for _ in $(seq 400); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  exit 1
}
