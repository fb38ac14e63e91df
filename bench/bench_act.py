"""Activations and softmax: fastconv against PyTorch (torch.nn.functional / aten), float32.

    python bench/bench_act.py [--threads 2] [--markdown out.md] [--quick]

Every case is checked against torch (or, without torch, the float64 NumPy reference in
tests/reference_act.py) before it is timed. GB/s counts the bytes the minimal algorithm must
move: each input read once and each output written once (4 bytes per element); the
percentage is that rate as a share of a large NumPy copy's. Backward of relu and elu is
aten.threshold_backward / aten.elu_backward called directly, so torch pays no autograd cost.
"""

import os
import sys

import numpy as np

import fastconv
import fastconv.functional as F
from harness import copy_bandwidth, main, rel_err, timeit

ACT_SHAPE = (16, 64, 56, 56)
SOFTMAX_SHAPE = (256, 1000)
QUICK_ACT_SHAPE = (2, 64, 56, 56)
QUICK_SOFTMAX_SHAPE = (64, 1000)


def cases(act_shape, softmax_shape, torch):
    """(name, shape, arrays moved, fastconv call, torch call, reference call) per case."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(act_shape, dtype=np.float32)
    g = rng.standard_normal(act_shape, dtype=np.float32)
    s = 4 * rng.standard_normal(softmax_shape, dtype=np.float32)
    if torch is not None:
        TF, aten = torch.nn.functional, torch.ops.aten
        xt, gt, st = (torch.from_numpy(a) for a in (x, g, s))
    else:
        TF = aten = xt = gt = st = None

    def tcall(fn):
        return fn if torch is not None else None

    return [
        ("relu forward", x.shape, 2, lambda: F.relu(x), tcall(lambda: TF.relu(xt)),
         lambda R: R.relu_ref(x)),
        ("relu backward", x.shape, 3, lambda: F.relu_backward(g, x),
         tcall(lambda: aten.threshold_backward(gt, xt, 0)), lambda R: R.relu_backward_ref(g, x)),
        ("elu forward", x.shape, 2, lambda: F.elu(x), tcall(lambda: TF.elu(xt)),
         lambda R: R.elu_ref(x)),
        ("elu backward", x.shape, 3, lambda: F.elu_backward(g, x),
         tcall(lambda: aten.elu_backward(gt, 1.0, 1.0, 1.0, False, xt)),
         lambda R: R.elu_backward_ref(g, x)),
        ("sigmoid forward", x.shape, 2, lambda: F.sigmoid(x), tcall(lambda: torch.sigmoid(xt)),
         lambda R: R.sigmoid_ref(x)),
        ("tanh forward", x.shape, 2, lambda: F.tanh(x), tcall(lambda: torch.tanh(xt)),
         lambda R: R.tanh_ref(x)),
        ("softmax dim 1", s.shape, 2, lambda: F.softmax(s, 1), tcall(lambda: TF.softmax(st, 1)),
         lambda R: R.softmax_ref(s, 1)),
        ("log_softmax dim 1", s.shape, 2, lambda: F.log_softmax(s, 1),
         tcall(lambda: TF.log_softmax(st, 1)), lambda R: R.log_softmax_ref(s, 1)),
    ]


def reference_module():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import reference_act
    return reference_act


def run(threads, quick):
    try:
        import torch
    except ImportError:
        torch = None
    fastconv.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    R = None if torch is not None else reference_module()
    act_shape, softmax_shape = ((QUICK_ACT_SHAPE, QUICK_SOFTMAX_SHAPE) if quick
                                else (ACT_SHAPE, SOFTMAX_SHAPE))
    timing = dict(warmup=1, repeats=3, min_time=0.05) if quick else {}
    rows = []
    for name, shape, arrays, ours, theirs, ref in cases(act_shape, softmax_shape, torch):
        y = ours()
        expected = theirs().numpy() if torch is not None else ref(R)
        err = rel_err(y, expected)
        if err > 1e-5:
            sys.exit(f"{name}: fastconv differs from {'torch' if torch else 'the reference'} "
                     f"by {err:.2e}; refusing to time it")
        row = {"name": name, "shape": shape, "bytes": arrays * 4 * int(np.prod(shape)),
               "t": timeit(ours, **timing), "err": err}
        if torch is not None:
            with torch.no_grad():
                row["torch"] = timeit(theirs, **timing)
        rows.append(row)
    return rows, torch


def table(rows, copy_gbs, threads, torch):
    head = ["op", "shape", "ms (min-max)", "GB/s", "of copy"]
    if torch is not None:
        head += ["torch ms", "ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        med, lo, hi = r["t"]
        gbs = r["bytes"] / med / 1e9
        cells = [r["name"], "x".join(map(str, r["shape"])),
                 f"{med * 1e3:.3f} ({lo * 1e3:.3f}-{hi * 1e3:.3f})", f"{gbs:.1f}",
                 f"{gbs / copy_gbs:.0%}"]
        if torch is not None:
            cells += [f"{r['torch'][0] * 1e3:.3f}", f"{med / r['torch'][0]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    foot = (f"\nfloat32, {threads} threads, median after warm-up; GB/s = input bytes read + "
            f"output bytes written per call; 'of copy' = share of a NumPy copy's "
            f"{copy_gbs:.1f} GB/s. ratio = fastconv time / PyTorch time (below 1 is faster)"
            + (f"; torch {torch.__version__}" if torch else "; torch not installed"))
    return "\n".join(lines) + foot


def render(args):
    rows, torch = run(args.threads, args.quick)
    return table(rows, copy_bandwidth(32 << 20 if args.quick else 256 << 20), args.threads, torch)


if __name__ == "__main__":
    main(__doc__, render)
