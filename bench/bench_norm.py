"""batch_norm, local_response_norm and dropout: fastconv against PyTorch, float32.

    python bench/bench_norm.py [--threads 2] [--markdown out.md] [--quick]

Every case is validated (against torch, or the NumPy reference when torch is absent) before it
is timed. GB/s counts the bytes the minimal algorithm must move, per element of the input:
batch_norm training forward reads x twice (statistics, then normalisation) and writes y (12 B);
its backward reads dy and x twice (sums, then dx) and writes dx (20 B); eval forward reads x and
writes y (8 B); local_response_norm forward reads x and writes y (8 B), its backward reads dy and
x and writes dx (12 B); dropout reads x and writes y and the uint8 mask (9 B), its backward reads
dy and the mask and writes dx (9 B). The percentage is the share of the copy bandwidth measured
by harness.copy_bandwidth(). PyTorch runs aten's native_batch_norm(_backward),
local_response_norm with autograd, and native_dropout(_backward) in the same process with the
same thread count.
"""

import os
import sys

import numpy as np

import fastconv
import fastconv.functional as F
from harness import copy_bandwidth, main, rel_err, timeit

# Without torch, cases are validated against tests/reference_norm.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

BN_SHAPE = (16, 64, 56, 56)
LRN_SHAPE = (8, 96, 55, 55)
DROPOUT_SHAPE = (16, 64, 56, 56)
TOLERANCE = 1e-4


def _check(name, err):
    if err > TOLERANCE:
        sys.exit(f"{name}: fastconv differs from the reference by {err:.2e}; refusing to time it")
    return err


def _bn_cases(torch, shape, rng):
    C = shape[1]
    x = rng.standard_normal(shape, dtype=np.float32) * 2 + 1
    dy = rng.standard_normal(shape, dtype=np.float32)
    w, b = rng.standard_normal(C, dtype=np.float32), rng.standard_normal(C, dtype=np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    y, sm, si = F.batch_norm(x, rm.copy(), rv.copy(), w, b, True, return_stats=True)
    grads = F.batch_norm_backward(dy, x, w, sm, si, True)
    ye = F.batch_norm(x, rm, rv, w, b, False)
    n = x.size
    cases = [
        dict(name="batch_norm train fwd", shape=shape, nbytes=12 * n,
             fn=lambda: F.batch_norm(x, rm, rv, w, b, True)),
        dict(name="batch_norm train bwd", shape=shape, nbytes=20 * n,
             fn=lambda: F.batch_norm_backward(dy, x, w, sm, si, True)),
        dict(name="batch_norm eval fwd", shape=shape, nbytes=8 * n,
             fn=lambda: F.batch_norm(x, rm, rv, w, b, False)),
    ]
    if torch is None:
        from reference_norm import batch_norm_ref, batch_norm_backward_ref
        ref, mean, invstd, _, _ = batch_norm_ref(x, rm, rv, w, b, True)
        rgrads = batch_norm_backward_ref(dy, x, w, mean, invstd, True)
        rye = batch_norm_ref(x, rm, rv, w, b, False)[0]
        _check("batch_norm", max([rel_err(y, ref), rel_err(ye, rye)]
                                 + [rel_err(a, r) for a, r in zip(grads, rgrads)]))
        return cases
    t = {k: torch.from_numpy(v.copy()) for k, v in
         dict(x=x, dy=dy, w=w, b=b, rm=rm, rv=rv).items()}
    fwd, bwd = torch.ops.aten.native_batch_norm, torch.ops.aten.native_batch_norm_backward
    ty, tsm, tsi = fwd(t["x"], t["w"], t["b"], t["rm"].clone(), t["rv"].clone(), True, 0.1, 1e-5)
    tg = bwd(t["dy"], t["x"], t["w"], t["rm"], t["rv"], tsm, tsi, True, 1e-5, [True] * 3)
    tye = fwd(t["x"], t["w"], t["b"], t["rm"], t["rv"], False, 0.1, 1e-5)[0]
    _check("batch_norm", max([rel_err(y, ty.numpy()), rel_err(ye, tye.numpy())]
                             + [rel_err(a, g.numpy()) for a, g in zip(grads, tg)]))
    cases[0]["torch"] = lambda: fwd(t["x"], t["w"], t["b"], t["rm"], t["rv"], True, 0.1, 1e-5)
    cases[1]["torch"] = lambda: bwd(t["dy"], t["x"], t["w"], t["rm"], t["rv"], tsm, tsi, True,
                                    1e-5, [True] * 3)
    cases[2]["torch"] = lambda: fwd(t["x"], t["w"], t["b"], t["rm"], t["rv"], False, 0.1, 1e-5)
    return cases


def _lrn_cases(torch, shape, rng):
    x = rng.standard_normal(shape, dtype=np.float32) * 3
    dy = rng.standard_normal(shape, dtype=np.float32)
    args = (5, 1e-4, 0.75, 2.0)
    y = F.local_response_norm(x, *args)
    dx = F.local_response_norm_backward(dy, x, *args)
    n = x.size
    cases = [
        dict(name="local_response_norm size 5 fwd", shape=shape, nbytes=8 * n,
             fn=lambda: F.local_response_norm(x, *args)),
        dict(name="local_response_norm size 5 bwd", shape=shape, nbytes=12 * n,
             fn=lambda: F.local_response_norm_backward(dy, x, *args)),
    ]
    if torch is None:
        from reference_norm import local_response_norm_ref, local_response_norm_backward_ref
        ref_dx = local_response_norm_backward_ref(dy, x, *args)
        _check("local_response_norm", max(rel_err(y, local_response_norm_ref(x, *args)),
                                          rel_err(dx, ref_dx)))
        return cases
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    xg = xt.clone().requires_grad_(True)
    yt = torch.nn.functional.local_response_norm(xg, *args)
    (gt,) = torch.autograd.grad(yt, (xg,), dyt)
    _check("local_response_norm", max(rel_err(y, yt.detach().numpy()), rel_err(dx, gt.numpy())))

    def torch_bwd():
        out = torch.nn.functional.local_response_norm(xg, *args)
        return torch.autograd.grad(out, (xg,), dyt)

    cases[0]["torch"] = lambda: torch.nn.functional.local_response_norm(xt, *args)
    # autograd has to run the forward again to build its graph: the backward row times both
    cases[1]["torch"] = torch_bwd
    cases[1]["name"] += " (torch: fwd+bwd)"
    return cases


def _dropout_cases(torch, shape, rng):
    p = 0.5
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    y, mask = F.dropout(x, p, return_mask=True)
    dx = F.dropout_backward(dy, mask, p)
    scale = np.float32(1 / (1 - p))
    err = max(rel_err(y, np.where(mask == 1, x * scale, 0)),
              rel_err(dx, np.where(mask == 1, dy * scale, 0)))
    if abs(mask.mean() - (1 - p)) > 5 * np.sqrt(p * (1 - p) / mask.size):
        err = np.inf
    _check("dropout", err)
    n = x.size
    cases = [
        dict(name="dropout p=0.5 fwd (out + mask)", shape=shape, nbytes=9 * n,
             fn=lambda: F.dropout(x, p, return_mask=True)),
        dict(name="dropout p=0.5 bwd", shape=shape, nbytes=9 * n,
             fn=lambda: F.dropout_backward(dy, mask, p)),
    ]
    if torch is not None:
        xt, dyt, mt = torch.from_numpy(x), torch.from_numpy(dy), torch.from_numpy(mask.astype(bool))
        tb = torch.ops.aten.native_dropout_backward(dyt, mt, 1 / (1 - p))
        _check("dropout", rel_err(dx, tb.numpy()))
        cases[0]["torch"] = lambda: torch.ops.aten.native_dropout(xt, p, True)
        cases[1]["torch"] = lambda: torch.ops.aten.native_dropout_backward(dyt, mt, 1 / (1 - p))
    return cases


def run(threads, quick):
    try:
        import torch
    except ImportError:
        torch = None
    fastconv.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    shrink = (lambda s: (max(1, s[0] // 8),) + s[1:]) if quick else (lambda s: s)
    reps = dict(repeats=3, min_time=0.05) if quick else {}
    rng = np.random.default_rng(0)
    cases = (_bn_cases(torch, shrink(BN_SHAPE), rng) + _lrn_cases(torch, shrink(LRN_SHAPE), rng)
             + _dropout_cases(torch, shrink(DROPOUT_SHAPE), rng))
    for c in cases:
        c["time"] = timeit(c["fn"], **reps)
        if "torch" in c:
            c["torch_time"] = timeit(c["torch"], **reps)
    return cases, torch


def table(cases, bandwidth, threads, torch):
    head = ["case (shape)", "ms (min-max)", "GB/s (of copy)"]
    if torch is not None:
        head += ["torch ms", "ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cases:
        med, lo, hi = c["time"]
        gbs = c["nbytes"] / med / 1e9
        cells = [f"{c['name']} {'x'.join(map(str, c['shape']))}",
                 f"{med * 1e3:.2f} ({lo * 1e3:.2f}-{hi * 1e3:.2f})",
                 f"{gbs:.1f} ({gbs / bandwidth:.0%})"]
        if torch is not None:
            tm = c["torch_time"][0]
            cells += [f"{tm * 1e3:.2f}", f"{med / tm:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    ratio = ("ratio = fastconv time / PyTorch time (below 1 is faster); " if torch is not None
             else "")
    foot = (f"\nfloat32, {threads} threads, median (min-max) of the samples after warm-up; "
            f"{ratio}GB/s: bytes the minimal algorithm moves (see bench_norm.py), as a share of "
            f"the measured copy bandwidth {bandwidth:.1f} GB/s"
            + (f"; torch {torch.__version__}" if torch else "; torch not installed"))
    return "\n".join(lines) + foot


def render(args):
    cases, torch = run(args.threads, args.quick)
    return table(cases, copy_bandwidth(64 << 20 if args.quick else 256 << 20), args.threads, torch)


if __name__ == "__main__":
    main(__doc__, render)
