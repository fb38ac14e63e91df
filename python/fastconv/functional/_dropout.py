"""Dropout: dropout and dropout2d (whole channels), and their backwards."""

import warnings

import numpy as np

from .. import _random
from .._arrays import empty, is_array, module_of
from .._loader import _C
from ._args import array_of, as_bool, as_float, contiguous, ndarray

__all__ = ["dropout", "dropout_backward", "dropout2d", "dropout2d_backward"]


def dropout(input, p=0.5, training=True, inplace=False, *, generator=None, return_mask=False):
    """Dropout, as torch.nn.functional.dropout: out = input * mask / (1 - p).

    mask is 1 with probability 1 - p, drawn by a counter-based generator from a seed taken from
    `generator` (a numpy.random.Generator; None: fastconv's, see fastconv.manual_seed), so a
    seed gives the same mask whatever the thread count. Dropped elements are input * 0, so NaN
    and Inf give NaN there, as in PyTorch. p = 1 drops everything; p = 0 or training=False
    return input unchanged, as a new array unless inplace=True (PyTorch returns input itself).
    inplace=True writes into input and returns it. return_mask=True (keyword-only, not in
    torch) returns (out, mask), mask a uint8 0/1 array of input's shape for dropout_backward.
    """
    op = "dropout"
    input = array_of(input, "input", op)
    p = as_float(p, "p", op)
    training = as_bool(training, "training", op)
    inplace = as_bool(inplace, "inplace", op)
    return_mask = as_bool(return_mask, "return_mask", op)
    gen = _random.resolve(generator, op)
    seed = _random.draw_seed(gen, op) if training and 0 < p < 1 else 0
    mask = empty(input, input.shape, dtype="uint8") if return_mask else None

    x = contiguous(input)
    out = x if inplace else empty(x, x.shape)
    _C.dropout_forward(out, mask, x, p, training, seed)
    if inplace and x is not input:
        # A strided input was processed in a contiguous copy: write the result back into it.
        module_of(input).copyto(input, x)
        out = input
    return (out, mask) if return_mask else out


def dropout_backward(grad_output, mask, p):
    """grad_output * mask / (1 - p) with the mask dropout(..., return_mask=True) returned
    (uint8 or bool; any non-zero value counts as kept); grad_output * 0 when p = 1. A forward
    with training=False was the identity: its backward is this with p = 0."""
    op = "dropout_backward"
    grad_output = ndarray(grad_output, "grad_output", op)
    mask = contiguous(mask)
    if is_array(mask) and mask.dtype == bool:
        mask = mask.view("uint8")
    dinp = empty(grad_output, grad_output.shape)
    _C.dropout_backward(dinp, grad_output, mask, as_float(p, "p", op))
    return dinp


def dropout2d(input, p=0.5, training=True, inplace=False, *, generator=None,
              return_mask=False):
    """Channel dropout, as torch.nn.functional.dropout2d: each (sample, channel) plane of
    (N, C, H, W) input is zeroed with probability p and the rest scaled by 1 / (1 - p).

    The (N, C, 1, 1) mask is dropout's (the same generator and seeds) on a plane of ones, so its
    kept entries are 1 / (1 - p) exactly as PyTorch's noise, and out = input * that. As
    PyTorch's: 3-D input is (N, C, L) (with its warning), other ranks from 2 up are dropped
    over their first two dimensions with its deprecation warning, 1-D is refused.
    return_mask=True returns (out, mask), mask a uint8 0/1 array of shape (N, C, 1, ...) for
    dropout2d_backward. training=False or p = 0 return input (a copy unless inplace=True).
    """
    op = "dropout2d"
    input = array_of(input, "input", op)
    if input.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: input must be float32 or float64, got {input.dtype}")
    if input.ndim < 2:
        raise ValueError(f"{op}: feature dropout needs at least 2 dimensions (N, C, ...), got "
                         f"shape {input.shape}")
    p = as_float(p, "p", op)
    if not 0 <= p <= 1:
        raise ValueError(f"{op}: p (the probability of a channel to be zeroed) must be in "
                         f"[0, 1], got {p}")
    if input.ndim == 3:
        warnings.warn("dropout2d: 3-D input is taken as (N, C, L), PyTorch's channel-wise 1D "
                      "dropout; use dropout1d's semantics knowingly", UserWarning, stacklevel=2)
    elif input.ndim != 4:
        warnings.warn(f"dropout2d: a {input.ndim}-D input is deprecated in PyTorch (channels "
                      "are dropped over its first two dimensions); use dropout for elementwise "
                      "dropout", UserWarning, stacklevel=2)
    plane = input.shape[:2] + (1,) * (input.ndim - 2)
    ones = module_of(input).ones(plane, dtype=input.dtype)
    scale, mask = dropout(ones, p, training, True, generator=generator, return_mask=True)
    inplace = as_bool(inplace, "inplace", op)
    with np.errstate(invalid="ignore"):  # a dropped infinity is NaN, as PyTorch's
        if inplace:
            input *= scale
            out = input
        else:
            out = input * scale
    return (out, mask) if return_mask else out


def dropout2d_backward(grad_output, mask, p):
    """grad_output * mask / (1 - p), the (N, C, 1, 1) mask dropout2d(..., return_mask=True)
    returned broadcast over each plane."""
    op = "dropout2d_backward"
    grad_output = ndarray(grad_output, "grad_output", op)
    mask = contiguous(mask)
    if not is_array(mask):
        raise TypeError(f"{op}: mask must be the uint8 or bool array dropout2d returned, got "
                        f"{type(mask).__module__}.{type(mask).__qualname__}")
    plane = grad_output.shape[:2] + (1,) * (grad_output.ndim - 2)
    if grad_output.ndim < 2 or mask.shape != plane:
        raise ValueError(f"{op}: mask must have shape (N, C, 1, ...) {plane} for grad_output "
                         f"{tuple(grad_output.shape)}, got {tuple(mask.shape)}")
    ones = module_of(grad_output).ones(mask.shape, dtype=grad_output.dtype)
    with np.errstate(invalid="ignore"):
        return grad_output * dropout_backward(ones, mask, p)
