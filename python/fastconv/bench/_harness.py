"""Timing, validation, the machine's ceilings and the environment record.

Rules: nothing is timed before its output has been checked (check() raises ValidationError);
every timing warms up first, then takes `repeats` samples, each the mean of an inner loop long
enough that timer resolution does not matter, fastconv's and its peers' in turns
(measure_turns); GPU samples are CUDA events on the stream the work runs on.
"""

import datetime
import os
import platform
import time
from dataclasses import dataclass

import numpy as np


class ValidationError(RuntimeError):
    """An output differs from the reference: the benchmark refuses to time it."""


@dataclass(frozen=True)
class Timing:
    warmup: int
    repeats: int
    min_time: float  # seconds one sample should last; its inner loop is sized to reach it


TIMINGS = {"quick": Timing(1, 5, 0.02), "standard": Timing(2, 9, 0.1),
           "full": Timing(3, 11, 0.2)}


class CpuClock:
    def sync(self):
        pass

    def run(self, fn, n):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - start


class CupyClock:
    """CUDA events recorded on CuPy's current stream, where fastconv's CUDA kernels run."""

    def __init__(self, cupy):
        self.cupy = cupy

    def sync(self):
        self.cupy.cuda.runtime.deviceSynchronize()

    def run(self, fn, n):
        cuda = self.cupy.cuda
        stream = cuda.get_current_stream()
        start, end = cuda.Event(), cuda.Event()
        start.record(stream)
        for _ in range(n):
            fn()
        end.record(stream)
        end.synchronize()
        return cuda.get_elapsed_time(start, end) / 1e3


class TorchClock:
    """CUDA events on torch's current stream."""

    def __init__(self, torch):
        self.torch = torch

    def sync(self):
        self.torch.cuda.synchronize()

    def run(self, fn, n):
        cuda = self.torch.cuda
        start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3


def _warm(fn, clock, timing):
    """Warm-up calls, then the inner loop that makes a sample last timing.min_time."""
    for _ in range(timing.warmup):
        fn()
    clock.sync()
    once = max(clock.run(fn, 1), 1e-7)
    return int(min(max(1, timing.min_time / once), 100_000))


def _stats(samples, inner):
    samples = sorted(samples)
    q1, median, q3 = (float(v) for v in np.percentile(samples, [25, 50, 75]))
    return {"median_s": median, "min_s": samples[0], "max_s": samples[-1], "q1_s": q1,
            "q3_s": q3, "samples_s": samples, "inner_loop": inner}


def measure(fn, clock, timing):
    """Seconds per call of fn: median, spread and every sample, after warm-up."""
    inner = _warm(fn, clock, timing)
    return _stats([clock.run(fn, inner) / inner for _ in range(timing.repeats)], inner)


def measure_turns(sides, timing):
    """measure() for several (fn, clock, math) sides at once, math a context manager factory:
    each warms up and sizes its inner loop, then the samples are taken in turns, round after
    round one of every side. A machine that slows down or recovers mid-measurement then weighs
    on every side alike; timed one side after the other, the side whose second it fell in took
    it all (AlexNet conv1's forward once sampled 4.2-6.9 ms beside PyTorch's 3.7-5.4)."""
    inners = []
    for fn, clock, math in sides:
        with math():
            inners.append(_warm(fn, clock, timing))
    samples = [[] for _ in sides]
    for _ in range(timing.repeats):
        for (fn, clock, math), inner, out in zip(sides, inners, samples):
            with math():
                out.append(clock.run(fn, inner) / inner)
    return [_stats(s, inner) for s, inner in zip(samples, inners)]


def host(a):
    """A NumPy float64 (or integer) copy of a NumPy, CuPy or torch array, or of a number."""
    kind = type(a).__module__.split(".")[0]
    if kind == "cupy":
        a = a.get()
    elif kind == "torch":
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    return a.astype(np.float64) if a.dtype.kind in "fc" else a


def rel_err(actual, expected):
    """max |actual - expected| / max |expected|; inf for a shape mismatch or a NaN/Inf."""
    actual, expected = host(actual).astype(np.float64), host(expected).astype(np.float64)
    if actual.shape != expected.shape:
        return float("inf")
    if not (np.isfinite(actual).all() and np.isfinite(expected).all()):
        return float("inf")
    if actual.size == 0:
        return 0.0
    scale = max(float(np.abs(expected).max()), 1e-30)
    return float(np.abs(actual - expected).max() / scale)


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def check(what, outputs, expected, tol):
    """The largest rel_err over the outputs that have an expected value (None: not compared);
    raises ValidationError above tol."""
    outputs, expected = as_tuple(outputs), as_tuple(expected)
    if len(outputs) < len(expected):
        raise ValidationError(f"{what}: returned {len(outputs)} outputs, expected "
                              f"{len(expected)}; refusing to time it")
    errs = [rel_err(o, e) for o, e in zip(outputs, expected) if e is not None]
    err = max(errs, default=0.0)
    if not err <= tol:
        raise ValidationError(f"{what}: differs from the float64 reference by {err:.2e} "
                              f"(max |error| / max |reference|, tolerance {tol:.0e}); "
                              "refusing to time it")
    return err


# -- the machine's ceilings ----------------------------------------------------------------

def cpu_ceilings(timing, copy_bytes, numpy_matmul=True):
    """SGEMM GFLOP/s at 2048^3 and large-copy GB/s, measured now.

    The SGEMM is fastconv's F.linear without bias: one GEMM in the BLAS the conv kernels use,
    split over the same threads. NumPy's matmul (its own BLAS, its own threads) is recorded
    beside it when numpy_matmul. The copy is np.copyto of copy_bytes, read + write counted.
    """
    import fastconv.functional as F

    n = 2048
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    clock = CpuClock()
    sgemm = measure(lambda: F.linear(a, b), clock, timing)
    src = np.ones(copy_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    copy = measure(lambda: np.copyto(dst, src), clock, timing)
    out = {
        "sgemm_gflops": 2 * n**3 / sgemm["median_s"] / 1e9,
        "sgemm_how": f"fastconv F.linear {n}x{n} by {n}x{n}^T float32 (its BLAS, its threads)",
        "copy_gbs": 2 * copy_bytes / copy["median_s"] / 1e9,
        "copy_how": f"np.copyto of {copy_bytes >> 20} MiB float32, read + write counted",
    }
    if numpy_matmul:
        matmul = measure(lambda: a @ b, clock, timing)
        out["numpy_matmul_gflops"] = 2 * n**3 / matmul["median_s"] / 1e9
    return out


def cuda_ceilings(cupy, timing):
    """Device-to-device copy GB/s (1 GiB, read + write) and cupy.matmul float32 GFLOP/s at
    4096^3 (CuPy computes float32 GEMMs in full FP32 unless CUPY_TF32=1)."""
    clock = CupyClock(cupy)
    nbytes = 1 << 30
    src = cupy.ones(nbytes // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    copy = measure(lambda: cupy.copyto(dst, src), clock, timing)
    del src, dst
    n = 4096
    a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    gemm = measure(lambda: cupy.matmul(a, b), clock, timing)
    return {
        "sgemm_gflops": 2 * n**3 / gemm["median_s"] / 1e9,
        "sgemm_how": f"cupy.matmul {n}^3 float32 (CUPY_TF32={os.environ.get('CUPY_TF32', '0')})",
        "copy_gbs": 2 * nbytes / copy["median_s"] / 1e9,
        "copy_how": "cupy.copyto of 1 GiB float32 on the device, read + write counted",
    }


# -- environment ---------------------------------------------------------------------------

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads, torch=None, cupy=None):
    """What produced the numbers: machine, build, library versions, date."""
    import fastconv

    info = fastconv.info()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    env = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "threads": threads,
        "fastconv": info["version"],
        "blas": f"{info['blas']} ({info['blas_core']})",
        "compiler": info["compiler"],
        "simd_compiled": info["simd"],
        "cpu_isa": info["cpu_isa"],
        "cpu_simd": info["cpu_simd"],
        "openmp": info["openmp"],
        "cuda_built": info["cuda_built"],
        "cuda_device": info.get("cuda_device"),
        "numpy": np.__version__,
        "torch": None if torch is None else torch.__version__,
        "cupy": None if cupy is None else cupy.__version__,
        "env_vars": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                                 "GOMP_SPINCOUNT", "CUPY_TF32")
                     if k in os.environ},
    }
    if torch is not None:
        env["torch_onednn"] = bool(torch.backends.mkldnn.is_available())
    return env


def cuda_environment(cupy, torch=None):
    """GPU name, driver and runtime versions (CuPy's view and torch's)."""
    runtime = cupy.cuda.runtime
    device = cupy.cuda.Device().id
    name = runtime.getDeviceProperties(device)["name"]
    env = {"gpu": name.decode() if isinstance(name, bytes) else str(name),
           "cuda_driver": _cuda_version(runtime.driverGetVersion()),
           "cuda_runtime": _cuda_version(runtime.runtimeGetVersion())}
    if torch is not None:
        env["torch_cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def _cuda_version(v):
    return f"{v // 1000}.{v % 1000 // 10}"
