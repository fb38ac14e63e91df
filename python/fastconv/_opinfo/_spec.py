"""OpSpec and ActSpec: what the tests, the PyTorch cross-checks and `fastconv bench` read about
an op (in the style of PyTorch's OpInfo).

A spec holds no kernel of fastconv's: the reference is float64 NumPy code written from the
op's definition, the functional op, the module and the PyTorch counterpart are named and
resolved only when asked for.
"""

import importlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

# Finite differences step this far at most; inputs of a sample keep twice that from a kink.
FD_STEP = 1e-6
KINK_MARGIN = 1e-3


def _no_kinks(kwargs):
    return ()


@dataclass(frozen=True)
class Sample:
    """One call of an op: its array arguments in order (name -> shape, or rng -> array for
    integer targets and positive statistics) and its keyword arguments."""
    id: str
    inputs: dict
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OpSpec:
    """One functional op: fastconv.functional.<name> and <name>_backward.

    reference(*inputs, **kwargs) is the float64 forward (a tuple's first entry is the output);
    reference_backward(grad, *inputs[:backward_args], **kwargs) its gradients, one per leading
    input up to grad_inputs (0: the backward does not follow that convention; tests call it
    by hand) -- or, with backward_from_output, reference_backward(grad, output, **kwargs).
    torch is the dotted name of PyTorch's counterpart, called as torch(*inputs, **kwargs)
    (None: PyTorch has none); module the name of the fastconv.nn layer (of the fastconv.optim
    class for an optimizer); kinks(kwargs) the input values where the derivative jumps.
    """
    name: str
    family: str = ""
    reference: Optional[Callable] = None
    reference_backward: Optional[Callable] = None
    samples: tuple = ()
    kinks: Callable = _no_kinks
    torch: Optional[str] = None
    module: Optional[str] = None
    grad_inputs: int = 1
    backward_args: Optional[int] = None
    backward_from_output: bool = False
    nonneg_inputs: bool = False     # the op is only defined (or smooth) for x >= 0

    def functional(self):
        from .. import functional as F
        return getattr(F, self.name)

    def functional_backward(self):
        from .. import functional as F
        return getattr(F, self.name + "_backward")

    def make_module(self, *args, **kwargs):
        """fastconv.nn.<module>(*args, **kwargs) (fastconv.optim.<module> for an optimizer)."""
        from .. import nn, optim
        return getattr(optim if self.family == "optim" else nn, self.module)(*args, **kwargs)

    def torch_op(self, torch):
        """PyTorch's counterpart, resolved in the given torch module."""
        path = self.torch.split(".")
        if path[0] != "torch":
            raise ValueError(f"{self.name}: torch counterpart {self.torch!r} is not in torch")
        obj = torch
        for part in path[1:]:
            obj = getattr(obj, part) if hasattr(obj, part) else importlib.import_module(
                f"{obj.__name__}.{part}")
        return obj

    def sample_inputs(self, sample, rng):
        """The sample's arrays in order: float64 normal values (nonneg_inputs: their absolute
        values), moved KINK_MARGIN away from every kink."""
        kinks = np.asarray(self.kinks(sample.kwargs), dtype=np.float64)
        out = []
        for make in sample.inputs.values():
            if callable(make):
                out.append(make(rng))
                continue
            x = rng.standard_normal(make)
            if self.nonneg_inputs:
                x = np.abs(x) + KINK_MARGIN
            for k in kinks:
                near = np.abs(x - k) < KINK_MARGIN
                x[near] = k + np.where(x[near] < k, -KINK_MARGIN, KINK_MARGIN)
            out.append(x)
        return out


@dataclass(frozen=True)
class ActSpec(OpSpec):
    """An elementwise activation: fastconv.functional.<name>(input, **params, [inplace]) and
    <name>_backward(grad_output, input, **params), module fastconv.nn.<module> with the params
    as attributes. One record gives all its tests: the CPU and CUDA tables (samples, each an
    id and keyword arguments), the PyTorch cross-check (torch_samples), the property tests and
    the layer tests (params: each keyword parameter, in signature order, with the map from a
    real drawn in [-3, 3] to a valid value), the kernel test (kernel_kwargs, passed
    positionally to _C.<name>_forward/_backward), in-place support, and whether the backward
    can start from the forward's output."""
    family: str = "act"
    torch_samples: tuple = ()
    params: dict = field(default_factory=dict)
    kernel_kwargs: dict = field(default_factory=dict)
    inplace: bool = False
    output_backward: bool = False   # <name>_backward(grad, output=y) works without x
