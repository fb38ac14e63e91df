#!/usr/bin/env bash
# The one command of a GPU session (../shared/docs/GPU.md; plan, budget and results in
# bench/GPU_NOTES.md). Three uses:
#
#   bash bench/gpu_check.sh prepare             HERE (network, nvcc, python3.12): build the cp312
#       CUDA wheel, fetch the scipy-openblas32 wheel into .whl/, copy the datasets into .data/
#       (both git-ignored; they travel with `carry`), print sizes and the device call to make.
#   bash bench/gpu_check.sh quick               ON THE DEVICE, one call (~6 min, deadline 7):
#       install   the carried wheel + its GPU conv check; builds for sm_90 only if it fails
#       info      nvidia-smi, fastconv info
#       ceilings  copy bandwidth, FP32 FMA, SGEMM, TF32, bf16 (bench/gpu_ceilings.py)
#       tests     tests/test_cuda_*.py, -n $JOBS, no -x, --timeout per test
#       bench_quick  fastconv bench --device cuda --suite quick --compare torch (JSON, markdown)
#       train_quick  fastconv train fashion-mnist --device cuda --epochs 5
#       torch_quick  bench/torch_train.py, the PyTorch+cuDNN twin, same recipe and batches
#       memcheck  compute-sanitizer memcheck, one small case of every kernel (-m kernel_cover)
#       racecheck compute-sanitizer racecheck, the shared-memory/shuffle kernels' files
#   REHEARSE=1 bash bench/gpu_check.sh quick    HERE: the same stages and commands on the CUDA
#       emulator (tools/cuda_emu, fake CuPy) with small limits, so typos, paths and flags fail
#       here, not on the device. What needs a GPU reports "not here": nvidia-smi; the ceilings
#       (run with --smoke); PyTorch CUDA (the twin runs on the CPU); compute-sanitizer (a
#       stand-in in tools/cuda_emu/bin runs the same command line and checks nothing).
#
# Any stage can be named instead (bash bench/gpu_check.sh tests memcheck). Longer stages, one
# call each: build (from source, sm_90), test (the whole suite), sanitize (memcheck racecheck),
# bench (--suite standard, for the speed issue), train (fashion_cnn and resnet18 with their
# PyTorch twins), wheel (pip wheel on the device, installed alone and run).
#
# Knobs (environment): JOBS (16), TESTS_K / MEM_K / RACE_K (a -k expression for the tests and
# each sanitizer), TEST_TIMEOUT / SAN_TIMEOUT (per test: 120 / 90 s), TRAIN_EPOCHS (5), PY.
#
# Every stage runs under `timeout` (cap below, CAP_<stage>=seconds to change) and within a
# deadline for the whole call (DEADLINE, default 420 s: later stages get what is left). Full
# logs go to $WORK and are packed into $OUT/logs.tgz after each stage; $OUT also gets
# summary.txt and the stages' results (at most 8 files come back from the device). A summary
# table is printed last. Exit status 0 when every stage was ok (or "not here" in a rehearsal).
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
root=$(cd "$(dirname "$0")/.." && pwd)
export OUT=${OUT:-/tmp/fastconv-gpu}
export WORK=${WORK:-/tmp/fastconv-gpu-work}
export REHEARSE=${REHEARSE:-0}
export JOBS=${JOBS:-$([ "$REHEARSE" = 1 ] && echo 2 || echo 16)}
export PY=${PY:-python3}
export SITE=${SITE:-/tmp/fc-site}
export EMU=${EMU:-/tmp/fastconv-emu}
export FASTCONV_DATA=$root/.data  # the carried datasets (prepare copies them)
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=$JOBS
if [ "$REHEARSE" = 1 ]; then  # the emulated package (refreshed by install), the fake CuPy
  export PYTHONPATH=$EMU/pkg:$root/tools/cuda_emu/fakecupy
else
  export PYTHONPATH=$SITE
fi
NOT_HERE=3  # a stage's exit status when the tool it needs is not on this machine (rehearsal)

# Caps in seconds; "expected" times and what each proves are in bench/GPU_NOTES.md.
declare -A CAP=([prepare]=1200 [install]=240 [build]=300 [info]=20 [ceilings]=60 [tests]=150
                [bench_quick]=150 [train_quick]=110 [torch_quick]=60 [memcheck]=120
                [racecheck]=90 [test]=540 [sanitize]=540 [bench]=540 [train]=540 [wheel]=400)
QUICK=(install info ceilings tests bench_quick train_quick torch_quick memcheck racecheck)
# The rehearsal's small limits (the emulator runs each GPU thread as a fiber: ~1000x slower).
if [ "$REHEARSE" = 1 ]; then
  : "${TESTS_K:=f32 and not trains and not command and not large and not tf32 and not deterministic}"
  : "${BENCH_FILTER:=10 classes}" "${BENCH_OPS:=loss}"
  : "${TRAIN_EPOCHS:=1}" "${TRAIN_LIMIT:=64}" "${TEST_LIMIT:=64}"
  CAP[install]=900 CAP[tests]=1500 CAP[bench_quick]=300 CAP[train_quick]=300
  CAP[torch_quick]=120 CAP[memcheck]=600 CAP[racecheck]=600
  : "${DEADLINE:=7200}"
fi
export TESTS_K=${TESTS_K:-} BENCH_FILTER=${BENCH_FILTER:-} BENCH_OPS=${BENCH_OPS:-}
export TRAIN_EPOCHS=${TRAIN_EPOCHS:-5} TRAIN_LIMIT=${TRAIN_LIMIT:-} TEST_LIMIT=${TEST_LIMIT:-}
[ "${1:-}" = prepare ] && : "${DEADLINE:=7200}"
DEADLINE=${DEADLINE:-420}

result() { echo "$*" > "$WORK/$STAGE.result"; echo "result: $*"; }
have() { command -v "$1" > /dev/null 2>&1; }
pytest_line() {  # the last pytest summary line of a log ("12 passed, 1 skipped in 3.4s")
  grep -aE '^=*.*[0-9]+ (passed|failed|error|errors|skipped|deselected|tests? collected)|no tests ran' "$1" \
    | tail -1 | sed 's/=//g; s/^ *//; s/ *$//'
}

# -- here: what the device call carries -------------------------------------------------------

stage_prepare() {
  cd "$root"
  # The first Python 3.12 that runs: a pyenv shim is on PATH but fails where 3.12 is not the
  # selected version.
  local py312=${PY312:-} cand
  for cand in $(command -v python3.12 2>/dev/null) \
              $(ls "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 2>/dev/null); do
    [ -z "$py312" ] && "$cand" -c '' 2>/dev/null && py312=$cand
  done
  local venv=${PREP_VENV:-/tmp/fc-prep-py312} archs=${ARCHS:-90-real;90-virtual}
  local data=${DATA_SRC:-$root/../shared/data}
  [ -x "$py312" ] || { echo "no python3.12 here (set PY312)"; return 1; }
  [ -d "$data/fashion-mnist" ] || { echo "no $data/fashion-mnist (set DATA_SRC)"; return 1; }
  if [ ! -x "$venv/bin/python" ]; then
    "$py312" -m venv "$venv" && "$venv/bin/python" -m pip install -q numpy scikit-build-core \
      pybind11 scipy-openblas32 tqdm || return 1
  fi
  mkdir -p .whl .data
  rm -f .whl/*.whl .whl/SOURCE
  "$venv/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl scipy-openblas32 \
    || return 1
  echo "building the cp312 CUDA wheel for $archs (nvcc $(nvcc --version | grep -o 'release [0-9.]*'))"
  local t=$SECONDS
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) nice "$venv/bin/python" -m pip wheel --no-build-isolation \
    --no-deps -w .whl -C cmake.define.CMAKE_CUDA_ARCHITECTURES="$archs" \
    -C build-dir="${PREP_BUILD:-/tmp/fc-prep-build}" . > "$WORK/wheel-build.log" 2>&1 \
    || { tail -30 "$WORK/wheel-build.log"; return 1; }
  local built=$((SECONDS - t))
  echo "wheel built in $built s"
  # The carried wheel must import on Python 3.12 exactly as the device will install it.
  rm -rf /tmp/fc-prep-site
  "$venv/bin/python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/fc-prep-site \
    .whl/scipy_openblas32-*.whl .whl/fastconv-*-cp312-*.whl || return 1
  (cd /tmp && PYTHONPATH=/tmp/fc-prep-site "$venv/bin/python" -c "
import numpy as np, fastconv, fastconv.functional as F
i = fastconv.info()
print('imports on', __import__('sys').version.split()[0], '| cuda_built', i['cuda_built'],
      '| cuda_archs', i['cuda_archs'], '| cuda_device', i['cuda_device'])
assert i['cuda_built']
x = np.ones((1, 1, 5, 5), np.float32)
assert float(F.conv2d(x, np.ones((1, 1, 3, 3), np.float32)).sum()) == 81.0") || return 1
  printf 'commit %s (%s), archs %s, nvcc %s\nnative %s\npython %s\n' \
    "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- csrc CMakeLists.txt python || echo +changes)" \
    "$(date -Is)" "$archs" "$(nvcc --version | grep -o 'V[0-9][0-9.]*')" \
    "$(src_hash native)" "$(src_hash python)" > .whl/SOURCE
  cat .whl/SOURCE
  readelf -d /tmp/fc-prep-site/fastconv/_C*.so | grep NEEDED | sed 's/.*Shared library: /needs: /'
  rm -rf .data/fashion-mnist .data/mnist
  cp -r "$data/fashion-mnist" .data/
  # MNIST only for the whole suite (stage test); quick needs Fashion-MNIST alone
  [ "${MNIST:-0}" = 1 ] && cp -r "$data/mnist" .data/
  local tree
  tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
  du -sh .whl/* .data/*
  local carry=$(( $(du -sb .whl | cut -f1) + $(du -sb .data | cut -f1) ))
  echo "travels: working tree $((tree >> 10)) KiB + carry $((carry >> 10)) KiB = $(((tree + carry) >> 20)) MiB of 64 MiB"
  [ $((tree + carry)) -lt $((64 << 20)) ] || { echo "over the 64 MiB limit"; return 1; }
  result "wheel $(basename .whl/fastconv-*.whl) ($(du -h .whl/fastconv-*.whl | cut -f1)), built in" \
         "$built s; $(((tree + carry) >> 20)) MiB travel with the tree (limit 64)"
  cat <<EOF

The device call (from the checkout the session started in, where .whl/ and .data/ now are):
  run  command: bash bench/gpu_check.sh quick
       carry:   [".whl", ".data"]
       timeout_s: 480
EOF
}

# -- on the device ----------------------------------------------------------------------------

gpu_smoke() {  # the carried (or built) package runs a GPU convolution that matches the CPU
  (cd /tmp && timeout 120 "$PY" - <<'PY'
import sys
import numpy as np
import cupy as cp
import fastconv, fastconv.functional as F
info = fastconv.info()
print(f"python {sys.version.split()[0]}; fastconv {info['version']} from {fastconv.__file__}; "
      f"cuda_archs {info['cuda_archs']}; cuda_device {info['cuda_device']}; cupy {cp.__version__}")
assert info["cuda_built"], "this fastconv has no CUDA"
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
y = F.conv2d(cp.asarray(x), cp.asarray(w), padding=1)
ref = F.conv2d(x, w, padding=1)
err = float(np.abs(cp.asnumpy(y) - ref).max() / np.abs(ref).max())
print(f"GPU conv2d matches the CPU: max |GPU - CPU| / max |CPU| = {err:.1e}")
assert err < 1e-5, err
PY
  )
}

src_hash() {  # $1 native|python: a hash of the sources that make the wheel's _C, or its Python
  local paths=(csrc CMakeLists.txt)
  [ "$1" = python ] && paths=(python/fastconv)
  (cd "$root" && find "${paths[@]}" -type f ! -name '*.so' ! -name '*.pyc' -print0 \
     | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

wheel_state() {  # is the carried wheel built from this tree? "stale: why", "python", or "same"
  [ -f "$root/.whl/SOURCE" ] || { echo "stale: no .whl/SOURCE (prepare writes it)"; return; }
  if [ "$(src_hash native)" != "$(sed -n 's/^native //p' "$root/.whl/SOURCE")" ]; then
    echo "stale: csrc/ or CMakeLists.txt changed since the wheel was built"
  elif [ "$(src_hash python)" != "$(sed -n 's/^python //p' "$root/.whl/SOURCE")" ]; then
    echo python
  else
    echo same
  fi
}

overlay_python() {  # $1 site: this tree's python/fastconv over the installed one (its _C kept)
  (cd "$root/python" && tar cf - --exclude='*.so' --exclude=__pycache__ fastconv) | tar xf - -C "$1"
}

stage_install() {
  cd "$root"
  local state
  state=$(wheel_state)
  echo "carried wheel: $(grep -h '^commit' .whl/SOURCE 2>/dev/null); against this tree: $state"
  if [ "$REHEARSE" = 1 ]; then
    # The carried wheel cannot run here (no GPU), but the device's pip command is rehearsed
    # with a Python 3.12 when one is found, and the package imports on the CPU.
    local py312=${REHEARSE_PY312:-/tmp/fc-prep-py312/bin/python}
    if [ -x "$py312" ]; then
      rm -rf /tmp/fc-rehearse-site
      "$py312" -m pip install -q --no-index --no-deps --no-compile --target /tmp/fc-rehearse-site \
        .whl/scipy_openblas32-*.whl .whl/fastconv-*-cp312-*.whl \
        && (cd /tmp && PYTHONPATH=/tmp/fc-rehearse-site "$py312" -c \
            "import fastconv; i = fastconv.info(); print('carried wheel imports here:', i['version'], i['cuda_archs'], i['cuda_device'])") \
        || { echo "the carried wheel does not install/import with $py312"; return 1; }
    else
      echo "no Python 3.12 at $py312: the carried wheel's install is not rehearsed"
    fi
    # Rebuild the emulated extension when C++/CUDA or the emulator changed since it was built;
    # else copy the Python package over it.
    local so
    so=$(ls "$EMU"/pkg/fastconv/_C*.so 2>/dev/null | head -1)
    if [ -z "$so" ] || [ -n "$(find csrc tools/cuda_emu/include tools/cuda_emu/*.py \
         tools/cuda_emu/*.cpp tools/cuda_emu/*.sh -newer "$so" -type f | head -1)" ]; then
      echo "building the emulated extension into $EMU (minutes)"
      OUT=$EMU nice bash tools/cuda_emu/build.sh > "$WORK/emu-build.log" 2>&1 \
        || { tail -20 "$WORK/emu-build.log"; return 1; }
    else
      overlay_python "$EMU/pkg"
    fi
    gpu_smoke || return 1
    result "emulated CUDA at $EMU (carried wheel vs tree: $state);" \
           "$(grep -h 'matches the CPU' "$WORK/install.log" | tail -1)"
    [ "${state%%:*}" = stale ] && return 1
    return 0
  fi
  local blas=(.whl/scipy_openblas32-*.whl) whl=(.whl/fastconv-*-cp312-*.whl) how
  [ -f "${blas[0]}" ] || { echo "no .whl/scipy_openblas32-*.whl: run prepare and carry .whl"; return 1; }
  rm -rf "$SITE"
  # --target keeps fastconv beside its BLAS, so the RPATH $ORIGIN/../scipy_openblas32/lib holds
  if [ "${state%%:*}" != stale ] && [ -f "${whl[0]}" ] \
     && "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "${blas[0]}" \
          "${whl[0]}" \
     && { [ "$state" = same ] || overlay_python "$SITE"; } && gpu_smoke; then
    how="carried wheel $(basename "${whl[0]}")$([ "$state" = python ] && echo ", this tree's Python over it")"
  else
    echo "the carried wheel is stale, missing or failed its GPU check: building here (sm_90, $JOBS jobs)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "${blas[0]}" \
      && build_from_source && gpu_smoke || return 1
    how="built on the device (carried wheel: $state)"
  fi
  result "$how; $(grep -h 'matches the CPU' "$WORK/install.log" | tail -1)"
}

build_from_source() {
  cd "$root"
  local t=$SECONDS
  "$PY" -m pip install --no-build-isolation --no-deps --upgrade --target "$SITE" \
    -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 -C build-dir=/tmp/fc-build . \
    > "$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; return 1; }
  echo "built in $((SECONDS - t)) s"
}

stage_build() {
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" \
    "$root"/.whl/scipy_openblas32-*.whl && build_from_source && gpu_smoke \
    && result "built for sm_90 in $SITE"
}

stage_info() {
  cd /tmp
  "$PY" -m fastconv.cli info
  if have nvidia-smi; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
      --format=csv
    nvidia-smi
    result "$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader)"
  else
    result "not here: no nvidia-smi; fastconv sees $("$PY" -c 'import fastconv; print(fastconv.info()["cuda_device"])')"
    return $NOT_HERE
  fi
}

stage_ceilings() {
  cd /tmp
  local smoke=()
  if [ "$REHEARSE" = 1 ]; then
    smoke=(--smoke)
    # the FMA kernel is compiled by CuPy's NVRTC on the device; nvcc here catches its typos
    if have nvcc; then
      "$PY" "$root/bench/gpu_ceilings.py" --print-kernel > "$WORK/fma_peak.cu" \
        && nvcc -arch=sm_90 -cubin -Xptxas -v -o "$WORK/fma_peak.cubin" "$WORK/fma_peak.cu" || return 1
    fi
  fi
  "$PY" "$root/bench/gpu_ceilings.py" "${smoke[@]}" --json "$OUT/ceilings.json"
  local rc=$?
  result "$("$PY" - "$OUT/ceilings.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rows = [f"{r['ceiling']} {r['value']:.3g} {r['unit']} ({r['how'].split(',')[0]})" for r in d["rows"]]
print("; ".join(rows + ["not measured: " + " | ".join(d["failed"])] * bool(d["failed"])))
PY
)"
  [ "$REHEARSE" = 1 ] && [ $rc -eq 0 ] && return $NOT_HERE
  return $rc
}

stage_tests() {
  cd /tmp
  local k=()
  [ -n "$TESTS_K" ] && k=(-k "$TESTS_K")
  "$PY" -m pytest -q -n "$JOBS" --timeout "${TEST_TIMEOUT:-120}" -p no:cacheprovider \
    --junitxml "$WORK/tests.xml" "${k[@]}" "$root"/tests/test_cuda_*.py \
    "$root"/tests/test_distributed.py::test_nccl_backend_on_the_gpu \
    "$root"/tests/test_dlpack.py::test_torch_cuda_tensors_stay_on_the_device
  local rc=$?
  result "$(pytest_line "$WORK/tests.log")"
  return $rc
}

bench_summary() {  # one line from the bench JSON: rows, ceilings, geometric-mean ratios per peer
  "$PY" - "$1" <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1]))["devices"].get("cuda", {})
if "skipped" in d:
    print("cuda skipped:", d["skipped"]); sys.exit(1)
rows, c = d["rows"], d["ceilings"]
out = [f"{len(rows)} rows; copy {c['copy_gbs']:.0f} GB/s, sgemm {c['sgemm_gflops']:.0f} GFLOP/s"]
for peer in ("torch_fp32", "torch_tf32"):
    for fam in ("conv", None):
        r = [row["peers"][peer]["ratio"] for row in rows if peer in row["peers"]
             and (fam is None or row["family"] == fam)]
        if r:
            out.append(f"{fam or 'all'}/{peer[6:]} geomean {math.exp(sum(map(math.log, r)) / len(r)):.2f}"
                       f" (max {max(r):.2f}, n={len(r)})")
print("; ".join(out))
PY
}

stage_bench_quick() {
  cd /tmp
  local extra=()
  [ -n "$BENCH_FILTER" ] && extra+=(--filter "$BENCH_FILTER")
  [ -n "$BENCH_OPS" ] && extra+=(--ops "$BENCH_OPS")
  "$PY" -m fastconv.cli bench --device cuda --suite quick --compare torch "${extra[@]}" \
    --json "$OUT/bench-quick.json" --markdown "$OUT/bench-quick.md" || return 1
  result "$(bench_summary "$OUT/bench-quick.json")"
}

train_summary() {  # fastconv's history.json -> accuracy and epoch times
  "$PY" - "$1" <<'PY'
import json, statistics, sys
d = json.load(open(sys.argv[1]))
t = [r["time"] for r in d["history"]]
print(f"test acc {d['test']['accuracy']:.4f} after {len(t)} epochs; epoch s "
      + " ".join(f"{s:.1f}" for s in t) + f" (median {statistics.median(t):.2f}, "
      f"{statistics.median(r['images_per_s'] for r in d['history']):.0f} images/s)")
PY
}

stage_train_quick() {
  cd /tmp
  local args=(train fashion-mnist --device cuda --epochs "$TRAIN_EPOCHS" --data "$FASTCONV_DATA"
              --out "$WORK/train-fastconv")
  [ -n "$TRAIN_LIMIT" ] && args+=(--limit "$TRAIN_LIMIT")
  rm -rf "$WORK/train-fastconv"
  if [ -z "$TEST_LIMIT" ]; then
    "$PY" -m fastconv.cli "${args[@]}" || return 1
  else
    # Rehearsal only: the emulator takes about a minute per 500 test images, so the test split
    # is cut to TEST_LIMIT images; everything else is `fastconv train` as on the device.
    "$PY" - "${args[@]}" <<'PY' || return 1
import os, sys
import fastconv.data as data
from fastconv.cli import main


class FashionMNIST(data.FashionMNIST):
    def __init__(self, *args, train=True, **kwargs):
        super().__init__(*args, train=train, **kwargs)
        if not train:
            n = int(os.environ["TEST_LIMIT"])
            self.images, self.labels = self.images[:n], self.labels[:n]


data.FashionMNIST = FashionMNIST
sys.exit(main(sys.argv[1:]))
PY
  fi
  cp "$WORK/train-fastconv/history.json" "$OUT/train-fastconv.json"
  result "$(train_summary "$OUT/train-fastconv.json")"
}

stage_torch_quick() {
  cd /tmp
  local dev=cuda limit=()
  if ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    [ "$REHEARSE" = 1 ] || { echo "torch sees no CUDA device"; return 1; }
    dev=cpu  # the twin's code path, on the CPU
  fi
  [ -n "$TRAIN_LIMIT" ] && limit=(--limit "$TRAIN_LIMIT")
  "$PY" "$root/bench/torch_train.py" --device "$dev" --epochs "$TRAIN_EPOCHS" "${limit[@]}" \
    --data "$FASTCONV_DATA" || return 1
  local line
  line=$(grep '^torch ' "$WORK/torch_quick.log" | awk '{print $5}' | tr -d s | tr '\n' ' ')
  result "torch on $dev: $(grep '^torch ' "$WORK/torch_quick.log" | tail -1 | grep -o 'test acc [0-9.]*')" \
         "after $TRAIN_EPOCHS epochs; epoch s $line"
  [ "$dev" = cuda ] || return $NOT_HERE
}

# The selection for the sanitizers: the kernel_cover marker (every _cuda kernel launched once in
# float32 and float64, on small shapes; tests/_cuda.py).
sanitizer_selection() {  # $1 memcheck|racecheck, $2 a -k expression or empty; one argument a line
  local files=("$root"/tests/test_cuda_*.py) k=${2:-}
  # racecheck: the files whose kernels use shared memory or warp shuffles (implicit-GEMM conv
  # and linear, channel/column sums, softmax, losses, batch norm, pooling gathers)
  [ "$1" = racecheck ] && files=("$root"/tests/test_cuda_{conv,dense,act,loss,norm,pool}.py)
  printf '%s\n' -m kernel_cover
  [ -n "$k" ] && printf '%s\n' -k "$k"
  printf '%s\n' "${files[@]}"
}

sanitize_with() {  # $1 tool
  local tool=$1 sel standin=0
  local k=${MEM_K:-}
  [ "$tool" = racecheck ] && k=${RACE_K:-}
  mapfile -t sel < <(sanitizer_selection "$tool" "$k")
  # never an empty selection: pytest would run the whole suite under the sanitizer
  [ ${#sel[@]} -gt 0 ] || { echo "the $tool selection came out empty"; return 1; }
  cd /tmp
  if ! have compute-sanitizer; then
    if [ "$REHEARSE" != 1 ]; then
      echo "no compute-sanitizer on PATH"
      return 1
    fi
    # the stand-in runs the same command line without checking anything (see its header)
    export PATH=$root/tools/cuda_emu/bin:$PATH
    standin=1
  fi
  # CuPy's memory pool hands out pieces of larger blocks, where memcheck cannot see an overrun:
  # every array gets its own cudaMalloc under the sanitizer.
  compute-sanitizer --tool "$tool" --error-exitcode 99 --log-file "$WORK/$tool.san.log" \
    "$PY" -c 'import sys, cupy, pytest; cupy.cuda.set_allocator(None); sys.exit(pytest.main(sys.argv[1:]))' \
    -q -p no:cacheprovider --timeout "${SAN_TIMEOUT:-90}" "${sel[@]}" 2>&1 | tee "$WORK/$tool.pytest.log"
  local rc=${PIPESTATUS[0]}
  result "$([ $standin = 1 ] && echo "not here, the stand-in ran it: ")$(grep -aE 'ERROR SUMMARY|RACECHECK SUMMARY' \
            "$WORK/$tool.san.log" | sort | uniq -c | sed 's/=//g; s/  */ /g' | tr '\n' ';')" \
         "pytest: $(pytest_line "$WORK/$tool.pytest.log") (-m kernel_cover)"
  [ $rc -eq 0 ] && [ $standin = 1 ] && return $NOT_HERE
  return $rc
}

stage_memcheck() { sanitize_with memcheck; }
stage_racecheck() { sanitize_with racecheck; }

stage_test() {  # the whole suite, CPU and GPU
  cd /tmp && "$PY" -m pytest -q -n "$JOBS" --timeout 300 -p no:cacheprovider "$root/tests"
  local rc=$?
  result "$(pytest_line "$WORK/test.log")"
  return $rc
}

stage_sanitize() {
  local rc=0
  STAGE=memcheck stage_memcheck || rc=$?
  STAGE=racecheck stage_racecheck || rc=$?
  result "$(cat "$WORK/memcheck.result" 2>/dev/null) | $(cat "$WORK/racecheck.result" 2>/dev/null)"
  return $rc
}

stage_bench() {  # the standard suite, for the speed issue
  cd /tmp && "$PY" -m fastconv.cli bench --device cuda --suite standard --compare torch \
    --json "$OUT/bench-standard.json" --markdown "$OUT/bench-standard.md" \
    --plot "$WORK/bench-standard.png" || return 1
  result "$(bench_summary "$OUT/bench-standard.json")"
}

stage_train() {  # the long recipes: fashion_cnn, resnet18 with augmentation, and both twins
  cd /tmp
  "$PY" -m fastconv.cli train fashion-mnist --device cuda --data "$FASTCONV_DATA" \
    --out "$WORK/fashion_cnn" || return 1
  "$PY" -m fastconv.cli train fashion-mnist --model resnet18 --augment --epochs 10 \
    --optimizer sgd --lr 0.05 --batch-size 128 --device cuda --data "$FASTCONV_DATA" \
    --out "$WORK/resnet18" || return 1
  "$PY" "$root/bench/torch_train.py" --device cuda --data "$FASTCONV_DATA" || return 1
  "$PY" "$root/bench/torch_train.py" --model resnet18 --augment --epochs 10 --batch-size 128 \
    --device cuda --data "$FASTCONV_DATA" || return 1
  result "fashion_cnn: $(train_summary "$WORK/fashion_cnn/history.json") | resnet18:" \
         "$(train_summary "$WORK/resnet18/history.json")"
}

stage_wheel() {  # the published wheel's recipe, built on the device, installed alone and run
  cd "$root"
  rm -rf /tmp/fc-wheel && "$PY" -m pip wheel --no-build-isolation --no-deps -w /tmp/fc-wheel \
    -C cmake.define.CMAKE_CUDA_ARCHITECTURES="80-real;90-real;90-virtual" \
    -C build-dir=/tmp/fc-wheel-build . || return 1
  ls -la /tmp/fc-wheel
  rm -rf "$SITE" && "$PY" -m pip install -q --no-index --no-deps --target "$SITE" \
    /tmp/fc-wheel/*.whl .whl/scipy_openblas32-*.whl && gpu_smoke || return 1
  result "device-built wheel: $(grep -h 'matches the CPU' "$WORK/wheel.log" | tail -1)"
}

# -- the driver ---------------------------------------------------------------------------------

if [ "${1:-}" = --stage ]; then  # one stage, inside its timeout (see run_stage)
  STAGE=$2
  "stage_$2"
  exit $?
fi

pack() {  # everything under $WORK into $OUT/logs.tgz (models excepted), after every stage
  tar czf "$OUT/logs.tgz.tmp" --exclude='*.npz' -C "$WORK" . 2>/dev/null \
    && mv "$OUT/logs.tgz.tmp" "$OUT/logs.tgz"
}

run_stage() {
  local name=$1 cap=${CAP[$1]} left status rc t
  cap=$(eval echo "\${CAP_$name:-$cap}")
  left=$((DEADLINE - SECONDS - 15))
  if [ "$left" -lt 20 ]; then
    printf '%s\tskipped\t0\t0\tno time left before the %s s deadline\n' "$name" "$DEADLINE" >> "$WORK/summary.tsv"
    echo "== $name: skipped (deadline)"
    return
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  echo "== $name (cap ${cap} s) at $(date +%T), $SECONDS s in"
  t=$SECONDS
  timeout -k 10 "$cap" bash "$self" --stage "$name" > "$WORK/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status=TIMEOUT ;;
    "$NOT_HERE") status="not here" ;;
    *) status="FAIL($rc)" ;;
  esac
  local line
  line=$(cat "$WORK/$name.result" 2>/dev/null || grep -av '^\s*$' "$WORK/$name.log" | tail -1)
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t))" "$cap" "${line:0:400}" >> "$WORK/summary.tsv"
  echo "   $status in $((SECONDS - t)) s: ${line:0:300}"
  # the tool returns only the output's last 12,000 characters: keep failures' excerpts short
  case $status in ok|"not here") ;; *) tail -8 "$WORK/$name.log" | cut -c1-200 | sed 's/^/   | /' ;; esac
  [ "$name" = prepare ] && cat "$WORK/prepare.log"
  pack
}

[ $# -gt 0 ] || { sed -n '2,/^set -uo/{/^set/!p}' "$0"; exit 2; }
stages=()
for a in "$@"; do
  if [ "$a" = quick ]; then stages+=("${QUICK[@]}"); else stages+=("$a"); fi
done
for s in "${stages[@]}"; do
  declare -F "stage_$s" > /dev/null || { echo "unknown stage '$s'"; sed -n '2,/^set -uo/{/^set/!p}' "$0"; exit 2; }
done
rm -rf "$WORK" && mkdir -p "$WORK" "$OUT"
SECONDS=0
echo "fastconv gpu_check: ${stages[*]} | $([ "$REHEARSE" = 1 ] && echo "REHEARSAL on tools/cuda_emu" || echo device) | $(date -Is) | deadline $DEADLINE s | OUT=$OUT"
(cd "$root" && git log -1 --format='commit %h %s' 2>/dev/null | cut -c1-100)
for s in "${stages[@]}"; do run_stage "$s"; done
{
  echo "== summary: ${stages[*]}$([ "$REHEARSE" = 1 ] && echo " (REHEARSAL: emulator, small limits)"), $SECONDS s of the $DEADLINE s deadline"
  printf '%-12s %-9s %5s %5s  %s\n' stage status s cap result
  while IFS=$'\t' read -r n st s c r; do
    printf '%-12s %-9s %5s %5s  %s\n' "$n" "$st" "$s" "$c" "$r"
  done < "$WORK/summary.tsv"
} | tee "$OUT/summary.txt"
pack
! cut -f2 "$WORK/summary.tsv" | grep -qvE '^(ok|not here)$'
