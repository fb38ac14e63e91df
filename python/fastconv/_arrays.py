"""NumPy and CuPy arrays side by side: which module an array belongs to, and new arrays on the
same device. CuPy is imported only when a CUDA array is met, so CPU users never need it.

Any object exposing ``__cuda_array_interface__`` counts as a GPU array; new GPU arrays are made
with CuPy (on its current device, from its memory pool).
"""

import numpy as np


def is_cuda(x):
    return hasattr(x, "__cuda_array_interface__") and not isinstance(x, np.ndarray)


def is_array(x):
    return isinstance(x, np.ndarray) or is_cuda(x)


def module_of(x):
    """numpy, or cupy for a CUDA array (RuntimeError saying what is missing when CuPy or a
    CUDA build is not there)."""
    if is_cuda(x):
        return _cupy(f"a {type(x).__module__}.{type(x).__qualname__} (CUDA array)")
    return np


def _cupy(what):
    try:
        import cupy
    except ImportError:
        from ._runtime import require_cuda
        require_cuda(what)
        raise
    return cupy


def device_of(x):
    """'cuda' or 'cpu'."""
    return "cuda" if is_cuda(x) else "cpu"


def empty(like, shape, dtype=None):
    """An uninitialised array of `shape` on like's device, with like's dtype unless given."""
    return module_of(like).empty(shape, dtype=like.dtype if dtype is None else dtype)


def zeros(like, shape, dtype=None):
    return module_of(like).zeros(shape, dtype=like.dtype if dtype is None else dtype)


def c_contiguous(x):
    """x itself when C-contiguous, else a C-ordered copy on the same device (0-d stays 0-d).
    A CUDA array without NumPy-style flags passes as is; the extension checks its strides."""
    flags = getattr(x, "flags", None)
    return x if flags is None or flags.c_contiguous else x.copy(order="C")


def to_numpy(x):
    """A NumPy array with x's values (a device-to-host copy for a CUDA array)."""
    return x.get() if is_cuda(x) and hasattr(x, "get") else np.asarray(x)


def to_device(x, device):
    """x on `device` ('cpu' or 'cuda'), copied only when it is elsewhere."""
    if device == "cpu":
        return to_numpy(x)
    if device == "cuda":
        return _cupy("moving arrays to 'cuda'").asarray(x)
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
