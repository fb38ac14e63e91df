"""Dropout (torch.nn.Dropout): in train() zeroes each element with probability p and scales
the rest by 1 / (1 - p); in eval() it is the identity. The mask drawn in forward is kept for
backward. Each mask's seed comes from `generator` (a numpy.random.Generator, settable later as
the `generator` attribute), or from fastconv's global generator (fastconv.manual_seed) when it
is None; give each thread's model its own for reproducible concurrent training."""

from .._arrays import is_array
from .. import functional as F
from .module import Module


class Dropout(Module):
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
        out, self._mask = F.dropout(x, self.p, True, self.inplace, generator=self.generator,
                                    return_mask=True)
        return out

    def backward(self, dout):
        if self._mask is None:  # eval: the forward was the identity
            return dout
        return F.dropout_backward(dout, self._mask, self.p)
