#!/usr/bin/env bash
# Builds fastconv._C with every CUDA twin compiled as host C++ and run by a fiber emulator
# (include/cuda_runtime.h: each GPU thread a fiber, blocks one after another, __syncthreads and
# warp shuffles as barriers that every thread must reach), into $OUT/pkg/fastconv, beside a
# NumPy-backed stand-in for CuPy ($OUT/fakecupy). Then the GPU tests run without a GPU:
#   bash tools/cuda_emu/build.sh && cd /tmp && \
#     PYTHONPATH=/tmp/fastconv-emu/pkg:/tmp/fastconv-emu/fakecupy python -m pytest tests/test_cuda_*.py
# It checks indexing, bounds, barriers, reductions and numerics of the kernels; not real memory
# behaviour, concurrency between threads, FMA choices of nvcc, or speed.
#
# The build always records coverage when FC_EMU_TRACE names a file at run time (see
# emu_runtime.cpp; $OUT/launch_sites.txt lists every launch site). SANITIZE=1 compiles
# everything with -fsanitize=address,undefined (Python then needs libasan preloaded: see ci.sh).
# JOBS (default: the number of CPUs) bounds parallel compiles.
set -euo pipefail
E=$(cd "$(dirname "$0")" && pwd)
SRC=${SRC:-$(cd "$E/../.." && pwd)}
OUT=${OUT:-/tmp/fastconv-emu}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT"/{gen,obj,pkg,include/cuda}
rm -f "$OUT"/obj/*.o "$OUT"/gen/*.cpp "$OUT/launch_sites.txt"
rm -rf "$OUT/fakecupy" && cp -r "$E/fakecupy" "$OUT/"
cp "$E"/include/*.h "$OUT/include/"
for h in "$SRC"/csrc/cuda/*.cuh; do
  python3 "$E/transform.py" "$h" "$OUT/include/cuda/$(basename "$h")" "$OUT/launch_sites.txt"
done
for f in "$SRC"/csrc/cuda/*.cu; do
  b=$(basename "$f" .cu)
  [ "$b" = runtime ] || python3 "$E/transform.py" "$f" "$OUT/gen/$b.cu.cpp" "$OUT/launch_sites.txt"
done
PYINC=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['include'])")
PB=$(python3 -c "import pybind11; print(pybind11.get_include())")
BLAS=$(python3 -c "import scipy_openblas32 as b; print(b.get_lib_dir())")
BLASINC=$(python3 -c "import scipy_openblas32 as b; print(b.get_include_dir())")
EXT=$(python3 -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
INC="-I$OUT/include -I$SRC/csrc -isystem $PYINC -isystem $PB -isystem $BLASINC"
DEF="-DFC_CUDA=1 -DFC_TRACE_TWINS=1 -DFC_BLAS_PREFIX=scipy_ -DFC_BLAS_NAME=\"scipy-openblas32/cuda_emu\""
# Line tables only (-g1): enough for sanitizer and gdb backtraces, a fraction of -g's cost.
FL="-g1 -std=gnu++17 -fPIC -fopenmp -w"
# The emulated kernels contract multiply-adds into FMAs, as nvcc does by default.
KFL="-O1 -mfma -ffp-contract=fast"
# The CPU kernels without contraction, as CMakeLists.txt builds them.
HFL="-O1 -ffp-contract=off"
BFL="-O1"
LINK=()
SAN="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer"
case "${SANITIZE:-0}" in
  0) ;;
  # Everything instrumented, so that one build serves both CI sanitizer stages (the emulated
  # CUDA twins here, the CPU kernels and bindings in .ci/sanitize). The emulated kernels at -O0
  # (a third of -O1's compile time under the sanitizers; no FMA contraction then), and the
  # pybind11 bindings too (they dominate an instrumented build and run once per call); the CPU
  # kernels keep -O1, as in CMake's FASTCONV_SANITIZE build.
  1) KFL="-O0 $SAN"; HFL="$HFL $SAN"; BFL="-O0 $SAN"; LINK=($SAN) ;;
  # The emulated kernels at -O1 with FMA contraction as well (about twice the compile time).
  all) KFL="$KFL $SAN"; HFL="$HFL $SAN"; BFL="-O0 $SAN"; LINK=($SAN) ;;
  *) echo "SANITIZE must be 0, 1 or all, not '$SANITIZE'" >&2; exit 2 ;;
esac
objs=()
pids=()
compile() {  # compile SOURCE OBJECT FLAGS...: in the background, at most JOBS at once
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  local f=$1 o=$2
  shift 2
  g++ "$@" -c "$f" -o "$o" &
  pids+=($!)
  objs+=("$o")
}
# Longest first, so that the last compiles to start are short ones.
for f in "$OUT"/gen/*.cpp "$E/emu_runtime.cpp"; do
  compile "$f" "$OUT/obj/$(basename "$f").o" $FL $KFL $DEF $INC
done
for f in "$SRC"/csrc/bind/*.cpp; do
  compile "$f" "$OUT/obj/$(echo "${f#$SRC/}" | tr / _).o" $FL $BFL $DEF $INC
done
for f in "$SRC"/csrc/*.cpp "$SRC"/csrc/cpu/*.cpp; do
  compile "$f" "$OUT/obj/$(echo "${f#$SRC/}" | tr / _).o" $FL $HFL $DEF $INC
done
failed=0
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || failed=1; done
for o in "${objs[@]}"; do [ -f "$o" ] || failed=1; done
[ "$failed" = 0 ] || { echo "emu build: a compile failed (see above)" >&2; exit 1; }
rm -rf "$OUT/pkg/fastconv" && cp -r "$SRC/python/fastconv" "$OUT/pkg/fastconv"
g++ -shared -fopenmp "${LINK[@]}" -o "$OUT/pkg/fastconv/_C$EXT" \
  "${objs[@]}" -L"$BLAS" -lscipy_openblas -Wl,-rpath,"$BLAS"
echo "built $OUT/pkg/fastconv (emulated CUDA${SANITIZE:+, SANITIZE=$SANITIZE})"
