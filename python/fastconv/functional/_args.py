"""Argument normalisation shared by the functional ops: arrays, ints, (h, w) pairs, padding.

Only Python-level syntax is checked here; shapes, dtypes and values are checked once, by the
extension, which names the argument in its message.
"""

import numbers

import numpy as np


def contiguous(x):
    return np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x


def as_array(x, ndim, layout, name, op):
    """x as a C-contiguous ndarray of `ndim` dimensions; dtypes are checked by the kernel."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(x).__module__}."
                        f"{type(x).__qualname__}")
    if x.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {x.shape}")
    return np.ascontiguousarray(x)


def as_int(value, name, op):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    return int(value)


def as_pair(value, name, op):
    """An int or a pair of ints -> (h, w)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
        return (as_int(value[0], name, op), as_int(value[1], name, op))
    try:
        v = as_int(value, name, op)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    return (v, v)


def conv_padding(value, op):
    """padding -> (mode, (h, w)) with mode 'explicit', 'valid' or 'same'."""
    if isinstance(value, str):
        if value not in ("valid", "same"):
            raise ValueError(
                f"{op}: padding must be 'valid', 'same', an int or a pair of ints, got {value!r}")
        return value, (0, 0)
    return "explicit", as_pair(value, "padding", op)
