"""NumPy and CuPy arrays side by side: which module an array belongs to, and new arrays on the
same device. CuPy is imported only when a CUDA array is met, so CPU users never need it.

Any object exposing ``__cuda_array_interface__`` counts as a GPU array; new GPU arrays are made
with CuPy (on its current device, from its memory pool). Other tensors (PyTorch, JAX, ...)
enter through DLPack: shared_view/from_dlpack view their memory as NumPy or CuPy, no copy.
"""

import sys

import numpy as np


# DLPack device types (dlpack.h's DLDeviceType): where an exporter's memory lives.
_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13


def from_dlpack(x):
    """x as a NumPy array (CPU memory) or a CuPy array (CUDA memory) sharing its memory, for
    any object with __dlpack__ (PyTorch and JAX tensors, ...); NumPy and CuPy arrays, and
    objects with only __cuda_array_interface__ (no __dlpack__), come back as they are."""
    if isinstance(x, np.ndarray) or _is_cupy(x):
        return x
    if is_cuda(x) and not hasattr(x, "__dlpack__"):
        return x
    if not hasattr(x, "__dlpack__") or not hasattr(x, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ (a tensor or array), "
                        f"got {type(x).__module__}.{type(x).__qualname__}")
    # PyTorch keeps a negation or conjugation as a bit on a view (t.conj().imag) that its
    # DLPack export leaves out: the values would come with the wrong sign. Resolved, a copy.
    if callable(getattr(x, "is_neg", None)) and (x.is_neg() or x.is_conj()):
        x = x.resolve_neg().resolve_conj()
    try:
        device = int(x.__dlpack_device__()[0])
    except (ValueError, RuntimeError) as e:  # torch's meta tensors, which have no memory
        raise TypeError(f"from_dlpack: {type(x).__qualname__} has no memory to share: "
                        f"{e}") from None
    try:
        if device in (_DL_CPU, _DL_CUDA_HOST):
            return np.from_dlpack(x)
        if device in (_DL_CUDA, _DL_CUDA_MANAGED):
            return _cupy("a CUDA tensor passed through DLPack").from_dlpack(x)
    except (BufferError, RuntimeError) as e:  # RuntimeError: a dtype NumPy lacks (bfloat16)
        raise TypeError(f"from_dlpack: {type(x).__qualname__} of dtype "
                        f"{getattr(x, 'dtype', '?')} refused to share its memory: {e}") from None
    raise TypeError(f"from_dlpack: {type(x).__qualname__} lives on DLPack device type {device}; "
                    "fastconv takes CPU and CUDA memory")


def shared_view(x):
    """x itself when it is a NumPy/CUDA array or not array-like at all (the extension then
    refuses it by name); a NumPy or CuPy view of it when it speaks DLPack."""
    if isinstance(x, np.ndarray) or _is_cupy(x) or not hasattr(x, "__dlpack__"):
        return x
    return from_dlpack(x)


def _is_cupy(x):
    # A CUDA tensor of another framework (PyTorch's) has __cuda_array_interface__ too, but not
    # CuPy's methods: it is viewed through DLPack as a cupy.ndarray. Without CuPy imported, no
    # array can be one of its.
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(x, cupy.ndarray)


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


def torch_spelled(value):
    """A torch.dtype as its NumPy name (torch.float32 -> "float32") and a torch.device as its
    string ("cpu", "cuda:0"), so the arguments PyTorch code passes read as fastconv's; anything
    else unchanged. torch is not imported: only objects of its module are recognised."""
    if type(value).__module__ == "torch" and type(value).__name__ in ("dtype", "device"):
        return str(value).removeprefix("torch.")
    return value


def writable(x):
    """Whether x can be written in place: NumPy's writeable flag; CuPy's flags have none (its
    arrays are always writable), so reading NumPy's flag on one is an AttributeError."""
    return getattr(getattr(x, "flags", None), "writeable", True)


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
