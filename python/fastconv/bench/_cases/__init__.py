"""The benchmark cases, one module per op family, with their batch size per device and suite.

Each family module has a table per op kind (rows: name, the builder's arguments after the batch
size, the batch on the CPU for (quick, standard, full) (None: not in that suite), the same on
the GPU, and whether the NumPy peer runs) and the builder turning a row into a Case
(_common.py). The float64 references are the ops' specs (fastconv._opinfo).
"""

from . import act, conv, dense, loss, norm, pool, train
from ._common import FAMILIES, SUITES, Case, batches

TABLES = [("conv", conv.CONV, conv.conv_case), ("pool", pool.POOL, pool.pool_case),
          ("act", act.ACT, act.act_case), ("norm", norm.NORM, norm.norm_case),
          ("loss", loss.LOSS, loss.loss_case), ("dense", dense.LINEAR, dense.linear_case),
          ("dense", dense.CONV_TRANSPOSE, dense.conv_transpose_case)]

__all__ = ["FAMILIES", "SUITES", "Case", "TABLES", "cases"]


def cases(device="cpu", suite="quick", ops=FAMILIES):
    """The cases of a suite for a device ("cpu" or "cuda"), restricted to the op families
    `ops`, in table order."""
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {', '.join(SUITES)}, got {suite!r}")
    unknown = set(ops) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown op families {sorted(unknown)}; choose from "
                         f"{', '.join(FAMILIES)}")
    out = []
    for family, table, build in TABLES:
        for name, args, cpu, cuda, numpy_peer in table if family in ops else ():
            n = batches(cpu, cuda).get((device, suite))
            if n:
                out.append(build(name, n, *args, numpy_peer=numpy_peer))
    if "train" in ops:
        for name, cpu, cuda in train.NETWORKS:
            sizes = dict(zip(SUITES, cpu if device == "cpu" else cuda))
            out.append(train.network_case(name, *sizes[suite]))
    return out
