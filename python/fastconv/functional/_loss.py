"""Losses: cross_entropy, mse_loss, multi_margin_loss and their backwards.

Each loss returns a NumPy array of the input's dtype: 0-d for reduction "mean"/"sum", the
per-element loss for "none", with torch.nn.functional's shapes. A backward takes the upstream
gradient first (a scalar or 0-d array for "mean"/"sum", the loss's shape for "none") and the
forward's arguments, and returns the gradient with respect to `input`; nothing needs saving
between the two (the softmax is recomputed).
"""

import numbers
import warnings

import numpy as np

from .._arrays import empty, is_array, module_of
from .._loader import _C
from ._args import as_float, as_int, contiguous

__all__ = ["cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward",
           "multi_margin_loss", "multi_margin_loss_backward"]


def _reduction(size_average, reduce, reduction):
    """torch's mapping of the deprecated size_average/reduce flags, with its warning."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "none" if not reduce else "mean" if size_average else "sum"
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{ret}' instead.", UserWarning, stacklevel=3)
    return ret


def _reduction_name(reduction, op):
    """reduction as a str for the extension, which checks its value (pybind11 would refuse a
    non-str with a TypeError naming no argument)."""
    if not isinstance(reduction, str):
        raise TypeError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return reduction


def _class_indices(target):
    """torch takes int64 (Long) or uint8 (Byte) class indices; the kernels read int64."""
    target = contiguous(target)
    if is_array(target) and getattr(target, "dtype", None) == np.uint8:
        return target.astype(np.int64)
    return target


def _grad_output(grad_output, input):
    """A Python number becomes a 0-d array of the input's dtype; arrays are checked as given."""
    if isinstance(grad_output, numbers.Real) and is_array(input):
        return module_of(input).asarray(grad_output, dtype=getattr(input, "dtype", None))
    return contiguous(grad_output)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross entropy of logits, as torch.nn.functional.cross_entropy (fused log-softmax + NLL).

    input (C,), (N, C) or (N, C, d1, ...) float32/float64 logits. target is either class indices
    (int64, or uint8 converted to int64; shape () , (N,) or (N, d1, ...)), in [0, C) or equal to
    ignore_index, or class probabilities of the input's shape and dtype (ignore_index must then
    be negative: torch refuses one that names a class). weight (C,) rescales
    each class. "mean" divides by the summed weights of the non-ignored targets (NaN when every
    target is ignored); with probabilities, by the number of items. label_smoothing in [0, 1]
    mixes in the uniform distribution exactly as torch does. size_average/reduce map to a
    reduction as in torch (with its deprecation warning).
    """
    op = "cross_entropy"
    reduction = _reduction_name(_reduction(size_average, reduce, reduction), op)
    input, weight = contiguous(input), contiguous(weight)
    target = _class_indices(target)
    return _C.cross_entropy_forward(empty, input, target, weight,
                                    as_int(ignore_index, "ignore_index", op),
                                    as_float(label_smoothing, "label_smoothing", op), reduction)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100,
                           reduction="mean", label_smoothing=0.0):
    """Gradient of cross_entropy with respect to input (the logits), same shape as input.

    grad_output is a scalar (or 0-d array) for "mean"/"sum" and the loss's shape for "none".
    With class-probability targets only the input gradient is computed, not the target's.
    """
    op = "cross_entropy_backward"
    input, weight = contiguous(input), contiguous(weight)
    target = _class_indices(target)
    grad_output = _grad_output(grad_output, input)
    return _C.cross_entropy_backward(empty, grad_output, input, target, weight,
                                     as_int(ignore_index, "ignore_index", op),
                                     as_float(label_smoothing, "label_smoothing", op),
                                     _reduction_name(reduction, op))


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean squared error, as torch.nn.functional.mse_loss.

    input and target must have the same shape and dtype: unlike torch (which warns and
    broadcasts), a different target shape is a ValueError.
    """
    reduction = _reduction_name(_reduction(size_average, reduce, reduction), "mse_loss")
    input, target = contiguous(input), contiguous(target)
    return _C.mse_loss_forward(empty, input, target, reduction)


def mse_loss_backward(grad_output, input, target, reduction="mean"):
    """Gradient of mse_loss with respect to input: 2 (input - target) grad_output (/ numel for
    "mean"). The gradient with respect to target is its negative."""
    input, target = contiguous(input), contiguous(target)
    grad_output = _grad_output(grad_output, input)
    return _C.mse_loss_backward(empty, grad_output, input, target,
                                _reduction_name(reduction, "mse_loss_backward"))


def _power(p, op):
    """multi_margin_loss's p: 1 or 2, as an int or a float equal to one (torch takes 2.0)."""
    if isinstance(p, numbers.Real) and not isinstance(p, bool):
        if p not in (1, 2):
            raise ValueError(f"{op}: p must be 1 or 2, got {p!r}")
        return int(p)
    return as_int(p, "p", op)  # a TypeError naming p


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction="mean"):
    """Multi-class hinge loss, as torch.nn.functional.multi_margin_loss.

    input (C,) or (N, C); target int64 class indices with one element per row (shape (N,), or
    () / (1,) for a single row). loss(x, y) = sum_{i != y} weight[y] max(0, margin - x[y] +
    x[i])^p / C, p in {1, 2}; "mean" averages over the rows (NaN for no rows).
    """
    op = "multi_margin_loss"
    reduction = _reduction_name(_reduction(size_average, reduce, reduction), op)
    input, weight = contiguous(input), contiguous(weight)
    target = contiguous(target)
    return _C.multi_margin_loss_forward(empty, input, target, _power(p, op),
                                        as_float(margin, "margin", op), weight, reduction)


def multi_margin_loss_backward(grad_output, input, target, p=1, margin=1.0, weight=None,
                               reduction="mean"):
    """Gradient of multi_margin_loss with respect to input, same shape as input; the hinge's
    gradient at exactly margin - x[y] + x[i] == 0 is taken as 0, as torch does."""
    op = "multi_margin_loss_backward"
    input, weight = contiguous(input), contiguous(weight)
    target = contiguous(target)
    grad_output = _grad_output(grad_output, input)
    return _C.multi_margin_loss_backward(empty, grad_output, input, target, _power(p, op),
                                         as_float(margin, "margin", op), weight,
                                         _reduction_name(reduction, op))
