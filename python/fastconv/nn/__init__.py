"""Layers, containers and losses with explicit forward/backward (no autograd tape)."""

from . import activation, init, utils
from .activation import *  # noqa: F401,F403
from .blocks import BasicBlock, BasicConv2d, Bottleneck, Inception
from .containers import Flatten, Identity, Sequential
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout, Dropout2d
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss, MultiMarginLoss
from .module import Module
from .normalization import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from .parameter import Parameter
from .pooling import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, LPPool2d, MaxPool2d,
                      MinPool2d, MixedPool2d)

__all__ = [
    "Parameter", "Module", "Sequential", "Identity", "Flatten",
    "Conv2d", "ConvTranspose2d", "Linear",
    "MaxPool2d", "MinPool2d", "AvgPool2d", "LPPool2d", "MixedPool2d", "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    *activation.__all__,
    "BatchNorm1d", "BatchNorm2d", "LocalResponseNorm", "Dropout", "Dropout2d",
    "CrossEntropyLoss", "MSELoss", "MultiMarginLoss",
    "BasicBlock", "Bottleneck", "BasicConv2d", "Inception",
    "init", "utils",
]


def __getattr__(name):
    # torch spells it torch.nn.SyncBatchNorm; here it lives with the process group it needs,
    # imported on first use (fastconv.distributed imports this package).
    if name == "SyncBatchNorm":
        from ..distributed import SyncBatchNorm
        return SyncBatchNorm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
