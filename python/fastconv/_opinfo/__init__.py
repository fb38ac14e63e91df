"""Op specs, one module per family (in the style of PyTorch's OpInfo): for every op its float64
NumPy reference forward and backward, sample shapes and keyword arguments, the input values to
keep finite differences away from, its PyTorch counterpart and its module. The CPU and CUDA
tests, the PyTorch cross-checks and `fastconv bench` read them: the references here are the
only float64 references of the ops in the repository, and they never call fastconv's kernels.
"""

from . import act, conv, dense, dropout, loss, norm, optim, pool
from ._spec import FD_STEP, KINK_MARGIN, ActSpec, OpSpec, Sample

FAMILIES = (act, conv, dense, pool, norm, dropout, loss, optim)
SPECS = tuple(spec for family in FAMILIES for spec in family.SPECS)
BY_NAME = {spec.name: spec for spec in SPECS}

__all__ = ["ActSpec", "OpSpec", "Sample", "SPECS", "BY_NAME", "FAMILIES", "FD_STEP",
           "KINK_MARGIN", "act", "conv", "dense", "dropout", "loss", "norm", "optim", "pool"]
