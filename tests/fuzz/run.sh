#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan+UBSan, coverage) and runs each in turn.
#   tests/fuzz/run.sh                   # every target, 60 s each
#   tests/fuzz/run.sh 30                # 30 s each
#   tests/fuzz/run.sh -runs=10000000 config   # one target, for that many inputs
#   tests/fuzz/run.sh 600 http1_request ids   # some targets
# Exits non-zero when any target found a crash, a leak, a timeout or a sanitizer report; the
# input that did it is kept in the findings directory (printed), named <target>-crash-<sha1>,
# and replays with: build-fuzz/tests/fuzz/<target>_fuzz <file>.
# Environment: FUZZ_BUILD_DIR (build-fuzz), FUZZ_FINDINGS (<build dir>/findings), FUZZ_JOBS
# (build jobs; nproc), FUZZ_MAX_LEN (largest input; 8192), FUZZ_SKIP_BUILD=1 (use the last build).
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

# Leaks and every UBSan report end the run; libFuzzer saves the input either way.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== fuzzing: ${targets[*]} ($budget_text); findings go to $findings"
failed=()
summary=()
for target in "${targets[@]}"; do
  binary=$build/tests/fuzz/${target}_fuzz
  if [ ! -x "$binary" ]; then
    echo "no such fuzz target: $target ($binary)" >&2
    exit 2
  fi
  work=$build/corpus/$target
  log=$build/fuzz-$target.log
  mkdir -p "$work"
  args=(-print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len="${FUZZ_MAX_LEN:-8192}"
    -artifact_prefix="$findings/$target-" "${budget[@]}")
  [ -f "tests/fuzz/$target.dict" ] && args+=(-dict="tests/fuzz/$target.dict")
  seeds=()
  [ -d "tests/fuzz/corpus/$target" ] && seeds=("tests/fuzz/corpus/$target")
  before=$(ls "$findings")
  start=$(date +%s)
  status=0
  "$binary" "${args[@]}" "$work" "${seeds[@]}" >"$log" 2>&1 || status=$?
  seconds=$(($(date +%s) - start))

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)
  corpus=$(find "$work" -type f | wc -l)
  result=ok
  if [ "$status" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
    result=FAILED
    failed+=("$target")
    echo "---- $target failed (exit $status); the end of $log:"
    grep -vE '^#[0-9]+' "$log" | tail -n 60
    for artifact in $(ls "$findings"); do
      grep -qxF "$artifact" <<<"$before" || echo "reproduce: $binary $findings/$artifact"
    done
  fi
  line=$(printf '%-16s %-7s %12s execs %8s exec/s  %-22s corpus %6s  %5s s' "$target" "$result" \
    "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}" "$corpus" "$seconds")
  echo "$line"
  summary+=("$line")
done

echo "== fuzz summary ($budget_text)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing FAILED: ${failed[*]}; reproducers in $findings" >&2
  exit 1
fi
