"""Pooling forward and backward: fastconv against torch.nn.functional, float32.

    python bench/bench_pool.py [--threads 2] [--markdown out.md] [--quick]

Each case is validated against torch (or, without torch, the float64 NumPy reference in
tests/reference_pool.py) before it is timed. Backward is the input gradient; for max pooling
both sides are given the forward's indices (aten.max_pool2d_with_indices_backward), and the
aten backward ops are called directly so torch pays no autograd bookkeeping. GB/s counts the
bytes the minimal algorithm reads and writes: forward = input + output (max pooling also writes
its int64 indices: fastconv always does, torch does when asked, as here); backward =
grad_output (+ indices) + grad_input.
"""

import os
import sys

import numpy as np

import fastconv
import fastconv.functional as F
from harness import copy_bandwidth, main, rel_err, timeit

# name, op, input shape, window (kernel, stride) or adaptive output size
CASES = [
    ("max_pool2d 2x2/2", "max", (64, 16, 28, 28), (2, 2)),
    ("max_pool2d 3x3/2", "max", (8, 64, 55, 55), (3, 2)),
    ("avg_pool2d 2x2/2", "avg", (64, 16, 28, 28), (2, 2)),
    ("adaptive_avg_pool2d (1,1)", "adaptive_avg", (16, 512, 7, 7), (1, 1)),
]


def fastconv_ops(op, x, arg):
    """(forward, backward, forward results) for fastconv; backward takes grad_output."""
    if op == "max":
        k, s = arg
        out, idx = F.max_pool2d(x, k, s, return_indices=True)
        return (lambda: F.max_pool2d(x, k, s, return_indices=True),
                lambda g: F.max_pool2d_backward(g, x, k, s, indices=idx), (out, idx))
    if op == "avg":
        k, s = arg
        return (lambda: F.avg_pool2d(x, k, s), lambda g: F.avg_pool2d_backward(g, x, k, s),
                (F.avg_pool2d(x, k, s),))
    return (lambda: F.adaptive_avg_pool2d(x, arg),
            lambda g: F.adaptive_avg_pool2d_backward(g, x, arg), (F.adaptive_avg_pool2d(x, arg),))


def torch_ops(torch, op, xt, arg):
    """(forward, backward, forward results) for torch, backward via the aten op."""
    aten = torch.ops.aten
    if op == "max":
        k, s = arg
        out, idx = torch.nn.functional.max_pool2d(xt, k, s, return_indices=True)
        return (lambda: torch.nn.functional.max_pool2d(xt, k, s, return_indices=True),
                lambda g: aten.max_pool2d_with_indices_backward(g, xt, [k, k], [s, s], [0, 0],
                                                                [1, 1], False, idx),
                (out, idx))
    if op == "avg":
        k, s = arg
        return (lambda: torch.nn.functional.avg_pool2d(xt, k, s),
                lambda g: aten.avg_pool2d_backward(g, xt, [k, k], [s, s], [0, 0], False, True,
                                                   None),
                (torch.nn.functional.avg_pool2d(xt, k, s),))
    return (lambda: torch.nn.functional.adaptive_avg_pool2d(xt, arg),
            lambda g: aten._adaptive_avg_pool2d_backward(g, xt),
            (torch.nn.functional.adaptive_avg_pool2d(xt, arg),))


def reference(op, x, arg, g):
    """float64 (out, indices or None, grad_input) from tests/reference_pool.py."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import reference_pool as R
    if op == "max":
        out, idx = R.max_pool2d_ref(x, arg[0], arg[1])
        return out, idx, R.max_pool2d_backward_ref(g, x, arg[0], arg[1])
    if op == "avg":
        return (R.avg_pool2d_ref(x, arg[0], arg[1]), None,
                R.avg_pool2d_backward_ref(g, x, arg[0], arg[1]))
    return (R.adaptive_avg_pool2d_ref(x, arg), None,
            R.adaptive_avg_pool2d_backward_ref(g, x, arg))


def traffic(op, x, out):
    """Bytes (forward, backward) the minimal algorithm moves."""
    fwd = x.nbytes + out.nbytes + (out.size * 8 if op == "max" else 0)
    bwd = out.nbytes + x.nbytes + (out.size * 8 if op == "max" else 0)
    return fwd, bwd


def run(threads, quick):
    try:
        import torch
    except ImportError:
        torch = None
    fastconv.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    reps = dict(repeats=3, min_time=0.05) if quick else {}
    rng = np.random.default_rng(0)
    rows = []
    for name, op, shape, arg in CASES:
        x = rng.standard_normal(shape, dtype=np.float32)
        fwd, bwd, res = fastconv_ops(op, x, arg)
        g = rng.standard_normal(res[0].shape, dtype=np.float32)
        dx = bwd(g)
        row = {"name": name, "shape": shape, "bytes": traffic(op, x, res[0])}
        if torch is not None:
            xt, gt = torch.from_numpy(x), torch.from_numpy(g)
            with torch.no_grad():
                t_fwd, t_bwd, t_res = torch_ops(torch, op, xt, arg)
                want = (t_res[0].numpy(), t_res[1].numpy() if op == "max" else None,
                        t_bwd(gt).numpy())
        else:
            want = reference(op, x, arg, g)
        err = max(rel_err(res[0], want[0]), rel_err(dx, want[2]))
        if want[1] is not None and not np.array_equal(res[1], want[1]):
            err = float("inf")
        if err > 1e-5:
            sys.exit(f"{name}: fastconv differs from the {'torch' if torch else 'reference'} "
                     f"result by {err:.2e}; refusing to time it")
        row["err"] = err
        row["fwd"] = timeit(fwd, **reps)
        row["bwd"] = timeit(lambda: bwd(g), **reps)
        if torch is not None:
            with torch.no_grad():
                row["torch_fwd"] = timeit(t_fwd, **reps)
                row["torch_bwd"] = timeit(lambda: t_bwd(gt), **reps)
        rows.append(row)
    return rows, torch


def table(rows, bandwidth, threads, torch):
    head = ["case (input shape)", "fwd ms", "fwd GB/s", "bwd ms", "bwd GB/s"]
    if torch is not None:
        head += ["torch fwd ms", "torch bwd ms", "fwd ratio", "bwd ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        f, b = r["fwd"], r["bwd"]
        bf, bb = (n / 1e9 for n in r["bytes"])
        cells = [f"{r['name']} {'x'.join(map(str, r['shape']))}",
                 f"{f[0] * 1e3:.3f} ({f[1] * 1e3:.3f}-{f[2] * 1e3:.3f})",
                 f"{bf / f[0]:.1f} ({bf / f[0] / bandwidth:.0%})",
                 f"{b[0] * 1e3:.3f} ({b[1] * 1e3:.3f}-{b[2] * 1e3:.3f})",
                 f"{bb / b[0]:.1f} ({bb / b[0] / bandwidth:.0%})"]
        if torch is not None:
            tf, tb = r["torch_fwd"][0], r["torch_bwd"][0]
            cells += [f"{tf * 1e3:.3f}", f"{tb * 1e3:.3f}", f"{f[0] / tf:.2f}", f"{b[0] / tb:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    foot = (f"\nfloat32, {threads} threads, median (min-max) of the timing samples after warm-up. "
            f"Percentages: share of the measured copy bandwidth {bandwidth:.1f} GB/s (NumPy "
            f"copy, read + write); small cases partly run from cache and can exceed it. "
            + (f"ratio = fastconv time / PyTorch time (below 1 is faster); torch "
               f"{torch.__version__}" if torch else
               "torch not installed: validated against the NumPy reference, no ratios"))
    return "\n".join(lines) + foot


def render(args):
    rows, torch = run(args.threads, args.quick)
    return table(rows, copy_bandwidth(64 << 20 if args.quick else 256 << 20), args.threads, torch)


if __name__ == "__main__":
    main(__doc__, render)
