"""linear and conv_transpose2d, forward and backward: fastconv against PyTorch, float32.

    python bench/bench_dense.py [--threads 2] [--markdown out.md] [--quick]

Backward is all three gradients (input, weight, bias). For PyTorch, linear's backward is the
three products autograd would run (dy·W, dy^T·x, the column sums of dy) and conv_transpose2d's
is aten.convolution_backward called directly, so neither side pays for autograd bookkeeping.
GFLOP/s counts 2 multiply-adds' worth per weight tap per output (2*M*IN*OUT for linear,
2*N*C_in*H*W*(C_out/groups)*R*S for conv_transpose2d) forward, and twice that backward.
GB/s counts the bytes the minimal algorithm reads and writes: every input once, every output
once. Outputs are validated against torch (or, without torch, the float64 NumPy reference in
tests/) before anything is timed. --quick runs smaller shapes with fewer repeats, to check that
the script works, not to measure.
"""

import os
import sys

import numpy as np

import fastconv
import fastconv.functional as F
from harness import copy_bandwidth, main, rel_err, sgemm_ceiling, timeit

# name, (M, IN, OUT)
LINEAR = [
    ("fashion_cnn head", (64, 1568, 10)),
    ("alexnet fc", (256, 4096, 4096)),
]
# name, (N, C_in, H, W, C_out, R, S, stride, padding)
CONV_T = [
    ("upsample 4x4 s2 p1", (16, 64, 28, 28, 32, 4, 4, 2, 1)),
]
QUICK_LINEAR = [("fashion_cnn head", (64, 1568, 10)), ("alexnet fc (1/16)", (64, 1024, 1024))]
QUICK_CONV_T = [("upsample 4x4 s2 p1 (1/8)", (2, 64, 28, 28, 32, 4, 4, 2, 1))]


def _reference():
    """tests/reference_dense.py, the float64 NumPy reference, for machines without torch."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import reference_dense
    return reference_dense


def _validate(name, got, want):
    err = max(rel_err(g, w) for g, w in zip(got, want))
    if err > 1e-4:
        sys.exit(f"{name}: fastconv differs from the reference by {err:.2e}; refusing to time it")
    return err


def bench_linear(name, shape, torch, rng, tkw):
    M, IN, OUT = shape
    x = rng.standard_normal((M, IN), dtype=np.float32)
    w = rng.standard_normal((OUT, IN), dtype=np.float32) / np.float32(np.sqrt(IN))
    b = rng.standard_normal(OUT, dtype=np.float32)
    dy = rng.standard_normal((M, OUT), dtype=np.float32)
    got = [F.linear(x, w, b), *F.linear_backward(dy, x, w)]
    if torch is not None:
        xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
        with torch.no_grad():
            def t_fwd():
                return torch.nn.functional.linear(xt, wt, bt)

            def t_bwd():
                return dyt @ wt, dyt.t() @ xt, dyt.sum(0)

            want = [t_fwd().numpy()] + [a.numpy() for a in t_bwd()]
    else:
        ref = _reference()
        want = [ref.linear_ref(x, w, b), *ref.linear_backward_ref(dy, x, w)]
    row = {"name": f"linear {name} {M}x{IN}->{OUT}", "gflop": 2.0 * M * IN * OUT / 1e9,
           "fwd_bytes": 4.0 * (M * IN + OUT * IN + OUT + M * OUT),
           "bwd_bytes": 4.0 * (M * OUT + M * IN + OUT * IN + M * IN + OUT * IN + OUT),
           "err": _validate(name, got, want)}
    row["fwd"] = timeit(lambda: F.linear(x, w, b), **tkw)
    row["bwd"] = timeit(lambda: F.linear_backward(dy, x, w), **tkw)
    if torch is not None:
        with torch.no_grad():
            row["torch_fwd"] = timeit(t_fwd, **tkw)
            row["torch_bwd"] = timeit(t_bwd, **tkw)
    return row


def bench_conv_transpose(name, shape, torch, rng, tkw):
    N, C, H, W, K, R, S, stride, pad = shape
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((C, K, R, S), dtype=np.float32) / np.float32(np.sqrt(C * R * S))
    b = rng.standard_normal(K, dtype=np.float32)
    y = F.conv_transpose2d(x, w, b, stride=stride, padding=pad)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    got = [y, *F.conv_transpose2d_backward(dy, x, w, stride=stride, padding=pad)]
    if torch is not None:
        xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
        conv_bwd = torch.ops.aten.convolution_backward
        with torch.no_grad():
            def t_fwd():
                return torch.nn.functional.conv_transpose2d(xt, wt, bt, stride=stride,
                                                            padding=pad)

            def t_bwd():
                return conv_bwd(dyt, xt, wt, [K], [stride] * 2, [pad] * 2, [1, 1], True, [0, 0],
                                1, [True, True, True])

            want = [t_fwd().numpy()] + [a.numpy() for a in t_bwd()]
    else:
        ref = _reference()
        want = [ref.conv_transpose2d_ref(x, w, b, stride, pad),
                *ref.conv_transpose2d_backward_ref(dy, x, w, stride, pad)]
    row = {"name": f"conv_transpose2d {name} {N},{C},{H},{W}->{K}",
           "gflop": 2.0 * N * C * H * W * K * R * S / 1e9,
           "fwd_bytes": 4.0 * (x.size + w.size + b.size + y.size),
           "bwd_bytes": 4.0 * (dy.size + x.size + w.size + x.size + w.size + b.size),
           "err": _validate(name, got, want)}
    row["fwd"] = timeit(lambda: F.conv_transpose2d(x, w, b, stride=stride, padding=pad), **tkw)
    row["bwd"] = timeit(lambda: F.conv_transpose2d_backward(dy, x, w, stride=stride, padding=pad),
                        **tkw)
    if torch is not None:
        with torch.no_grad():
            row["torch_fwd"] = timeit(t_fwd, **tkw)
            row["torch_bwd"] = timeit(t_bwd, **tkw)
    return row


def run(threads, quick):
    try:
        import torch
    except ImportError:
        torch = None
    fastconv.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    tkw = dict(warmup=1, repeats=3, min_time=0.02) if quick else dict(repeats=7)
    rows = [bench_linear(n, s, torch, rng, tkw) for n, s in (QUICK_LINEAR if quick else LINEAR)]
    rows += [bench_conv_transpose(n, s, torch, rng, tkw)
             for n, s in (QUICK_CONV_T if quick else CONV_T)]
    return rows, torch, tkw["repeats"]


def table(rows, ceiling, bandwidth, threads, torch, repeats):
    head = ["op (shape)", "fwd ms", "fwd GFLOP/s", "fwd GB/s", "bwd ms", "bwd GFLOP/s",
            "bwd GB/s"]
    if torch is not None:
        head += ["torch fwd ms", "torch bwd ms", "fwd ratio", "bwd ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"]]
        for key, flop in (("fwd", r["gflop"]), ("bwd", 2 * r["gflop"])):
            med, lo, hi = r[key]
            gbs = r[f"{key}_bytes"] / med / 1e9
            cells += [f"{med * 1e3:.3f} ({lo * 1e3:.3f}-{hi * 1e3:.3f})",
                      f"{flop / med:.1f} ({flop / med / ceiling:.0%})",
                      f"{gbs:.2f} ({gbs / bandwidth:.0%})"]
        if torch is not None:
            f, b, tf, tb = r["fwd"][0], r["bwd"][0], r["torch_fwd"][0], r["torch_bwd"][0]
            cells += [f"{tf * 1e3:.3f}", f"{tb * 1e3:.3f}", f"{f / tf:.2f}", f"{b / tb:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    info = fastconv.info()
    foot = (f"\nfloat32, {threads} threads, median (min-max) ms of {repeats} after warm-up; "
            f"ratio = fastconv time / PyTorch time (below 1 is faster). GFLOP/s percentages: "
            f"share of the measured SGEMM ceiling {ceiling:.0f} GFLOP/s (NumPy float32 matmul); "
            f"GB/s percentages: share of the measured copy bandwidth {bandwidth:.1f} GB/s. Max "
            f"relative error vs the reference: {max(r['err'] for r in rows):.1e}. BLAS: "
            f"{info['blas']} ({info['blas_core']})"
            + (f"; torch {torch.__version__}" if torch else "; torch not installed"))
    return "\n".join(lines) + foot


def render(args):
    rows, torch, repeats = run(args.threads, args.quick)
    ceiling = sgemm_ceiling(512 if args.quick else 2048)
    bandwidth = copy_bandwidth((16 << 20) if args.quick else (256 << 20))
    return table(rows, ceiling, bandwidth, args.threads, torch, repeats)


if __name__ == "__main__":
    main(__doc__, render)
