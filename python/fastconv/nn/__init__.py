"""Layers, containers and losses with explicit forward/backward (no autograd tape)."""

from .parameter import Parameter

__all__ = ["Parameter"]
