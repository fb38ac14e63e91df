"""Activation layers: ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softplus, GELU, SiLU, Mish,
Hardswish, Hardsigmoid, Hardtanh, ReLU6, SELU, CELU, Softmax, LogSoftmax.

Elementwise layers take arrays of any shape. Each forward keeps the one array its backward
reads: the input, or the output where the gradient is a function of it (Sigmoid, Tanh,
Softmax, LogSoftmax).
"""

import numbers
import warnings

from .._arrays import shared_view, is_array
from .. import functional as F
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softplus", "GELU", "SiLU", "Mish",
           "Hardswish", "Hardsigmoid", "Hardtanh", "ReLU6", "SELU", "CELU", "Softmax",
           "LogSoftmax"]


def _inplace_repr(inplace):
    return ", inplace=True" if inplace else ""


class _Elementwise(Module):
    """The functional op checks the input (once, in the extension); a layer only renames a
    non-array's error after the fact, when called."""

    def _call(self, x):
        x = shared_view(x)
        try:
            return self.forward(x)
        except (TypeError, AttributeError):
            if not is_array(x):
                raise TypeError(f"{self._name()} expected a numpy.ndarray or cupy.ndarray "
                                f"input, got {type(x).__module__}.{type(x).__qualname__}"
                                ) from None
            raise


class ReLU(_Elementwise):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""

    def forward(self, x):
        # With inplace=True, x ends up holding the output, which is positive exactly where the
        # input was: all that relu_backward reads.
        self._input = x
        return F.relu(x, inplace=self.inplace)

    def backward(self, dout):
        return F.relu_backward(dout, self._input)


class LeakyReLU(_Elementwise):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        if inplace and negative_slope < 0:
            # The sign of the output no longer tells where the input was positive.
            raise ValueError("LeakyReLU: inplace=True needs negative_slope >= 0, got "
                             f"{negative_slope}")
        self.negative_slope, self.inplace = negative_slope, inplace

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}{_inplace_repr(self.inplace)}"

    def forward(self, x):
        self._input = x  # holds the output when inplace: positive where the input was, as ReLU
        return F.leaky_relu(x, self.negative_slope, inplace=self.inplace)

    def backward(self, dout):
        return F.leaky_relu_backward(dout, self._input, self.negative_slope)


class Sigmoid(_Elementwise):
    def forward(self, x):
        self._output = F.sigmoid(x)
        return self._output

    def backward(self, dout):
        return F.sigmoid_backward(dout, output=self._output)


class Tanh(_Elementwise):
    def forward(self, x):
        self._output = F.tanh(x)
        return self._output

    def backward(self, dout):
        return F.tanh_backward(dout, output=self._output)


class Softplus(_Elementwise):
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"

    def forward(self, x):
        self._input = x
        return F.softplus(x, self.beta, self.threshold)

    def backward(self, dout):
        return F.softplus_backward(dout, self._input, self.beta, self.threshold)


class GELU(_Elementwise):
    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def extra_repr(self):
        return f"approximate={self.approximate!r}"

    def forward(self, x):
        self._input = x
        return F.gelu(x, self.approximate)

    def backward(self, dout):
        return F.gelu_backward(dout, self._input, self.approximate)


class _FromInput(_Elementwise):
    """A layer whose gradient is a function of its input, `_op`(x, *scalars, inplace=) and
    `_grad`(dout, x, *scalars), the scalars the attributes named in `_params`; in place, the
    input is copied before it is overwritten."""

    _params = ()

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def _scalars(self):
        return tuple(getattr(self, p) for p in self._params)

    def extra_repr(self):
        return ", ".join([f"{p}={getattr(self, p)}" for p in self._params]
                         + (["inplace=True"] if self.inplace else []))

    def forward(self, x):
        self._input = x.copy() if self.inplace else x
        return type(self)._op(x, *self._scalars(), inplace=self.inplace)

    def backward(self, dout):
        return type(self)._grad(dout, self._input, *self._scalars())


class ELU(_FromInput):
    _op, _grad, _params = F.elu, F.elu_backward, ("alpha",)

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__(inplace)
        self.alpha = alpha


class SiLU(_FromInput):
    _op, _grad = F.silu, F.silu_backward


class Mish(_FromInput):
    _op, _grad = F.mish, F.mish_backward


class Hardswish(_FromInput):
    _op, _grad = F.hardswish, F.hardswish_backward

    def extra_repr(self):
        return ""  # torch's repr leaves inplace out for these two


class Hardsigmoid(Hardswish):
    _op, _grad = F.hardsigmoid, F.hardsigmoid_backward


class SELU(_FromInput):
    _op, _grad = F.selu, F.selu_backward


class CELU(_FromInput):
    _op, _grad, _params = F.celu, F.celu_backward, ("alpha",)

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__(inplace)
        if alpha == 0:
            raise ValueError("CELU: alpha must be nonzero (it divides the input), got 0")
        self.alpha = alpha


class Hardtanh(_FromInput):
    _op, _grad, _params = F.hardtanh, F.hardtanh_backward, ("min_val", "max_val")

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__(inplace)
        if not max_val > min_val:  # torch's layer asserts a non-empty range
            raise ValueError(f"Hardtanh: max_val must be greater than min_val, got "
                             f"min_val={min_val} and max_val={max_val}")
        self.min_val, self.max_val = min_val, max_val


class ReLU6(_FromInput):
    """hardtanh(x, 0, 6); min_val and max_val read 0.0 and 6.0, as torch's."""
    _op, _grad = F.relu6, F.relu6_backward
    min_val, max_val = 0.0, 6.0


class _SoftmaxBase(_Elementwise):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def extra_repr(self):
        return f"dim={self.dim}"

    def _resolve_dim(self, x):
        dim = self.dim
        if dim is None:
            # torch.nn's legacy implicit choice, with its deprecation warning.
            dim = 0 if x.ndim in (0, 1, 3) else 1
            warnings.warn(f"Implicit dimension choice for {type(self).__name__.lower()} has been "
                          f"deprecated. Change the call to include dim=X as an argument.",
                          UserWarning, stacklevel=3)
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"{self._name()}: dim must be an int, got {dim!r}")
        return dim

    def forward(self, x):
        self._dim = dim = self._resolve_dim(x)
        try:
            self._output = self._op(x, dim=dim)
        except ValueError:
            # The extension checked dim; the layer's message names the layer.
            ndim = max(x.ndim, 1)
            if not -ndim <= dim < ndim:
                raise ValueError(f"{self._name()}: dim {dim} is out of range for input of "
                                 f"shape {x.shape}") from None
            raise
        return self._output


class Softmax(_SoftmaxBase):
    _op = staticmethod(F.softmax)

    def backward(self, dout):
        return F.softmax_backward(dout, self._output, self._dim)


class LogSoftmax(_SoftmaxBase):
    _op = staticmethod(F.log_softmax)

    def backward(self, dout):
        return F.log_softmax_backward(dout, self._output, self._dim)
