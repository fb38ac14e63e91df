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


def _class_indices(target, input):
    """torch takes int64 (Long) or uint8 (Byte) class indices; the kernels read int64. For an
    unbatched input (C,) torch also takes a target of shape (1,), as the 0-d one."""
    target = contiguous(target)
    if not is_array(target) or getattr(target, "dtype", None) not in (np.int64, np.uint8):
        return target
    if target.shape == (1,) and getattr(input, "ndim", None) == 1:
        target = target.reshape(())
    return target.astype(np.int64) if target.dtype == np.uint8 else target


def _grad_output(grad_output, input):
    """A Python number becomes a 0-d array of the input's dtype; arrays are checked as given."""
    if isinstance(grad_output, numbers.Real) and is_array(input):
        return module_of(input).asarray(grad_output, dtype=getattr(input, "dtype", None))
    return contiguous(grad_output)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross entropy of logits, as torch.nn.functional.cross_entropy (fused log-softmax + NLL).

    input (C,), (N, C) or (N, C, d1, ...) float32/float64 logits. target is either class indices
    (int64, or uint8 converted to int64; shape () or (1,) for input (C,), (N,) or (N, d1, ...);
    the loss of an input (C,) is 0-d for every reduction), in [0, C) or equal to
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
    target = _class_indices(target, input)
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
    target = _class_indices(target, input)
    grad_output = _grad_output(grad_output, input)
    return _C.cross_entropy_backward(empty, grad_output, input, target, weight,
                                     as_int(ignore_index, "ignore_index", op),
                                     as_float(label_smoothing, "label_smoothing", op),
                                     _reduction_name(reduction, op))


def _mse_weight(weight, input, reduction, op):
    """mse_loss's weight: an array of the input's shape and dtype (torch: "Weights and input
    must have the same size"); the reduction, which the extension checks on the unweighted
    path, is checked here."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    weight = contiguous(weight)
    if not is_array(weight):
        raise TypeError(f"{op}: weight must be an array or None, got {type(weight).__name__}")
    if weight.shape != input.shape:
        raise ValueError(f"{op}: weight must have the input's shape {tuple(input.shape)}, "
                         f"got {tuple(weight.shape)}")
    if weight.dtype != input.dtype:
        raise TypeError(f"{op}: weight has dtype {weight.dtype} but input has {input.dtype}")
    return weight


def _weighted(loss, weight, reduction):
    """torch's weighted mse: the squared errors times weight, summed, or divided by the sum of
    the weights for "mean"."""
    loss *= weight
    if reduction == "none":
        return loss
    xp = module_of(loss)
    total = xp.asarray(loss.sum(), dtype=loss.dtype)
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 is NaN, as torch's
        return xp.asarray(total / weight.sum(), dtype=loss.dtype)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error, as torch.nn.functional.mse_loss.

    input and target must have the same shape and dtype: unlike torch (which warns and
    broadcasts), a different target shape is a ValueError. weight (the input's shape and dtype)
    scales each squared error as torch's: "sum" adds the products and "mean" divides that sum
    by the sum of the weights.
    """
    op = "mse_loss"
    reduction = _reduction_name(_reduction(size_average, reduce, reduction), op)
    input, target = contiguous(input), contiguous(target)
    if weight is None:
        return _C.mse_loss_forward(empty, input, target, reduction)
    weight = _mse_weight(weight, input, reduction, op)
    return _weighted(_C.mse_loss_forward(empty, input, target, "none"), weight, reduction)


def mse_loss_backward(grad_output, input, target, reduction="mean", weight=None):
    """Gradient of mse_loss with respect to input: 2 (input - target) grad_output (/ numel for
    "mean"), times weight (and / sum(weight) for "mean" instead) when given. The gradient with
    respect to target is its negative."""
    op = "mse_loss_backward"
    input, target = contiguous(input), contiguous(target)
    grad_output = _grad_output(grad_output, input)
    reduction = _reduction_name(reduction, op)
    if weight is None:
        return _C.mse_loss_backward(empty, grad_output, input, target, reduction)
    weight = _mse_weight(weight, input, reduction, op)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            grad_output = module_of(input).asarray(grad_output / weight.sum(), dtype=input.dtype)
    grad = _C.mse_loss_backward(empty, grad_output, input, target,
                                "none" if reduction == "none" else "sum")
    with np.errstate(invalid="ignore"):  # inf * 0 (all weights 0 under "mean") is NaN, as torch
        grad *= weight
    return grad


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
