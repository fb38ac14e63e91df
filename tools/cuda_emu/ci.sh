#!/usr/bin/env bash
# CI stage for the CUDA kernels on a machine without a GPU: builds the emulator, kernels and
# host code under AddressSanitizer and UBSan (build.sh SANITIZE=1), runs the kernel_cover tests on it with
# the coverage trace on, and checks that every CUDA twin launched in float32 and float64 and
# every launch site was reached (check_coverage.py). A build error, a failed test, a sanitizer
# report or a missing twin fails the stage; the last line sums it up.
# Needs fastconv's test dependencies in the current Python (the CI venv) and g++; pybind11 is
# installed if missing. SANITIZE=0 runs without sanitizers; OUT=dir keeps the build there.
set -euo pipefail
E=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$E/../.." && pwd)
SANITIZE=${SANITIZE:-1}
start=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
OUT=${OUT:-$work/emu}
fail() { echo "cuda_emu: FAILED: $*" >&2; exit 1; }

python3 -c "import pybind11" 2>/dev/null || python3 -m pip install -q "pybind11>=2.12"

echo "== cuda_emu: build (SANITIZE=$SANITIZE) into $OUT"
SANITIZE=$SANITIZE OUT=$OUT bash "$E/build.sh" > "$work/build.log" 2>&1 ||
  { cat "$work/build.log"; fail "emulator build"; }
built=$SECONDS

echo "== cuda_emu: pytest -m kernel_cover"
trace=$OUT/trace.txt
reports=$work/sanitizer
rm -f "$trace"
run_env=(PYTHONPATH="$OUT/pkg:$OUT/fakecupy" FC_EMU_TRACE="$trace")
if [ "$SANITIZE" != 0 ]; then
  # Python is not built with ASan: its runtime must be loaded first, and libstdc++ with it
  # (GCC 12's ASan looks up __cxa_throw once, at start: without it the first C++ exception
  # aborts with "CHECK failed ... real___cxa_throw"). CPython frees not all of its memory at
  # exit, so leak checking is off. Reports go to files, not through pytest's output capture,
  # which a sanitizer's abort would lose.
  run_env+=(LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)"
            ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$reports"
            UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports")
fi
set +e
(cd "$work" && env "${run_env[@]}" python3 -m pytest "$SRC"/tests/test_cuda_*.py -m kernel_cover \
  -q -p no:cacheprovider) 2>&1 | tee "$work/pytest.log"
rc=${PIPESTATUS[0]}
set -e
ran=$SECONDS
if compgen -G "$reports.*" > /dev/null; then
  cat "$reports".* >&2
  fail "sanitizer report(s) above"
fi
[ "$rc" = 0 ] || fail "pytest exited with $rc"
tests=$(tail -n 1 "$work/pytest.log" | grep -Eo '[0-9]+ (passed|skipped|xfailed|xpassed)' |
        paste -sd, - | sed 's/,/, /g')

echo "== cuda_emu: coverage"
coverage=$(python3 "$E/check_coverage.py" "$trace" "$SRC" "$OUT/launch_sites.txt") ||
  { echo "$coverage"; fail "coverage"; }
echo "cuda_emu OK (SANITIZE=$SANITIZE): $tests; ${coverage##*$'\n'};" \
  "build $((built - start)) s, tests $((ran - built)) s, total $((SECONDS - start)) s"
