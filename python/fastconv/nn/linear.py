"""Dense layers: Linear and ConvTranspose2d (the functional ops of functional/_dense.py), with
torch.nn's arguments, default initialisation and state_dict keys.

Both initialise as torch does: kaiming_uniform_(a=sqrt(5)) for the weight, which is
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
"""

import math

import numpy as np

from .. import functional as F
from . import init
from .module import Module
from .parameter import Parameter


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _accumulating_grads(weight, bias):
    """(need_weight, need_bias), allocating zeroed .grad arrays the kernels accumulate into."""
    need_w = weight.requires_grad
    need_b = bias is not None and bias.requires_grad
    if need_w and weight.grad is None:
        weight.grad = np.zeros_like(weight.data)
    if need_b and bias.grad is None:
        bias.grad = np.zeros_like(bias.data)
    return need_w, need_b


def _init_bias(shape, fan_in, dtype, generator):
    bias = Parameter(np.empty(shape, dtype=dtype))
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    init.uniform_(bias, -bound, bound, generator=generator)
    return bias


class Linear(Module):
    """y = x · weight^T + bias over (*, in_features) input; weight (out, in), bias (out,)."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, generator=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        self.bias = _init_bias(out_features, in_features, dtype, generator) if bias else None

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self._name()} expected input (*, {self.in_features}), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        self._input = x
        return F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)

    def backward(self, dout):
        w, b = self.weight, self.bias
        need_w, need_b = _accumulating_grads(w, b)
        dx, _, _ = F.linear_backward(dout, self._input, w.data,
                                     output_mask=(True, need_w, need_b),
                                     grad_weight=w.grad if need_w else None,
                                     grad_bias=b.grad if need_b else None)
        return dx


class ConvTranspose2d(Module):
    """2-D transposed convolution over (N, C_in, H, W) input; weight (in, out/groups, kH, kW),
    bias (out,), as torch.nn.ConvTranspose2d (forward takes no output_size)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float32, generator=None):
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d: padding_mode {padding_mode!r} is not supported; "
                             "only 'zeros'")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"ConvTranspose2d: groups={groups} must divide "
                             f"in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.output_padding = _pair(padding), _pair(output_padding)
        self.dilation, self.groups = _pair(dilation), groups
        shape = (in_channels, out_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        # torch takes fan_in from weight.shape[1:], i.e. out_channels/groups * kH * kW.
        fan_in = shape[1] * shape[2] * shape[3]
        self.bias = _init_bias(out_channels, fan_in, dtype, generator) if bias else None

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")

    def _args(self):
        return self.stride, self.padding, self.output_padding, self.groups, self.dilation

    def forward(self, x):
        self._expect(x, 4, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self._name()} expected input with {self.in_channels} channels, "
                             f"got {x.shape}")
        self._input = x
        return F.conv_transpose2d(x, self.weight.data,
                                  None if self.bias is None else self.bias.data, *self._args())

    def backward(self, dout):
        w, b = self.weight, self.bias
        need_w, need_b = _accumulating_grads(w, b)
        dx, _, _ = F.conv_transpose2d_backward(dout, self._input, w.data, *self._args(),
                                               output_mask=(True, need_w, need_b),
                                               grad_weight=w.grad if need_w else None,
                                               grad_bias=b.grad if need_b else None)
        return dx
