#!/usr/bin/env bash
# Builds fastconv._C with every CUDA twin compiled as host C++ and run by a fiber emulator
# (include/cuda_runtime.h: each GPU thread a fiber, blocks one after another, __syncthreads and
# warp shuffles as barriers that every thread must reach), into $OUT/pkg/fastconv, beside a
# NumPy-backed stand-in for CuPy ($OUT/fakecupy). Then the GPU tests run without a GPU:
#   bash tools/cuda_emu/build.sh && cd /tmp && \
#     PYTHONPATH=/tmp/fastconv-emu/pkg:/tmp/fastconv-emu/fakecupy python -m pytest tests/test_cuda_*.py
# It checks indexing, bounds, barriers, reductions and numerics of the kernels; not real memory
# behaviour, concurrency between threads, FMA choices of nvcc, or speed.
set -euo pipefail
E=$(cd "$(dirname "$0")" && pwd)
SRC=${SRC:-$(cd "$E/../.." && pwd)}
OUT=${OUT:-/tmp/fastconv-emu}
mkdir -p "$OUT"/{gen,obj,pkg,include/cuda}
cp -r "$E/fakecupy" "$OUT/"
cp "$E"/include/*.h "$OUT/include/"
for h in "$SRC"/csrc/cuda/*.cuh; do
  python3 "$E/transform.py" "$h" "$OUT/include/cuda/$(basename "$h")"
done
for f in "$SRC"/csrc/cuda/*.cu; do
  b=$(basename "$f" .cu)
  [ "$b" = runtime ] || python3 "$E/transform.py" "$f" "$OUT/gen/$b.cu.cpp"
done
PYINC=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['include'])")
PB=$(python3 -c "import pybind11; print(pybind11.get_include())")
BLAS=$(python3 -c "import scipy_openblas32 as b; print(b.get_lib_dir())")
BLASINC=$(python3 -c "import scipy_openblas32 as b; print(b.get_include_dir())")
INC="-I$OUT/include -I$SRC/csrc -isystem $PYINC -isystem $PB -isystem $BLASINC"
DEF="-DFC_CUDA=1 -DFC_BLAS_PREFIX=scipy_ -DFC_BLAS_NAME=\"emu\""
FL="-O1 -g -std=gnu++17 -fPIC -fopenmp -w"
objs=()
for f in "$SRC"/csrc/*.cpp "$SRC"/csrc/cpu/*.cpp "$SRC"/csrc/bind/*.cpp; do
  o=$OUT/obj/$(echo "${f#$SRC/}" | tr / _).o
  g++ $FL -O2 $DEF $INC -c "$f" -o "$o" &
  objs+=("$o")
done
# The emulated kernels contract multiply-adds into FMAs, as nvcc does by default.
for f in "$OUT"/gen/*.cpp "$E/emu_runtime.cpp"; do
  o=$OUT/obj/$(basename "$f").o
  g++ $FL -mfma -ffp-contract=fast $DEF $INC -c "$f" -o "$o" &
  objs+=("$o")
done
wait
rm -rf "$OUT/pkg/fastconv" && cp -r "$SRC/python/fastconv" "$OUT/pkg/fastconv"
g++ -shared -fopenmp -o "$OUT/pkg/fastconv/_C$(python3-config --extension-suffix)" "${objs[@]}" \
  -L"$BLAS" -lscipy_openblas -Wl,-rpath,"$BLAS"
echo "built $OUT/pkg/fastconv (emulated CUDA)"
