"""Linear: torch.nn.Linear's arguments, default initialisation and state_dict keys.

It initialises as torch does: kaiming_uniform_(a=sqrt(5)) for the weight, which is
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
"""

import math

import numpy as np

from .._arrays import is_array
from .. import functional as F
from . import init
from .module import Module, layer_device, layer_dtype
from .parameter import Parameter, accumulating_grads


class Linear(Module):
    """y = x · weight^T + bias over (*, in_features) input; weight (out, in), bias (out,).
    device ('cpu', 'cuda') and dtype (float32, float64): None is 'cpu' and float32, as torch's."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None,
                 generator=None):
        super().__init__()
        device, dtype = layer_device(device, "Linear"), layer_dtype(dtype, "Linear")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        self.bias = init.default_bias(out_features, in_features, dtype, generator) if bias else None
        if device != "cpu":
            self._move(device)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")

    def forward(self, x):
        try:
            out = F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)
        except (TypeError, ValueError, AttributeError):
            # The extension checked the input; the layer's message names the layer.
            if not is_array(x) or x.ndim < 1 or x.shape[-1] != self.in_features:
                raise ValueError(f"{self._name()} expected input (*, {self.in_features}), got "
                                 f"{getattr(x, 'shape', type(x).__name__)}") from None
            raise
        self._input = x
        return out

    def backward(self, dout):
        gw, gb = accumulating_grads(self.weight, self.bias)
        dx, _, _ = F.linear_backward(dout, self._input, self.weight.data,
                                     output_mask=(True, gw is not None, gb is not None),
                                     grad_weight=gw, grad_bias=gb)
        return dx

    def backward_params(self, dout):
        gw, gb = accumulating_grads(self.weight, self.bias)
        if gw is None and gb is None:
            return
        F.linear_backward(dout, self._input, self.weight.data,
                          output_mask=(False, gw is not None, gb is not None), grad_weight=gw,
                          grad_bias=gb)
