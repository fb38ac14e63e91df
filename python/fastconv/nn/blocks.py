"""Residual and Inception blocks with torchvision's layouts and state_dict key names, so
torchvision ResNet / GoogLeNet weights load into them.

Backward is composition: a residual add sends its gradient down both paths and sums what they
return at the block input; a channel concatenation splits the gradient by channel, runs each
branch backward, and sums the branch input gradients.
"""

import numpy as np

from .._arrays import module_of
from .activation import ReLU
from .containers import Sequential
from .conv import Conv2d
from .module import Module, counted
from .normalization import BatchNorm2d
from .pooling import MaxPool2d


def _shortcut(in_channels, out_channels, stride):
    """torchvision's downsample: a strided 1x1 projection + batch norm, only when the
    residual's shape differs from the input's (otherwise the shortcut is the identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                      BatchNorm2d(out_channels))


class _Residual(Module):
    """relu(residual(x) + shortcut(x)); subclasses build `_residual_layers()` in order."""

    def _check(self, x):
        self._expect(x, 4, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self._name()} expected input with "
                             f"{counted(self.in_channels, 'channel')}, got {x.shape}")

    def forward(self, x):
        self._check(x)
        h = x
        for layer in self._residual_layers():
            h = layer(h)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu_out(h + shortcut)

    def backward(self, dout):
        d = self.relu_out.backward(dout)
        dx = d if self.downsample is None else self.downsample.backward(d)
        for layer in reversed(self._residual_layers()):
            d = layer.backward(d)
        return dx + d


class BasicBlock(_Residual):
    """ResNet-18/34 block: conv3x3(stride)-bn-relu-conv3x3-bn, + shortcut, relu.

    Keys as torchvision.models.resnet.BasicBlock: conv1, bn1, conv2, bn2, downsample.0/.1.
    torchvision has one `relu` module used twice; here each use is its own ReLU (relu1, relu_out)
    because a module keeps its forward's input for backward. ReLUs have no state_dict entries.
    """

    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        self.downsample = _shortcut(in_channels, out_channels, stride)
        self.relu_out = ReLU()

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"

    def _residual_layers(self):
        return (self.conv1, self.bn1, self.relu1, self.conv2, self.bn2)


class Bottleneck(_Residual):
    """ResNet-50+ block: conv1x1-bn-relu-conv3x3(stride)-bn-relu-conv1x1(x expansion)-bn,
    + shortcut, relu; the stride sits on the 3x3 as in torchvision (ResNet v1.5).

    Keys as torchvision.models.resnet.Bottleneck: conv1..3, bn1..3, downsample.0/.1.
    """

    def __init__(self, in_channels, mid_channels, stride=1, expansion=4):
        super().__init__()
        out_channels = mid_channels * expansion
        self.in_channels, self.mid_channels, self.stride = in_channels, mid_channels, stride
        self.expansion, self.out_channels = expansion, out_channels
        self.conv1 = Conv2d(in_channels, mid_channels, 1, bias=False)
        self.bn1 = BatchNorm2d(mid_channels)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(mid_channels, mid_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNorm2d(mid_channels)
        self.relu2 = ReLU()
        self.conv3 = Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = BatchNorm2d(out_channels)
        self.downsample = _shortcut(in_channels, out_channels, stride)
        self.relu_out = ReLU()

    def extra_repr(self):
        return (f"{self.in_channels}, {self.mid_channels}, stride={self.stride}, "
                f"expansion={self.expansion}")

    def _residual_layers(self):
        return (self.conv1, self.bn1, self.relu1, self.conv2, self.bn2, self.relu2, self.conv3,
                self.bn3)


class BasicConv2d(Sequential):
    """conv (no bias) -> BatchNorm2d(eps=0.001) -> ReLU, torchvision GoogLeNet's BasicConv2d;
    keys conv.weight and bn.*. conv_kwargs go to Conv2d (kernel_size, stride, padding, ...)."""

    def __init__(self, in_channels, out_channels, **conv_kwargs):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = BatchNorm2d(out_channels, eps=0.001)
        self.relu = ReLU()


class Inception(Module):
    """GoogLeNet's Inception module: four branches concatenated on channels.

    branch1: 1x1; branch2: 1x1 -> 3x3; branch3: 1x1 -> 5x5 (five_by_five="5x5"), or 1x1 ->
    3x3 -> 3x3 (five_by_five="double3x3", the Inception-v2/v3 factorisation, same receptive
    field); branch4: 3x3 max pool (stride 1, padding 1, ceil_mode) -> 1x1. Each conv is a
    BasicConv2d. Output channels: ch1x1 + ch3x3 + ch5x5 + pool_proj. Keys as torchvision's
    GoogLeNet Inception (branch1.conv.weight, branch2.0.bn.running_mean, branch4.1.conv.weight,
    ...); note torchvision's own branch3 uses a 3x3 kernel despite its name, this one a 5x5.
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj,
                 five_by_five="5x5"):
        super().__init__()
        if five_by_five not in ("5x5", "double3x3"):
            raise ValueError(f"Inception: five_by_five must be '5x5' or 'double3x3', got "
                             f"{five_by_five!r}")
        self.in_channels, self.five_by_five = in_channels, five_by_five
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self._config = (in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                  BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        if five_by_five == "5x5":
            self.branch3 = Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                      BasicConv2d(ch5x5red, ch5x5, kernel_size=5, padding=2))
        else:
            self.branch3 = Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                      BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
                                      BasicConv2d(ch5x5, ch5x5, kernel_size=3, padding=1))
        self.branch4 = Sequential(MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                  BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def extra_repr(self):
        return ", ".join(map(str, self._config)) + f", five_by_five={self.five_by_five!r}"

    def _branches(self):
        return (self.branch1, self.branch2, self.branch3, self.branch4)

    def forward(self, x):
        self._expect(x, 4, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self._name()} expected input with "
                             f"{counted(self.in_channels, 'channel')}, got {x.shape}")
        outs = [branch(x) for branch in self._branches()]
        self._split = np.cumsum([o.shape[1] for o in outs])[:-1]
        return module_of(x).concatenate(outs, axis=1)

    def backward(self, dout):
        douts = module_of(dout).split(dout, self._split.tolist(), axis=1)
        dx = None
        for branch, d in zip(self._branches(), douts):
            db = branch.backward(d)
            dx = db if dx is None else dx + db
        return dx
