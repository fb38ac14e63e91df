"""Normalisation layers: BatchNorm1d, BatchNorm2d and LocalResponseNorm (torch.nn's arguments,
initialisation, buffers and state_dict keys).

Batch norm in train() normalises with the batch statistics and updates the running ones in
place (the kernel does it, momentum as torch; momentum=None gives the cumulative average
1/num_batches_tracked); in eval() it uses the running statistics. Backward uses the mean and
inverse std that forward saved, so it matches the forward whatever happened in between.
"""

import numpy as np

from .._arrays import is_array
from .. import functional as F
from .module import Module, counted, layer_device, layer_dtype
from .parameter import Parameter, accumulating_grads


class _BatchNorm(Module):
    """device ('cpu', 'cuda') and dtype (float32, float64): None is 'cpu' and float32, as
    torch's."""

    _dims = ()  # accepted input ranks
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        name = type(self).__name__
        device, dtype = layer_device(device, name), layer_dtype(dtype, name)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = self.bias = None
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            # bias=False (keyword-only, new in torch 2.x) keeps the scale but drops the shift.
            self.bias = Parameter(np.zeros(num_features, dtype=dtype)) if bias else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            # As torch: no buffers (and no state_dict entries); batch statistics always.
            self.running_mean = self.running_var = self.num_batches_tracked = None
        if device != "cpu":
            self._move(device)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def _step(self, x):
        """Checks the input and, in training, counts the batch; returns the momentum for it
        (1 / num_batches_tracked, the cumulative average, when momentum is None)."""
        if not is_array(x) or x.ndim not in self._dims:
            raise ValueError(f"{self._name()} expected {self._layout} input, got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{self._name()} expected input with "
                             f"{counted(self.num_features, 'channel')}, got {x.shape}")
        momentum = self.momentum
        if self.training and self.track_running_stats:
            # In place: the 0-d buffer must stay the registered array.
            self.num_batches_tracked[...] += 1
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        return momentum

    def forward(self, x):
        momentum = self._step(x)
        # Batch statistics in training, and always when there are no running ones (torch); the
        # kernel updates the running statistics exactly when it gets them in training mode.
        self._training = self.training or not self.track_running_stats
        out, self._mean, self._invstd = F.batch_norm(
            x, self.running_mean, self.running_var,
            None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data, training=self._training,
            momentum=0.0 if momentum is None else momentum, eps=self.eps, return_stats=True)
        self._input = x
        return out

    def backward(self, dout):
        w = self.weight
        gw, gb = accumulating_grads(w, self.bias)
        dx, _, _ = F.batch_norm_backward(
            dout, self._input, None if w is None else w.data, self._mean, self._invstd,
            training=self._training, output_mask=(True, gw is not None, gb is not None),
            grad_weight=gw, grad_bias=gb)
        return dx


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) input."""
    _dims = (2, 3)
    _layout = "2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) input, per channel."""
    _dims = (4,)
    _layout = "4-D (N, C, H, W)"


class LocalResponseNorm(Module):
    """Normalisation across `size` neighbouring channels (AlexNet), torch.nn.LocalResponseNorm."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def forward(self, x):
        try:
            out = F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        except (TypeError, ValueError, AttributeError):
            # The extension checked the input; the layer's message names the layer.
            if not is_array(x) or x.ndim < 3:
                raise ValueError(f"{self._name()} expected input of at least 3 dimensions "
                                 f"(N, C, *), got {getattr(x, 'shape', type(x).__name__)}"
                                 ) from None
            raise
        self._input = x
        return out

    def backward(self, dout):
        return F.local_response_norm_backward(dout, self._input, self.size, self.alpha,
                                              self.beta, self.k)
