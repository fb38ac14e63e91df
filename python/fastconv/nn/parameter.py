"""Parameter: a trainable array and the gradient that backward passes accumulate into it."""

import numpy as np

from .._arrays import c_contiguous, device_of, is_array, zeros


class Parameter:
    """A trainable array.

    ``data`` holds the values (float32 or float64, C-contiguous; a NumPy array, or a CuPy
    array after ``Module.to("cuda")``); ``grad`` is None until a
    backward pass accumulates into it (layers add, optimizers read, ``zero_grad`` clears);
    ``requires_grad=False`` freezes it: layers skip its gradient work and optimizers skip it.
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad=True):
        if not is_array(data):
            raise TypeError(f"Parameter: data must be a numpy.ndarray or cupy.ndarray, got "
                            f"{type(data).__name__}")
        if data.dtype not in (np.float32, np.float64):
            raise TypeError(f"Parameter: data must be float32 or float64, got {data.dtype}")
        self.data = c_contiguous(data)
        self.grad = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        """'cpu' or 'cuda'."""
        return device_of(self.data)

    @property
    def size(self):
        return self.data.size

    def __repr__(self):
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"


def accumulating_grads(*params):
    """For each parameter (None allowed): its .grad array, created as zeros when missing, for a
    backward kernel to accumulate into; None when the parameter is absent or frozen."""
    grads = []
    for p in params:
        if p is None or not p.requires_grad:
            grads.append(None)
            continue
        if p.grad is None:
            p.grad = zeros(p.data, p.data.shape)
        grads.append(p.grad)
    return grads
