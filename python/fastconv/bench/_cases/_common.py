"""What every family's cases share: the Case record, the suites and the input helpers.

A Case gives, for each pass it times ("fwd"/"bwd" for ops, "train"/"infer" for networks), a
zero-argument callable per implementation: fastconv (NumPy or CuPy arrays), the float64
reference (the op's spec in fastconv._opinfo), PyTorch and, on small cases, the "numpy" peer
(plain float32 NumPy, _numpy.py). Each callable returns the outputs compared against the
reference, in the reference's order. `work` is what one call does: floating-point operations,
bytes moved by the minimal algorithm, or images; `counts` says how it was counted.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

FAMILIES = ("conv", "pool", "act", "norm", "loss", "dense", "train")
SUITES = ("quick", "standard", "full")


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    shape: str
    unit: str                      # "flop", "byte" or "image": what `work` counts
    work: dict                     # pass -> amount per call
    counts: str
    inputs: Callable               # rng -> {name: float32/int NumPy array}
    fastconv: Callable             # (ctx, arrays on ctx.device) -> {pass: fn}
    reference: Callable            # (ctx, float64 NumPy arrays) -> {pass: fn}
    torch: Optional[Callable] = None   # (ctx, torch tensors) -> {pass: fn}
    numpy_peer: Optional[Callable] = None  # (ctx, float32 NumPy arrays) -> {pass: fn}: "numpy"
    tf32: bool = False             # GEMM-bound: also time torch with TF32 on the GPU
    tf32_checks: Optional[int] = None  # under TF32 compare only this many leading outputs
    tol: float = 1e-4
    note: str = ""
    check_fwd: Optional[Callable] = None  # (float64 arrays, outputs) -> error, for random ops

    @property
    def passes(self):
        return tuple(self.work)


def batches(cpu, cuda):
    """{(device, suite): batch} from (quick, standard, full) triples; None: not in that suite."""
    return {(dev, suite): n for dev, sizes in (("cpu", cpu), ("cuda", cuda))
            for suite, n in zip(SUITES, sizes) if n}


def normal(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)
