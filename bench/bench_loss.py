"""Losses, forward and backward: fastconv against torch.nn.functional, float32.

    python bench/bench_loss.py [--threads 2] [--markdown out.md] [--quick]

PyTorch's backward is the aten ops autograd would run, called directly with the forward's saved
log-softmax (nll_loss_backward + _log_softmax_backward_data; mse_loss_backward), so neither side
pays for autograd bookkeeping; fastconv's backward recomputes the softmax from the logits. Both
are checked against PyTorch (or, without it, the float64 reference of the tests) before timing.
GB/s counts the bytes the minimal algorithm must move (each input read once, each output written
once); the percentage is of the measured copy bandwidth.
"""

import os
import sys

import numpy as np

import fastconv
import fastconv.functional as F
from harness import copy_bandwidth, main, rel_err, timeit

CASES = [
    ("cross_entropy", (256, 10)),
    ("cross_entropy", (256, 1000)),
    ("mse_loss", (16, 64, 56, 56)),
]


def _numpy_reference():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import reference_loss
    return reference_loss


def cross_entropy_case(shape, rng, torch):
    """(fastconv fwd, bwd), bytes moved per pass, expected (loss, grad), torch (fwd, bwd) or None."""
    N, C = shape
    x = rng.standard_normal(shape, dtype=np.float32) * 3
    t = rng.integers(0, C, N)
    ours = (lambda: F.cross_entropy(x, t), lambda: F.cross_entropy_backward(1.0, x, t))
    nbytes = {"fwd": x.nbytes + t.nbytes + 4, "bwd": 2 * x.nbytes + t.nbytes + 4}
    if torch is None:
        R = _numpy_reference()
        return ours, nbytes, (R.cross_entropy_ref(x, t), R.cross_entropy_backward_ref(1.0, x, t)), None
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    aten = torch.ops.aten
    logp = torch.log_softmax(xt, 1)
    total_weight, one = torch.tensor(float(N)), torch.tensor(1.0)

    def torch_bwd():
        dlogp = aten.nll_loss_backward(one, logp, tt, None, 1, -100, total_weight)
        return aten._log_softmax_backward_data(dlogp, logp, 1, torch.float32)

    theirs = (lambda: torch.nn.functional.cross_entropy(xt, tt), torch_bwd)
    return ours, nbytes, tuple(f().numpy() for f in theirs), theirs


def mse_loss_case(shape, rng, torch):
    x = rng.standard_normal(shape, dtype=np.float32)
    y = rng.standard_normal(shape, dtype=np.float32)
    ours = (lambda: F.mse_loss(x, y), lambda: F.mse_loss_backward(1.0, x, y))
    nbytes = {"fwd": 2 * x.nbytes + 4, "bwd": 3 * x.nbytes + 4}
    if torch is None:
        R = _numpy_reference()
        return ours, nbytes, (R.mse_loss_ref(x, y), R.mse_loss_backward_ref(1.0, x, y)), None
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    one = torch.tensor(1.0)
    theirs = (lambda: torch.nn.functional.mse_loss(xt, yt),
              lambda: torch.ops.aten.mse_loss_backward(one, xt, yt, 1))  # 1 = Reduction::Mean
    return ours, nbytes, tuple(f().numpy() for f in theirs), theirs


def run(threads, quick):
    try:
        import torch
    except ImportError:
        torch = None
    fastconv.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    timing = dict(warmup=1, repeats=3, min_time=0.02) if quick else {}
    rows = []
    for op, shape in CASES:
        make = cross_entropy_case if op == "cross_entropy" else mse_loss_case
        if torch is not None:
            torch.set_grad_enabled(False)
        ours, nbytes, expected, theirs = make(shape, rng, torch)
        err = max(rel_err(f(), e) for f, e in zip(ours, expected))
        if err > 1e-4:
            sys.exit(f"{op} {shape}: fastconv differs from the reference by {err:.2e}; "
                     "refusing to time it")
        row = {"op": op, "shape": shape, "bytes": nbytes, "err": err}
        for p, fn in zip(("fwd", "bwd"), ours):
            row[p] = timeit(fn, **timing)
        if theirs is not None:
            for p, fn in zip(("fwd", "bwd"), theirs):
                row["torch_" + p] = timeit(fn, **timing)
        rows.append(row)
    return rows, torch


def table(rows, bandwidth, threads, torch):
    head = ["op (shape)", "pass", "ms (min-max)", "GB/s (of copy)"]
    if torch is not None:
        head += ["torch ms", "ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        for p in ("fwd", "bwd"):
            med, lo, hi = r[p]
            gbs = r["bytes"][p] / med / 1e9
            cells = [f"{r['op']} {r['shape']}", p,
                     f"{med * 1e3:.3f} ({lo * 1e3:.3f}-{hi * 1e3:.3f})",
                     f"{gbs:.1f} ({gbs / bandwidth:.0%})"]
            if torch is not None:
                t = r["torch_" + p][0]
                cells += [f"{t * 1e3:.3f}", f"{med / t:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
    foot = (f"\nfloat32, {threads} threads, median after warm-up; ratio = fastconv time / PyTorch "
            f"time (below 1 is faster). Copy bandwidth {bandwidth:.1f} GB/s (NumPy copy, read + "
            f"write); max relative difference to the reference "
            f"{max(r['err'] for r in rows):.1e}" + (f"; torch {torch.__version__}" if torch else ""))
    return "\n".join(lines) + foot


def render(args):
    rows, torch = run(args.threads, args.quick)
    return table(rows, copy_bandwidth(32 << 20 if args.quick else 256 << 20), args.threads, torch)


if __name__ == "__main__":
    main(__doc__, render)
