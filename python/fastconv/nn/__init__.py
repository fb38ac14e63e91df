"""Layers, containers and losses with explicit forward/backward (no autograd tape)."""

from . import init
from .containers import Flatten, Identity, Sequential
from .conv import Conv2d
from .module import Module
from .parameter import Parameter

__all__ = ["Parameter", "Module", "Sequential", "Identity", "Flatten", "Conv2d", "init"]
