"""Conv2d and ConvTranspose2d: torch.nn's arguments, default initialisation and state_dict keys."""

import math
import operator

import numpy as np

from .. import functional as F
from ..functional._args import as_int, as_pair, conv_padding
from . import init
from .._arrays import shared_view
from .module import Module, counted, layer_device, layer_dtype
from .parameter import Parameter, accumulating_grads


def _at_least(value, least, name, op):
    """An int or (h, w) pair of ints, each at least `least`, as a pair. A sequence of one int
    serves both sides, as torch's layers take it, except for kernel_size (torch's weight
    would then be 3-D)."""
    pair = as_pair(value, name, op, single=name != "kernel_size")
    if min(pair) < least:
        raise ValueError(f"{op}: {name} must be {'positive' if least else 'non-negative'}, "
                         f"got {value!r}")
    return pair


class _Conv(Module):
    """What both convolutions share: arguments, torch's initialisation (kaiming_uniform_ with
    a=sqrt(5) for the weight, U(+-1/sqrt(fan_in)) for the bias, fan_in from weight.shape[1:]),
    and forward/backward through their functional pair, whose binding checks the input (a refusal
caused by the input is re-raised naming the layer). device ('cpu', 'cuda') and dtype (float32,
float64) are torch's factory arguments: None is 'cpu' and float32."""

    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, padding_mode, device, dtype, generator):
        super().__init__()
        name = type(self).__name__
        device, dtype = layer_device(device, name), layer_dtype(dtype, name)
        if padding_mode != "zeros":
            raise ValueError(f"{name}: padding_mode {padding_mode!r} is not supported; only 'zeros'")
        # Zero channels or a zero kernel construct, as in torch (an empty weight).
        for arg, value, least in (("in_channels", in_channels, 0),
                                  ("out_channels", out_channels, 0), ("groups", groups, 1)):
            if as_int(value, arg, name) < least:
                raise ValueError(f"{name}: {arg} must be a {'positive' if least else 'non-negative'}"
                                 f" integer, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _at_least(kernel_size, 0, "kernel_size", name)
        self.stride = _at_least(stride, 1, "stride", name)
        self.dilation, self.groups = _at_least(dilation, 1, "dilation", name), int(groups)
        if isinstance(padding, str) and not self._transposed:
            mode = conv_padding(padding, name)[0]
            if mode == "same" and self.stride != (1, 1):
                raise ValueError(f"{name}: padding='same' needs stride 1 (as torch), got stride "
                                 f"{stride!r}")
            self.padding = mode
        else:
            if isinstance(padding, str):
                raise TypeError(f"{name}: padding must be an int or a pair of ints, got "
                                f"{padding!r}")
            self.padding = _at_least(padding, 0, "padding", name)
        io = (in_channels, out_channels // groups) if self._transposed else (out_channels,
                                                                            in_channels // groups)
        shape = io + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        fan_in = shape[1] * shape[2] * shape[3]
        self.bias = init.default_bias(out_channels, fan_in, dtype, generator) if bias else None
        if device != "cpu":
            self._move(device)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")

    def forward(self, x):
        self._input = x
        try:
            return self._forward(x, self.weight.data,
                                 None if self.bias is None else self.bias.data, *self._args())
        except (TypeError, ValueError) as error:
            self._refused(x, error)
            raise

    def _refused(self, x, error):
        """The binding refused the call: when x itself is why (not an array, not 4-D, or not
        in_channels channels), say so naming this layer."""
        self._expect(x, 4, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self._name()} expected input with "
                             f"{counted(self.in_channels, 'channel')}, got {x.shape}") from error

    def backward(self, dout):
        gw, gb = accumulating_grads(self.weight, self.bias)
        dx, _, _ = self._backward(dout, self._input, self.weight.data, *self._args(),
                                  output_mask=(True, gw is not None, gb is not None),
                                  grad_weight=gw, grad_bias=gb)
        return dx

    def backward_params(self, dout):
        gw, gb = accumulating_grads(self.weight, self.bias)
        if gw is None and gb is None:
            return
        self._backward(dout, self._input, self.weight.data, *self._args(),
                       output_mask=(False, gw is not None, gb is not None), grad_weight=gw,
                       grad_bias=gb)


class Conv2d(_Conv):
    """2-D convolution over (N, C, H, W) input; weight (out, in/groups, kH, kW), bias (out,).
    padding may be an int, a pair, "valid" or "same"."""

    _forward = staticmethod(F.conv2d)
    _backward = staticmethod(F.conv2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None,
                 generator=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype, generator)

    def _args(self):
        return self.stride, self.padding, self.dilation, self.groups


class ConvTranspose2d(_Conv):
    """2-D transposed convolution over (N, C_in, H, W) input; weight (in, out/groups, kH, kW),
    bias (out,), as torch.nn.ConvTranspose2d. Called as layer(x, output_size=(H, W)) (or the
    whole (N, C, H, W) shape, as a skip connection's), it picks the output padding that gives
    that size, as torch's (a size out of the stride's reach is a ValueError); the backward
    then uses it too."""

    _transposed = True
    _forward = staticmethod(F.conv_transpose2d)
    _backward = staticmethod(F.conv_transpose2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None, generator=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype, generator)
        self.output_padding = _at_least(output_padding, 0, "output_padding", "ConvTranspose2d")
        for op, st, dl in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(st, dl):
                raise ValueError(f"ConvTranspose2d: output_padding must be smaller than the "
                                 f"stride or the dilation, got output_padding={output_padding!r} "
                                 f"with stride={stride!r} and dilation={dilation!r}")

    def _call(self, x, output_size=None):
        return self.forward(shared_view(x), output_size)

    def forward(self, x, output_size=None):
        padding = self.output_padding
        if output_size is not None:
            self._expect(x, 4, "(N, C, H, W)")
            padding = self._output_padding(x, output_size)
        object.__setattr__(self, "_used_padding", padding)
        return super().forward(x)

    def _output_padding(self, x, output_size):
        """torch's rule: the output padding that makes the output output_size, each side in
        [the size without it, that + stride - 1]."""
        name = self._name()
        try:
            # a shape's entries may be 0-d integer tensors (torch.tensor(x.shape)), as torch's
            size = [as_int(operator.index(v), "output_size", name) for v in output_size]
        except TypeError:
            raise TypeError(f"{name}: output_size must be a sequence of ints, got "
                            f"{output_size!r}") from None
        if len(size) == 4:
            size = size[2:]
        if len(size) != 2:
            raise ValueError(f"{name}: output_size must have 2 or 4 elements, got {output_size!r}")
        least = [(x.shape[2 + d] - 1) * self.stride[d] - 2 * self.padding[d]
                 + self.dilation[d] * (self.kernel_size[d] - 1) + 1 for d in range(2)]
        most = [least[d] + self.stride[d] - 1 for d in range(2)]
        if any(not least[d] <= size[d] <= most[d] for d in range(2)):
            raise ValueError(f"{name}: requested an output size of {tuple(size)}, but valid "
                             f"sizes range from {tuple(least)} to {tuple(most)} (for an input "
                             f"of {tuple(x.shape[2:])})")
        return tuple(size[d] - least[d] for d in range(2))

    def _args(self):
        padding = self.__dict__.get("_used_padding", self.output_padding)
        return self.stride, self.padding, padding, self.groups, self.dilation
