"""Argument normalisation shared by the functional ops: arrays, ints, (h, w) pairs, padding.

Only Python-level syntax is checked here; shapes, dtypes and values are checked once, by the
extension, which names the argument in its message.
"""

import numbers

import numpy as np

from .._arrays import c_contiguous, is_array, shared_view


def contiguous(x):
    """x as a C-contiguous array (NumPy or CuPy; a DLPack tensor is viewed as one), copied only
    when it is not one (0-d stays 0-d); non-arrays pass through for the extension to reject by
    name."""
    if type(x) is np.ndarray and x.flags.c_contiguous:  # the common case, in one test
        return x
    x = shared_view(x)
    return c_contiguous(x) if is_array(x) else x


def ndarray(x, name, op):
    """x as a C-contiguous NumPy or CuPy array; dtype and shape are checked by the extension."""
    if type(x) is np.ndarray and x.flags.c_contiguous:  # as contiguous's
        return x
    return c_contiguous(array_of(x, name, op))


def array_of(x, name, op):
    """x as a NumPy or CuPy array as it is (a DLPack tensor viewed, nothing copied), or
    TypeError naming it."""
    x = shared_view(x)
    if not is_array(x):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray or a cupy.ndarray, got "
                        f"{type(x).__module__}.{type(x).__qualname__}")
    return x


def as_array(x, ndim, layout, name, op):
    """x as a C-contiguous ndarray of `ndim` dimensions; dtypes are checked by the kernel."""
    x = ndarray(x, name, op)
    if x.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {x.shape}")
    return x


def as_float(value, name, op):
    if type(value) is float:  # the common case, without the ABC check (a third of a call's time)
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


def as_bool(value, name, op):
    """A flag: only True or False (NumPy's too), as PyTorch requires; bool(value) would quietly
    read "False", 0.0 or None as a setting."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}")
    return bool(value)


def as_mask(output_mask, op):
    """output_mask of a backward: which of (input, weight, bias) gradients to compute."""
    if type(output_mask) is tuple and len(output_mask) == 3 and all(
            type(m) is bool for m in output_mask):  # the common case, without the conversion
        return output_mask
    if (not isinstance(output_mask, (tuple, list)) or len(output_mask) != 3
            or not all(isinstance(m, (bool, np.bool_)) for m in output_mask)):
        raise TypeError(f"{op}: output_mask must be a sequence of 3 bools, got {output_mask!r}")
    return tuple(bool(m) for m in output_mask)


_INT64 = (-2**63, 2**63 - 1)


def as_int(value, name, op):
    """value as a Python int that fits the extension's int64 arguments."""
    if type(value) is int and _INT64[0] <= value <= _INT64[1]:  # as as_float's
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    value = int(value)
    # Beyond int64 pybind11 would refuse the call with a TypeError that names no argument.
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"{op}: {name} must fit in 64 bits, got {value}")
    return value


def as_pair(value, name, op, single=False):
    """An int or a pair of ints -> (h, w); with single, also a sequence of one int, as torch's
    convolution and max/avg pooling take it (and so, here, LP and mixed pooling, which share
    their window arguments; torch's unfold, fold and adaptive pooling do not, nor do ours)."""
    if isinstance(value, (tuple, list)):
        if single and len(value) == 1:
            value = (value[0], value[0])
        if len(value) != 2:
            what = "an int or one or two ints" if single else "an int or a pair of ints"
            raise ValueError(f"{op}: {name} must be {what}, got {value!r}")
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
    return "explicit", as_pair(value, "padding", op, single=True)
