"""conv2d forward and backward: fastconv against torch.nn.functional.conv2d, float32.

    python bench/bench_conv.py [--threads 2] [--markdown out.md]

Backward is all three gradients (input, weight, bias); for PyTorch it is
aten.convolution_backward called directly, so neither side pays for autograd bookkeeping.
GFLOP/s counts 2*N*K*P*Q*(C/groups)*R*S per forward and twice that per backward.
"""

import sys

import numpy as np

import fastconv
import fastconv.functional as F
from harness import main, rel_err, sgemm_ceiling, timeit

# N, C, H, W, K, R, S, stride, pad
LAYERS = [
    ("fashion_cnn conv1", (64, 1, 28, 28, 16, 5, 5, 1, 2)),
    ("fashion_cnn conv2", (64, 16, 14, 14, 32, 5, 5, 1, 2)),
    ("resnet 3x3", (16, 64, 56, 56, 64, 3, 3, 1, 1)),
    ("resnet 3x3 s2", (16, 128, 28, 28, 256, 3, 3, 2, 1)),
    ("alexnet conv1", (8, 3, 224, 224, 64, 11, 11, 4, 2)),
    ("resnet 1x1", (16, 256, 56, 56, 64, 1, 1, 1, 0)),
]


def flops(N, C, H, W, K, R, S, stride, pad):
    P = (H + 2 * pad - R) // stride + 1
    Q = (W + 2 * pad - S) // stride + 1
    return 2.0 * N * K * P * Q * C * R * S


def run(threads):
    try:
        import torch
    except ImportError:
        torch = None
    fastconv.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, (N, C, H, W, K, R, S, stride, pad) in LAYERS:
        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        w = rng.standard_normal((K, C, R, S), dtype=np.float32) / float(np.sqrt(C * R * S))
        b = rng.standard_normal(K, dtype=np.float32)
        y = F.conv2d(x, w, b, stride=stride, padding=pad)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        grads = F.conv2d_backward(dy, x, w, stride=stride, padding=pad)
        fwd = timeit(lambda: F.conv2d(x, w, b, stride=stride, padding=pad))
        bwd = timeit(lambda: F.conv2d_backward(dy, x, w, stride=stride, padding=pad))
        row = {"name": name, "shape": (N, C, H, W, K, R, S, stride, pad),
               "gflop": flops(N, C, H, W, K, R, S, stride, pad) / 1e9, "fwd": fwd, "bwd": bwd}
        if torch is not None:
            xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
            conv_bwd = torch.ops.aten.convolution_backward
            with torch.no_grad():
                yt = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad)
                gt = conv_bwd(dyt, xt, wt, [K], [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1,
                              [True, True, True])
                err = max([rel_err(y, yt.numpy())] + [rel_err(a, t.numpy()) for a, t in zip(grads, gt)])
                if err > 1e-4:
                    sys.exit(f"{name}: fastconv differs from torch by {err:.2e}; refusing to time it")
                row["torch_fwd"] = timeit(
                    lambda: torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad))
                row["torch_bwd"] = timeit(
                    lambda: conv_bwd(dyt, xt, wt, [K], [stride] * 2, [pad] * 2, [1, 1], False,
                                     [0, 0], 1, [True, True, True]))
                row["err"] = err
        rows.append(row)
    return rows, torch


def table(rows, ceiling, threads, torch):
    head = ["layer (N,C,H,W,K,R,S,stride,pad)", "fwd ms", "fwd GFLOP/s", "bwd ms",
            "bwd GFLOP/s"]
    if torch is not None:
        head += ["torch fwd ms", "torch bwd ms", "fwd ratio", "bwd ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        f, b = r["fwd"][0], r["bwd"][0]
        cells = [f"{r['name']} {','.join(map(str, r['shape']))}", f"{f * 1e3:.2f}",
                 f"{r['gflop'] / f:.1f} ({r['gflop'] / f / ceiling:.0%})", f"{b * 1e3:.2f}",
                 f"{2 * r['gflop'] / b:.1f} ({2 * r['gflop'] / b / ceiling:.0%})"]
        if torch is not None:
            tf, tb = r["torch_fwd"][0], r["torch_bwd"][0]
            cells += [f"{tf * 1e3:.2f}", f"{tb * 1e3:.2f}", f"{f / tf:.2f}", f"{b / tb:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    info = fastconv.info()
    foot = (f"\nfloat32, {threads} threads, median of 7 after warm-up; ratio = fastconv time / "
            f"PyTorch time (below 1 is faster). Percentages: share of the measured SGEMM "
            f"ceiling {ceiling:.0f} GFLOP/s (NumPy float32 matmul 2048^3). BLAS: {info['blas']} "
            f"({info['blas_core']})" + (f"; torch {torch.__version__}" if torch else ""))
    return "\n".join(lines) + foot


def render(args):
    rows, torch = run(args.threads)
    return table(rows, sgemm_ceiling(), args.threads, torch)


if __name__ == "__main__":
    main(__doc__, render)
