"""GPU test support: why GPU tests skip here, host/device copies, poisoned outputs, and the
kernel_cover subset.

GPU tests run when fastconv was built with CUDA, CuPy imports and a device is visible; otherwise
they skip with the reason. The `poisoned` fixture makes every output array fastconv.functional
allocates start as NaN (floats) or all ones bits (integers), so an element a kernel fails to write
fails the comparison instead of passing on recycled memory. The `no_allocation` fixture (CPU and
GPU alike) fails a call that allocates an output before refusing its arguments.

`pytest -m kernel_cover` selects small cases that together launch every CUDA twin (the op lists
in csrc/*.h) in float32 and float64, forward and backward, and every launch site: CI runs them on
the CUDA emulator and checks that claim (tools/cuda_emu/ci.sh), compute-sanitizer runs them on a
GPU. A test or case joins the subset with @kernel_cover, cover(...) or covering(...).
"""

import importlib

import numpy as np
import pytest

import fastconv


def _why_not():
    info = fastconv.info()
    if not info["cuda_built"]:
        return "fastconv was built without CUDA (no nvcc at build time, or FASTCONV_CUDA=OFF)"
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install cupy-cuda13x)"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CuPy raises its CUDARuntimeError when there is no driver
        return f"no usable CUDA device: {e}"
    if count == 0:
        return "no CUDA device visible"
    return None


REASON = _why_not()
requires_cuda = pytest.mark.skipif(REASON is not None, reason=f"GPU test: {REASON}")
cp = importlib.import_module("cupy") if REASON is None else None

kernel_cover = pytest.mark.kernel_cover


def cover(*values, id=None):
    """One parametrize entry (its argument values), in the kernel_cover subset."""
    return pytest.param(*values, id=id, marks=kernel_cover)


def covering(values, *chosen, spread=False):
    """`values` for parametrize, the entries equal to one of `chosen` in the kernel_cover
    subset. spread=True when each entry holds several arguments (parametrize("a,b", ...))."""
    missing = [c for c in chosen if c not in values]
    assert not missing, f"kernel_cover: not among the values: {missing}"
    return [cover(*(v if spread else (v,))) if v in chosen else v for v in values]


_FUNCTIONAL = ("_act", "_conv", "_dense", "_dropout", "_loss", "_norm", "_pool")


def dev(*arrays):
    """NumPy arrays as CuPy arrays (None stays None); one array in, one out."""
    out = tuple(None if a is None else cp.asarray(a) for a in arrays)
    return out[0] if len(out) == 1 else out


def host(x):
    """A CuPy array (or a tuple of them) copied back as NumPy."""
    if isinstance(x, tuple):
        return tuple(host(a) for a in x)
    return None if x is None else cp.asnumpy(x)


@pytest.fixture
def poisoned(monkeypatch):
    def empty(like, shape, dtype=None):
        dt = np.dtype(like.dtype if dtype is None else dtype)
        fill = np.nan if dt.kind == "f" else np.iinfo(dt).max
        xp = cp if hasattr(like, "__cuda_array_interface__") else np
        return xp.full(shape, fill, dtype=dt)

    for name in _FUNCTIONAL:
        mod = importlib.import_module(f"fastconv.functional.{name}")
        if hasattr(mod, "empty"):
            monkeypatch.setattr(mod, "empty", empty)
    yield


# The modules whose outputs the binding allocates, after its checks (act and dropout allocate
# theirs in Python: an elementwise output is the input's shape, or the input itself in place).
_ALLOCATED_IN_BINDING = ("_conv", "_dense", "_loss", "_norm", "_pool")


@pytest.fixture
def no_allocation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an output was allocated before the arguments were checked")

    for name in _ALLOCATED_IN_BINDING:
        mod = importlib.import_module(f"fastconv.functional.{name}")
        for alloc in ("empty", "zeros"):
            if hasattr(mod, alloc):
                monkeypatch.setattr(mod, alloc, refuse)
