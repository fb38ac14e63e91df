"""Pooling layers: MaxPool2d, MinPool2d, AvgPool2d, LPPool2d, MixedPool2d and the adaptive
AdaptiveAvgPool2d / AdaptiveMaxPool2d, with torch.nn's arguments, defaults and repr.

Inputs are (N, C, H, W) or unbatched (C, H, W). Max/min pooling keep the argmax/argmin from
forward for backward; the others keep the input.
"""

from .._arrays import shared_view, is_array
from .. import functional as F
from .module import Module


class _Pool2d(Module):
    """The functional op checks the input (once, in the extension); a layer only renames an
    input's error after the fact, when called."""

    def _call(self, x):
        x = shared_view(x)
        try:
            return self.forward(x)
        except (TypeError, ValueError, AttributeError):
            self._refuse(x)
            raise

    def _refuse(self, x):
        """Raises the layer's own error for an input that no pooling layer takes."""
        if not is_array(x):
            raise TypeError(f"{self._name()} expected a numpy.ndarray or cupy.ndarray input, "
                            f"got {type(x).__module__}.{type(x).__qualname__}") from None
        if x.ndim not in (3, 4):
            raise ValueError(f"{self._name()} expected 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                             f"got {x.shape}") from None


class _ExtremePool2d(_Pool2d):
    """MaxPool2d and MinPool2d: torch.nn.MaxPool2d's arguments."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")

    def _args(self):
        return self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode

    def forward(self, x):
        self._input = x
        # The argmax is kept for backward in training; in eval mode it is computed only when
        # asked for (backward then recomputes it from the input).
        if self.training or self.return_indices:
            out, self._indices = self._forward(x, *self._args(), return_indices=True)
        else:
            out, self._indices = self._forward(x, *self._args()), None
        return (out, self._indices) if self.return_indices else out

    def backward(self, dout):
        return self._backward(dout, self._input, *self._args(), indices=self._indices)


class MaxPool2d(_ExtremePool2d):
    _forward = staticmethod(F.max_pool2d)
    _backward = staticmethod(F.max_pool2d_backward)


class MinPool2d(_ExtremePool2d):
    """Min pooling (-MaxPool2d(-x)) with MaxPool2d's arguments; not in torch."""
    _forward = staticmethod(F.min_pool2d)
    _backward = staticmethod(F.min_pool2d_backward)


class AvgPool2d(_Pool2d):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def _args(self):
        return (self.kernel_size, self.stride, self.padding, self.ceil_mode,
                self.count_include_pad, self.divisor_override)

    def forward(self, x):
        self._input = x
        return F.avg_pool2d(x, *self._args())

    def backward(self, dout):
        return F.avg_pool2d_backward(dout, self._input, *self._args())


class LPPool2d(_Pool2d):
    """Power-average pooling: the norm_type-norm of each window (torch.nn.LPPool2d)."""

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type, self.kernel_size = norm_type, kernel_size
        self.stride, self.ceil_mode = stride, ceil_mode

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")

    def _args(self):
        return self.norm_type, self.kernel_size, self.stride, self.ceil_mode

    def forward(self, x):
        self._input = x
        return F.lp_pool2d(x, *self._args())

    def backward(self, dout):
        return F.lp_pool2d_backward(dout, self._input, *self._args())


class MixedPool2d(_Pool2d):
    """alpha * max pooling + (1 - alpha) * average pooling (count_include_pad=True); not in torch.

    alpha=None draws alpha ~ U(0, 1) at every forward (from `generator`, fastconv's global
    generator when None, see fastconv.manual_seed); the drawn value is kept in `last_alpha`
    and used by the following backward.
    """

    def __init__(self, kernel_size, stride=None, padding=0, alpha=0.5, generator=None):
        super().__init__()
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"MixedPool2d: alpha must be in [0, 1] or None, got {alpha}")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.alpha, self.generator = padding, alpha, generator
        self.last_alpha = alpha

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"alpha={self.alpha}")

    def forward(self, x):
        self._input = x
        args = (self.kernel_size, self.stride, self.padding)
        if self.alpha is None:
            out, self.last_alpha = F.mixed_pool2d(x, *args, alpha=None, generator=self.generator)
            return out
        return F.mixed_pool2d(x, *args, alpha=self.alpha)

    def backward(self, dout):
        return F.mixed_pool2d_backward(dout, self._input, self.kernel_size, self.stride,
                                       self.padding, alpha=self.last_alpha)


class AdaptiveAvgPool2d(_Pool2d):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self):
        return f"output_size={self.output_size}"

    def forward(self, x):
        self._input = x
        return F.adaptive_avg_pool2d(x, self.output_size)

    def backward(self, dout):
        return F.adaptive_avg_pool2d_backward(dout, self._input, self.output_size)


class AdaptiveMaxPool2d(_Pool2d):
    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def extra_repr(self):
        return f"output_size={self.output_size}"

    def forward(self, x):
        self._input = x
        out, self._indices = F.adaptive_max_pool2d(x, self.output_size, return_indices=True)
        return (out, self._indices) if self.return_indices else out

    def backward(self, dout):
        return F.adaptive_max_pool2d_backward(dout, self._input, self.output_size,
                                              indices=self._indices)
