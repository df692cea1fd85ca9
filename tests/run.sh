#!/usr/bin/env bash
# The README's test command: installs what is needed (Debian bookworm, as root), builds twice
# (optimised, and ASan+UBSan) and runs the whole suite in both builds, plus the pod test
# (container images and the Kubernetes pod under podman, tests/deploy/pod_test.sh), the
# benchmark smoke, half a minute of the soak test (tests/soak/README.md) and a minute of each
# fuzz target (a third build, with clang: tests/fuzz/README.md).
#   tests/run.sh              # everything
#   VISCOUNT_SKIP_INSTALL=1 tests/run.sh   # skip apt-get (already installed)
#   VISCOUNT_SKIP_POD_TEST=1 tests/run.sh  # skip the pod test (CI never does)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${VISCOUNT_SKIP_INSTALL:-0}" != 1 ]; then deploy/local/install-deps.sh; fi

jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1

echo "== optimised build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$jobs"
(cd build && ctest -j "$jobs" --timeout 300)
# The suite above writes through io_uring where the kernel allows it; the in-process and
# end-to-end tests run once more on the send() path that machines without it take.
(cd build && VISCOUNT_IO_URING=off ctest -j "$jobs" --timeout 300 -L 'integration|e2e')

echo "== pod test (container images, Kubernetes manifests, the pod under podman)"
if [ "${VISCOUNT_SKIP_POD_TEST:-0}" = 1 ]; then
  echo "skipped: VISCOUNT_SKIP_POD_TEST=1"
else
  tests/deploy/pod_test.sh
fi

echo "== benchmark smoke (seconds long: proves the script runs; its figures mean nothing)"
VISCOUNT_SKIP_INSTALL=1 SMOKE=1 OUT=build/bench-smoke tests/bench/side_by_side.sh >build/bench-smoke.log 2>&1 ||
  { cat build/bench-smoke.log; exit 1; }
tail -n 3 build/bench-smoke.log

echo "== soak smoke (half a minute of faulty mixed traffic, then the audit: tests/soak/README.md)"
tests/soak/soak.py --binary build/proxy/viscount --minutes 0.5 --out build/soak-smoke \
  >build/soak-smoke.log 2>&1 || { cat build/soak-smoke.log; exit 1; }
grep -E '^(viscount soak|HTTP/2|RESULT)' build/soak-smoke.log
echo "== soak smoke with logging.sample.success 0.1 (the audit expects exactly the lines kept)"
tests/soak/soak.py --binary build/proxy/viscount --minutes 0.3 --sample-success 0.1 \
  --out build/soak-sampled >build/soak-sampled.log 2>&1 || { cat build/soak-sampled.log; exit 1; }
grep -E '^(viscount soak|RESULT)|access_log' build/soak-sampled.log

echo "== fuzz smoke (clang-14, ASan+UBSan+libFuzzer: each target for 60 s, two at a time)"
# Fails on any crash, leak, timeout or sanitizer report; the log names the target and the
# saved input (build-fuzz/findings), which replays with build-fuzz/tests/fuzz/<target>_fuzz.
FUZZ_PARALLEL=${FUZZ_PARALLEL:-2} FUZZ_JOBS=$jobs tests/fuzz/run.sh 60

echo "== ASan + UBSan build"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVISCOUNT_SANITIZE=ON \
  -DVISCOUNT_BUILD_BENCH=OFF
cmake --build build-asan -j "$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest -j "$jobs" --timeout 600 -LE style)  # the style check ran above

echo "== all tests passed"
