"""The GPU's ceilings, measured now, for bench/GPU_NOTES.md: what no kernel can beat.

    python bench/gpu_ceilings.py --json ceilings.json     # on the GPU machine, ~15 s
    python bench/gpu_ceilings.py --smoke                  # anywhere: tiny sizes, checks the code

- copy: a 1 GiB device-to-device copy (torch and CuPy), bytes read + written over time;
- fp32 FMA: a CuPy kernel of independent fmaf chains (no memory traffic), 2 FLOP per FMA;
- matrix products at 8192^3 through PyTorch (cuBLAS) on random data: float32 with TF32 off
  (SGEMM, and cupy.matmul beside it), TF32, and bf16 (KINDS.md's earlier reading: ~790 TFLOP/s).

Each figure is the median of several CUDA-event timings after warm-up (METHOD.md). With
--smoke (or no GPU) sizes shrink and torch runs where it can, so the code path runs on a
machine without a GPU; its numbers mean nothing. A measurement that fails is reported with its
error, and the exit status is 1 (except under --smoke, where missing pieces are expected).
"""

import argparse
import json
import math
import statistics
import sys
import time

# Rates below: bytes (or FLOP) per millisecond / 1e9 = TB/s (or TFLOP/s).
FMA_CHAINS = 8
FMA_KERNEL = r"""
extern "C" __global__ void fma_peak(float* out, float b, float c, int iters) {
  // FMA_CHAINS independent chains hide the FMA latency; b and c are run-time values, so the
  // compiler cannot fold the loop, and the sum written at the end keeps every chain alive.
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  float a0 = t * 1e-9f, a1 = a0 + 1e-3f, a2 = a0 + 2e-3f, a3 = a0 + 3e-3f;
  float a4 = a0 + 4e-3f, a5 = a0 + 5e-3f, a6 = a0 + 6e-3f, a7 = a0 + 7e-3f;
#pragma unroll 16
  for (int i = 0; i < iters; ++i) {
    a0 = fmaf(a0, b, c); a1 = fmaf(a1, b, c); a2 = fmaf(a2, b, c); a3 = fmaf(a3, b, c);
    a4 = fmaf(a4, b, c); a5 = fmaf(a5, b, c); a6 = fmaf(a6, b, c); a7 = fmaf(a7, b, c);
  }
  out[t] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}
"""


def _median_ms(run_once, sync, warmup, repeats):
    """Median milliseconds of run_once(), which returns its own elapsed ms."""
    for _ in range(warmup):
        run_once()
    sync()
    return statistics.median(run_once() for _ in range(repeats))


class TorchTimer:
    def __init__(self, torch, device):
        self.torch, self.cuda = torch, device.type == "cuda"

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def time(self, fn, warmup=3, repeats=10):
        def once():
            if not self.cuda:
                start = time.perf_counter()
                fn()
                return (time.perf_counter() - start) * 1e3
            ev = [self.torch.cuda.Event(enable_timing=True) for _ in range(2)]
            ev[0].record()
            fn()
            ev[1].record()
            ev[1].synchronize()
            return ev[0].elapsed_time(ev[1])
        return _median_ms(once, self.sync, warmup, repeats)


def cupy_time(cupy, fn, warmup=3, repeats=10):
    def once():
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end)
    return _median_ms(once, cupy.cuda.runtime.deviceSynchronize, warmup, repeats)


def _fp32_mode(torch, mode):
    """Set torch's float32 matmul math to 'ieee' (TF32 off) or 'tf32'; the torch >= 2.9 knob
    where it exists (the legacy flags must not be mixed with it), else the legacy flag."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        matmul.fp32_precision = mode
    else:
        matmul.allow_tf32 = mode == "tf32"


def measure_torch(rows, smoke):
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not smoke:
        raise RuntimeError("torch sees no CUDA device")
    timer = TorchTimer(torch, device)
    gen = torch.Generator(device=device).manual_seed(0)
    nbytes = (16 << 20) if smoke else (1 << 30)
    src = torch.randn(nbytes // 4, device=device, generator=gen)
    dst = torch.empty_like(src)
    ms = timer.time(lambda: dst.copy_(src))
    rows.append(("copy", "torch dst.copy_(src)", f"{nbytes >> 20} MiB float32",
                 2 * nbytes / ms / 1e9, "TB/s", ms))
    del src, dst
    n = 256 if smoke else 8192
    for name, dtype, mode in (("sgemm fp32", torch.float32, "ieee"),
                              ("tf32 gemm", torch.float32, "tf32"),
                              ("bf16 gemm", torch.bfloat16, None)):
        if device.type != "cuda" and dtype == torch.bfloat16:
            continue
        a = torch.randn(n, n, device=device, generator=gen).to(dtype)
        b = torch.randn(n, n, device=device, generator=gen).to(dtype)
        if mode:
            _fp32_mode(torch, mode)
        try:
            ms = timer.time(lambda: torch.matmul(a, b))
        finally:
            if mode:
                _fp32_mode(torch, "ieee")
        rows.append((name, f"torch.matmul, {torch.__version__}", f"{n}^3 random",
                     2 * n**3 / ms / 1e9, "TFLOP/s", ms))
    return {"torch": torch.__version__, "torch_device": str(device),
            "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None}


def measure_cupy(rows, smoke):
    import cupy

    nbytes = (16 << 20) if smoke else (1 << 30)
    src = cupy.random.standard_normal(nbytes // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    ms = cupy_time(cupy, lambda: cupy.copyto(dst, src))
    rows.append(("copy", "cupy.copyto", f"{nbytes >> 20} MiB float32", 2 * nbytes / ms / 1e9,
                 "TB/s", ms))
    del src, dst
    n = 256 if smoke else 8192
    a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    ms = cupy_time(cupy, lambda: cupy.matmul(a, b))
    rows.append(("sgemm fp32", "cupy.matmul (CUPY_TF32 unset: full FP32)", f"{n}^3 random",
                 2 * n**3 / ms / 1e9, "TFLOP/s", ms))
    del a, b
    env = {"cupy": cupy.__version__}
    if not hasattr(cupy, "RawKernel"):
        raise RuntimeError("this CuPy has no RawKernel (the emulator's fake CuPy?): no FMA rate")
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    sms = env["sms"] = props["multiProcessorCount"]
    kernel = cupy.RawKernel(FMA_KERNEL, "fma_peak")
    threads, blocks = 256, sms * 8
    iters = 256 if smoke else 16384
    out = cupy.empty(threads * blocks, dtype=cupy.float32)
    args = (out, cupy.float32(0.9999), cupy.float32(1e-4), cupy.int32(iters))
    ms = cupy_time(cupy, lambda: kernel((blocks,), (threads,), args))
    if not bool(cupy.isfinite(out).all()):
        raise RuntimeError("fma_peak wrote a non-finite value")
    flop = 2.0 * FMA_CHAINS * iters * threads * blocks
    rows.append(("fp32 fma", f"fmaf chains, {blocks}x{threads} threads ({sms} SMs)",
                 f"{iters} iterations x {FMA_CHAINS} chains", flop / ms / 1e9, "TFLOP/s", ms))
    return env


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes, any device: checks the code path, not the machine")
    ap.add_argument("--print-kernel", action="store_true",
                    help="print the FMA kernel's CUDA source (to compile it with nvcc) and exit")
    args = ap.parse_args(argv)
    if args.print_kernel:
        print(FMA_KERNEL)
        return 0
    rows, env, failed = [], {}, []
    for name, measure in (("torch", measure_torch), ("cupy", measure_cupy)):
        try:
            env.update(measure(rows, args.smoke))
        except Exception as err:  # one library missing must not hide the other's figures
            failed.append(f"{name}: {type(err).__name__}: {err}")
    print(f"{'ceiling':<11} {'value':>9} {'unit':<8} {'ms':>8}  how")
    for name, how, size, value, unit, ms in rows:
        print(f"{name:<11} {value:>9.3f} {unit:<8} {ms:>8.3f}  {how}, {size}")
    for line in failed:
        print(f"not measured: {line}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"smoke": args.smoke, "environment": env, "failed": failed,
                       "rows": [{"ceiling": r[0], "how": r[1], "size": r[2],
                                 "value": r[3],
                                 "unit": r[4], "median_ms": r[5]} for r in rows]}, f, indent=1)
    ok = all(math.isfinite(r[3]) and r[3] > 0 for r in rows)
    return 0 if ok and (args.smoke or not failed) else 1


if __name__ == "__main__":
    sys.exit(main())
