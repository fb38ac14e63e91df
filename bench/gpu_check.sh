#!/usr/bin/env bash
# One known command for a GPU session (see ../shared/docs/GPU.md). Stages, in order:
#   prepare   (here, with network) fetch the wheels the GPU machine lacks into .whl/ and copy the
#             datasets into .data/; both are git-ignored and travel with `carry`.
#   build     install fastconv for sm_90 into /tmp/fc-site (with the carried BLAS wheel)
#   test      the whole suite, GPU tests included                       -> $OUT/tests.log
#   sanitize  compute-sanitizer memcheck and racecheck over the GPU kernel tests -> $OUT/*.log
#   train     fashion_cnn 5 epochs and resnet18 with augmentation on the GPU, PyTorch beside
#   bench     fastconv bench --device cuda --compare torch              -> $OUT/bench.{json,md,png}
#   wheel     pip wheel with nvcc, then install it alone (driver + CuPy + NumPy) and run it
# Usage on the device tool: bash bench/gpu_check.sh build test   (carry .whl and .data)
# Each stage keeps within one 10-minute call; the build is reused while the machine stays warm.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/fastconv-gpu}
site=/tmp/fc-site
mkdir -p "$OUT"
export PYTHONPATH=$site FASTCONV_DATA=$root/.data CMAKE_BUILD_PARALLEL_LEVEL=16
py() { python3 "$@"; }
fc() { python3 -m fastconv.cli "$@"; }

prepare() {
  cd "$root"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    -d .whl scipy-openblas32
  mkdir -p .data && cp -r ../shared/data/fashion-mnist ../shared/data/mnist .data/
  du -sh .whl .data
}

build() {
  cd "$root"
  py -m pip install -q --no-index --no-deps --target "$site" .whl/*.whl || return 1
  # --target keeps fastconv beside its BLAS, so the RPATH $ORIGIN/../scipy_openblas32 holds.
  py -m pip install --no-build-isolation --no-deps --upgrade --target "$site" \
    -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 -C build-dir=build/gpu . > "$OUT/build.log" 2>&1 \
    || { tail -40 "$OUT/build.log"; return 1; }
  (cd /tmp && fc info) | tee "$OUT/info.txt"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu \
    --format=csv | tee -a "$OUT/info.txt"
}

test() {
  cd /tmp && py -m pytest -q -rs -p no:cacheprovider "$root/tests" 2>&1 | tee "$OUT/tests.log" | tail -25
}

sanitize() {
  cd /tmp
  local rc=0
  for tool in memcheck racecheck; do
    compute-sanitizer --tool "$tool" --error-exitcode 99 --log-file "$OUT/sanitize-$tool.log" \
      python3 -m pytest -q -x -p no:cacheprovider "$root"/tests/test_cuda_*.py \
      -k "not large and not trains and not command" > "$OUT/sanitize-$tool.pytest.log" 2>&1
    local r=$?
    echo "compute-sanitizer $tool: exit $r ($(grep -c 'ERROR SUMMARY: 0 errors' "$OUT/sanitize-$tool.log") clean summaries)"
    tail -3 "$OUT/sanitize-$tool.pytest.log"
    [ $r -eq 0 ] || rc=$r
  done
  return $rc
}

train() {
  cd /tmp
  fc train fashion-mnist --device cuda --data "$FASTCONV_DATA" --out "$OUT/fashion_cnn" \
    2>&1 | grep -v "it/s" | tee "$OUT/train-fashion_cnn.log" | tail -12
  fc train fashion-mnist --model resnet18 --augment --epochs 10 --optimizer sgd --lr 0.05 \
    --batch-size 128 --device cuda --data "$FASTCONV_DATA" --out "$OUT/resnet18" \
    2>&1 | grep -v "it/s" | tee "$OUT/train-resnet18.log" | tail -14
  py "$root/bench/torch_train.py" --device cuda 2>&1 | tee "$OUT/train-torch.log"
  py "$root/bench/torch_train.py" --model resnet18 --augment --epochs 10 --batch-size 128 \
    --device cuda 2>&1 | tee -a "$OUT/train-torch.log"
}

bench() {
  cd /tmp && fc bench --device cuda --suite standard --compare torch --json "$OUT/bench.json" \
    --markdown "$OUT/bench.md" --plot "$OUT/bench.png" 2>&1 | tee "$OUT/bench.log" | tail -60
}

wheel() {
  cd "$root"
  rm -rf /tmp/fc-wheel && py -m pip wheel --no-build-isolation --no-deps -w /tmp/fc-wheel \
    -C cmake.define.CMAKE_CUDA_ARCHITECTURES="80-real;90-real;90-virtual" . > "$OUT/wheel.log" 2>&1 \
    || { tail -30 "$OUT/wheel.log"; return 1; }
  ls -la /tmp/fc-wheel | tee -a "$OUT/wheel.log"
  rm -rf /tmp/fc-wheel-site
  py -m pip install -q --no-index --no-deps --target /tmp/fc-wheel-site /tmp/fc-wheel/*.whl .whl/*.whl
  (cd /tmp && PYTHONPATH=/tmp/fc-wheel-site python3 - <<'PY'
import cupy as cp, numpy as np, fastconv, fastconv.functional as F
print(fastconv.__file__, fastconv.info()["cuda_device"])
x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
w = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
y = F.conv2d(cp.asarray(x), cp.asarray(w), padding=1)
err = float(np.abs(cp.asnumpy(y) - F.conv2d(x, w, padding=1)).max())
print("wheel on the GPU: conv2d max |GPU - CPU| =", err)
assert err < 1e-4
PY
  ) | tee -a "$OUT/wheel.log"
}

[ $# -gt 0 ] || { sed -n 2,13p "$0"; exit 2; }
status=0
for stage in "$@"; do
  echo "== $stage"
  "$stage" || { echo "stage $stage failed"; status=1; }
done
exit $status
