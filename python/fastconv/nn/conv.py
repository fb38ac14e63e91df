"""Conv2d: torch.nn.Conv2d's arguments, default initialisation and state_dict keys."""

import math

import numpy as np

from .. import functional as F
from . import init
from .module import Module
from .parameter import Parameter


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Conv2d(Module):
    """2-D convolution over (N, C, H, W) input; weight (out, in/groups, kH, kW), bias (out,).

    Initialised as PyTorch does: kaiming_uniform_(a=sqrt(5)) for the weight, i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float32, generator=None):
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(f"Conv2d: padding_mode {padding_mode!r} is not supported; "
                             "only 'zeros'")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation, self.groups = _pair(dilation), groups
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        self.bias = None
        if bias:
            bound = 1 / math.sqrt(shape[1] * shape[2] * shape[3])
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")

    def _args(self):
        return self.stride, self.padding, self.dilation, self.groups

    def forward(self, x):
        self._expect(x, 4, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self._name()} expected input with {self.in_channels} channels, "
                             f"got {x.shape}")
        self._input = x
        return F.conv2d(x, self.weight.data, None if self.bias is None else self.bias.data,
                        *self._args())

    def backward(self, dout):
        w, b = self.weight, self.bias
        need_w = w.requires_grad
        need_b = b is not None and b.requires_grad
        if need_w and w.grad is None:
            w.grad = np.zeros_like(w.data)
        if need_b and b.grad is None:
            b.grad = np.zeros_like(b.data)
        dx, _, _ = F.conv2d_backward(dout, self._input, w.data, *self._args(),
                                     output_mask=(True, need_w, need_b),
                                     grad_weight=w.grad if need_w else None,
                                     grad_bias=b.grad if need_b else None)
        return dx
