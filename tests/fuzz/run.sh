#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan+UBSan, coverage) and runs each for a time.
#   tests/fuzz/run.sh                   # every target, 60 s each, one after the other
#   tests/fuzz/run.sh 30                # 30 s each
#   tests/fuzz/run.sh -runs=10000000 config   # one target, for that many inputs
#   tests/fuzz/run.sh 600 http1_request ids   # some targets
#   FUZZ_PARALLEL=2 tests/fuzz/run.sh 60      # two targets at a time (CI: tests/run.sh)
# Exits non-zero when any target found a crash, a leak, a timeout or a sanitizer report; the
# input that did it is kept in the findings directory (printed), named <target>-crash-<sha1>,
# and replays with: build-fuzz/tests/fuzz/<target>_fuzz <file>.
# Environment: FUZZ_BUILD_DIR (build-fuzz), FUZZ_FINDINGS (<build dir>/findings), FUZZ_JOBS
# (build jobs; nproc), FUZZ_PARALLEL (targets run at once; 1), FUZZ_MAX_LEN (largest input;
# 8192), FUZZ_SKIP_BUILD=1 (use the last build).
# Inputs that reach new code are saved in <build dir>/corpus/<target>, never in the checked-in
# seeds (tests/fuzz/corpus/<target>), so successive runs build on each other.
set -euo pipefail
cd "$(dirname "$0")/../.."

budget=(-max_total_time=60)
budget_text="60 s each"
targets=()
for arg in "$@"; do
  case "$arg" in
    -runs=*) budget=("$arg"); budget_text="${arg#-runs=} runs each" ;;
    *[!0-9]*) targets+=("$arg") ;;
    *) budget=(-max_total_time="$arg"); budget_text="$arg s each" ;;
  esac
done
parallel=${FUZZ_PARALLEL:-1}
case "$parallel" in
  '' | *[!0-9]* | 0) echo "FUZZ_PARALLEL must be a number of targets, not '$parallel'" >&2; exit 2 ;;
esac

build=${FUZZ_BUILD_DIR:-build-fuzz}
findings=${FUZZ_FINDINGS:-$build/findings}
mkdir -p "$findings"
findings=$(cd "$findings" && pwd)

if [ "${FUZZ_SKIP_BUILD:-0}" != 1 ]; then
  echo "== fuzz build ($build, clang-14, ASan+UBSan+libFuzzer)"
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DVISCOUNT_FUZZ=ON -DVISCOUNT_BUILD_TESTS=OFF -DVISCOUNT_BUILD_BENCH=OFF >/dev/null
  cmake --build "$build" -j "${FUZZ_JOBS:-$(nproc)}"
fi
if [ ${#targets[@]} -eq 0 ]; then
  for binary in "$build"/tests/fuzz/*_fuzz; do
    name=$(basename "$binary")
    targets+=("${name%_fuzz}")
  done
fi
for target in "${targets[@]}"; do
  if [ ! -x "$build/tests/fuzz/${target}_fuzz" ]; then
    echo "no such fuzz target: $target ($build/tests/fuzz/${target}_fuzz)" >&2
    exit 2
  fi
done

# Leaks and every UBSan report end the run; libFuzzer saves the input either way.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Stack traces with function names and lines need llvm-symbolizer; Debian's llvm-14 names it so.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && ! command -v llvm-symbolizer >/dev/null; then
  symbolizer=$(command -v llvm-symbolizer-14 || true)
  if [ -n "$symbolizer" ]; then export ASAN_SYMBOLIZER_PATH=$symbolizer; fi
fi

# The inputs a target saved so far, one file name a line.
artifacts() {
  local f
  for f in "$findings/$1"-*; do
    if [ -e "$f" ]; then basename "$f"; fi
  done
}

# Runs one target. What a reader needs (the end of its log and the reproducer on failure, then
# one summary line) goes to <build dir>/fuzz-<target>.report; the exit status says pass/fail.
fuzz_one() {
  local target=$1
  local binary=$build/tests/fuzz/${target}_fuzz
  local work=$build/corpus/$target
  local log=$build/fuzz-$target.log
  local report=$build/fuzz-$target.report
  mkdir -p "$work"
  local args=(-print_final_stats=1 -timeout=10 -rss_limit_mb=2048
    -max_len="${FUZZ_MAX_LEN:-8192}" -artifact_prefix="$findings/$target-" "${budget[@]}")
  [ -f "tests/fuzz/$target.dict" ] && args+=(-dict="tests/fuzz/$target.dict")
  local seeds=()
  [ -d "tests/fuzz/corpus/$target" ] && seeds=("tests/fuzz/corpus/$target")
  local before start status=0
  before=$(artifacts "$target")
  start=$(date +%s)
  "$binary" "${args[@]}" "$work" "${seeds[@]}" >"$log" 2>&1 || status=$?
  local seconds=$(($(date +%s) - start))

  local execs rate cov corpus result=ok
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)
  corpus=$(find "$work" -type f | wc -l)
  : >"$report"
  if [ "$status" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
    result=FAILED
    {
      echo "---- fuzz target $target FAILED (exit $status); the end of $log:"
      grep -vE '^#[0-9]+' "$log" | tail -n 60
      local artifact
      for artifact in $(artifacts "$target"); do
        grep -qxF "$artifact" <<<"$before" || echo "reproduce: $binary $findings/$artifact"
      done
      echo "----"
    } >>"$report"
  fi
  printf '%-16s %-7s %12s execs %8s exec/s  %-22s corpus %6s  %5s s\n' "$target" "$result" \
    "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}" "$corpus" "$seconds" >>"$report"
  [ "$result" = ok ]
}

echo "== fuzzing: ${targets[*]} ($budget_text, $parallel at a time); findings go to $findings"
declare -A running=()  # pid -> target
declare -A summary=()  # target -> its summary line
failed=()
# Waits for one running target, prints its report as soon as it is done.
reap() {
  local pid status=0
  wait -n -p pid || status=$?
  local target=${running[$pid]}
  unset "running[$pid]"
  cat "$build/fuzz-$target.report"
  summary[$target]=$(tail -n 1 "$build/fuzz-$target.report")
  [ "$status" -eq 0 ] || failed+=("$target")
}
for target in "${targets[@]}"; do
  while [ ${#running[@]} -ge "$parallel" ]; do reap; done
  fuzz_one "$target" &
  running[$!]=$target
done
while [ ${#running[@]} -gt 0 ]; do reap; done

echo "== fuzz summary ($budget_text, $parallel at a time)"
for target in "${targets[@]}"; do
  echo "${summary[$target]}"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing FAILED: ${failed[*]}; reproducers in $findings" >&2
  exit 1
fi
