"""Threads, the CPU variant, and build information."""

import ctypes
import os
import sys
import warnings
from importlib import metadata

from ._loader import _C
from .functional._args import as_int


def _version():
    try:
        return metadata.version("fastconv")
    except metadata.PackageNotFoundError:
        return "unknown"


def set_num_threads(n):
    """Set the threads fastconv's kernels use (OpenMP); the BLAS runs single-threaded inside
    each of them, so the two never oversubscribe the cores. One count for the whole process:
    called from any Python thread, it applies to kernels started afterwards in every thread."""
    _C.set_num_threads(as_int(n, "n", "set_num_threads"))


def get_num_threads():
    """The number of threads fastconv's kernels use (process-wide, see set_num_threads)."""
    return _C.get_num_threads()


def get_cpu_isa():
    """The instruction-set variant of the CPU kernels' hot loops: "avx512", "avx2" or
    "baseline" (SSE2, any x86-64). The best this CPU has unless the environment variable
    FASTCONV_CPU_ISA named a lower one when fastconv was imported; info()["cpu_isas"] lists
    what this CPU supports. Results may differ between variants in the last bits (fused
    multiply-adds, wider partial sums), never between runs of one variant."""
    return _C.get_cpu_isa()


def _cpu_isa_from_environment():
    name = os.environ.get("FASTCONV_CPU_ISA", "").strip().lower()
    if not name:
        return
    supported = _C.build_info()["cpu_isas"]
    known = ("avx512", "avx2", "baseline")
    if name not in known:
        raise ValueError(f"FASTCONV_CPU_ISA must be one of {', '.join(known)}, got "
                         f"{os.environ['FASTCONV_CPU_ISA']!r}")
    if name not in supported:
        warnings.warn(f"FASTCONV_CPU_ISA={name}: this CPU cannot run it; using "
                      f"{supported[0]}", RuntimeWarning, stacklevel=3)
        return
    _C.set_cpu_isa(name)


_cpu_isa_from_environment()

# glibc's mallopt parameters and the values fastconv sets: a network's activations (a few to
# tens of MB each) are then carved from the heap and reused step after step. By default glibc
# serves them with fresh mmaps, or trims the heap top they leave, so every step faults and
# zeroes its pages again: 4.7 ms against 2.0 ms for the allocations of one fashion_cnn forward
# at batch 256 (and NumPy, unlike PyTorch, allocates every output). Up to the trim threshold of
# freed memory stays with the process.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_TUNING = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 128 << 20}


def _tune_malloc():
    """Sets _MALLOC_TUNING on glibc unless FASTCONV_MALLOC_TUNING=0 (or the user set glibc's
    own MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_); returns whether it did."""
    if os.environ.get("FASTCONV_MALLOC_TUNING", "1").strip() == "0":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(k, v) == 1 for k, v in _MALLOC_TUNING.items())


_malloc_tuned = _tune_malloc()


def set_allow_tf32(allow):
    """Let float32 convolution and linear on the GPU use TF32 tensor cores (operands rounded
    to 10 mantissa bits, about 1e-3 relative error, several times faster). Off by default;
    the CPU and float64 are never affected. Process-wide: it applies to calls started
    afterwards in every thread."""
    if not isinstance(allow, bool):
        raise TypeError(f"set_allow_tf32: allow must be a bool, got {allow!r}")
    _C.set_allow_tf32(allow)


def get_allow_tf32():
    """Whether the GPU may use TF32 for float32 convolution and linear (see set_allow_tf32)."""
    return _C.get_allow_tf32()


def require_cuda(what):
    """Raise RuntimeError saying why `what` cannot run on the GPU here, if it cannot."""
    if not _C.build_info()["cuda_built"]:
        raise RuntimeError(f"{what}: this fastconv was built without CUDA (nvcc was not found "
                           "at build time); reinstall with nvcc on PATH")
    try:
        import cupy
    except ImportError:
        raise RuntimeError(f"{what}: GPU arrays are CuPy arrays and CuPy is not installed "
                           "(pip install cupy-cuda13x)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CuPy's CUDARuntimeError when there is no driver
        raise RuntimeError(f"{what}: no usable CUDA device ({e})") from None
    if count == 0:
        raise RuntimeError(f"{what}: no CUDA device is visible")


def info():
    """Version, BLAS, threads, OpenMP, SIMD and CUDA facts of this build, as a dict."""
    d = {"version": _version(), "num_threads": get_num_threads()}
    d.update(_C.build_info())
    d["blas_threads"] = 1
    d["allow_tf32"] = get_allow_tf32()
    d["cpu_isa"] = get_cpu_isa()
    d["malloc_tuned"] = _malloc_tuned
    return d
