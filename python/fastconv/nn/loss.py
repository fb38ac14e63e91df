"""Losses as Modules: CrossEntropyLoss, MSELoss, MultiMarginLoss (torch.nn's arguments).

``loss = loss_fn(input, target)`` returns a Python float for reduction "mean"/"sum" and the
per-item array for "none"; ``loss_fn.backward()`` then returns d loss / d input for that call
(for "none", d sum(loss) / d input unless a grad_output of the loss's shape is given). A class
`weight` is a buffer, so it appears in state_dict under "weight" as in torch.
"""

import numpy as np

from .._arrays import shared_view, device_of, is_array, module_of, to_device
from .. import functional as F
from ..functional._loss import _power, _reduction
from .module import Module


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        reduction = _reduction(size_average, reduce, reduction)
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'none', 'mean' or 'sum', "
                             f"got {reduction!r}")
        self.reduction = reduction

    def _set_weight(self, weight):
        if weight is None:
            self.weight = None
            return
        weight = shared_view(weight)
        # A CuPy weight stays on the GPU (NumPy cannot take one implicitly); anything else is
        # read into NumPy. Either way a copy of at least float32, as torch's float weights.
        xp = module_of(weight) if is_array(weight) else np
        weight = xp.array(weight, dtype=np.result_type(xp.asarray(weight).dtype, np.float32))
        if weight.ndim != 1:
            raise ValueError(f"{type(self).__name__}: weight must be 1-D (C,), got shape "
                             f"{weight.shape}")
        self.register_buffer("weight", weight)

    def _weight_for(self, input):
        """The class weights in the input's dtype and on its device (the kernels take one
        dtype and one device throughout)."""
        if self.weight is None or not is_array(input):
            return self.weight
        return to_device(self.weight, device_of(input)).astype(input.dtype, copy=False)

    def _call(self, input, target):
        return self.forward(shared_view(input), shared_view(target))

    def forward(self, input, target):
        self._input, self._target = input, target
        loss = self._loss(input, target)
        return loss if self.reduction == "none" else float(loss)

    def backward(self, grad_output=None):
        if not hasattr(self, "_input"):
            raise RuntimeError(f"{self._name()}.backward: call the loss on (input, target) first")
        if grad_output is None:
            grad_output = 1.0 if self.reduction != "none" else module_of(self._input).ones(
                self._loss_shape, dtype=self._input.dtype)
        return self._grad(grad_output)


class CrossEntropyLoss(_Loss):
    """Log-softmax + negative log-likelihood over logits (N, C) / (N, C, d1, ...) / (C,) and
    class-index targets (int64) or class probabilities; see fastconv.functional.cross_entropy."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(size_average, reduce, reduction)
        self._set_weight(weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def _args(self, input):
        return (self._weight_for(input), self.ignore_index, self.reduction, self.label_smoothing)

    def _loss(self, input, target):
        w, ignore, reduction, smoothing = self._args(input)
        loss = F.cross_entropy(input, target, w, ignore_index=ignore, reduction=reduction,
                               label_smoothing=smoothing)
        self._loss_shape = loss.shape
        return loss

    def _grad(self, grad_output):
        return F.cross_entropy_backward(grad_output, self._input, self._target,
                                        *self._args(self._input))


class MSELoss(_Loss):
    """Mean squared error between input and a target of the same shape."""

    def _loss(self, input, target):
        loss = F.mse_loss(input, target, reduction=self.reduction)
        self._loss_shape = loss.shape
        return loss

    def _grad(self, grad_output):
        return F.mse_loss_backward(grad_output, self._input, self._target, self.reduction)


class MultiMarginLoss(_Loss):
    """Multi-class hinge loss over (N, C) or (C,) scores and int64 class targets."""

    def __init__(self, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                 reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self._set_weight(weight)
        self.p, self.margin = _power(p, "MultiMarginLoss"), margin

    def _loss(self, input, target):
        loss = F.multi_margin_loss(input, target, self.p, self.margin, self._weight_for(input),
                                   reduction=self.reduction)
        self._loss_shape = loss.shape
        return loss

    def _grad(self, grad_output):
        return F.multi_margin_loss_backward(grad_output, self._input, self._target, self.p,
                                            self.margin, self._weight_for(self._input),
                                            self.reduction)
