"""Dropout and Dropout2d (torch.nn's): in train() zero each element (each channel's plane) with
probability p and scale the rest by 1 / (1 - p); in eval() they are the identity. The mask drawn in forward is kept for
backward. Each mask's seed comes from `generator` (a numpy.random.Generator, settable later as
the `generator` attribute), or from fastconv's global generator (fastconv.manual_seed) when it
is None; give each thread's model its own for reproducible concurrent training."""

from .._arrays import is_array
from .. import functional as F
from .module import Module


class Dropout(Module):
    _op, _grad = staticmethod(F.dropout), staticmethod(F.dropout_backward)

    def __init__(self, p=0.5, inplace=False, generator=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace, self.generator = p, inplace, generator

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"

    def forward(self, x):
        if not is_array(x):
            raise TypeError(f"{self._name()} expected a numpy.ndarray or cupy.ndarray "
                            f"input, got {type(x).__module__}.{type(x).__qualname__}")
        self._mask = None
        if not self.training:
            return x
        out, self._mask = self._op(x, self.p, True, self.inplace, generator=self.generator,
                                   return_mask=True)
        return out

    def backward(self, dout):
        if self._mask is None:  # eval: the forward was the identity
            return dout
        return self._grad(dout, self._mask, self.p)


class Dropout2d(Dropout):
    """Whole channels dropped (F.dropout2d): (N, C, H, W) input, torch.nn.Dropout2d."""

    _op, _grad = staticmethod(F.dropout2d), staticmethod(F.dropout2d_backward)
