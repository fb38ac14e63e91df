"""conv2d forward and backward (input + weight gradients) of each distinct convolution of
ResNet-18 at 28x28 input (small_input, batch 64), plus LeNet-5's C5, against PyTorch in the
same process: the per-layer view behind the resnet18 training-step ratio of `fastconv bench`.

    python bench/resnet18_layers.py [--batch 64] [--threads 2]

Prints medians (ms) and fastconv/PyTorch ratios (below 1: fastconv is faster). Needs torch.
"""

import argparse
import time

import numpy as np
import torch

import fastconv
import fastconv.functional as F

# name, C, H (= W), K, kernel, stride, padding
LAYERS = [("l1 3x3 64", 64, 28, 64, 3, 1, 1), ("l2a 3x3 s2", 64, 28, 128, 3, 2, 1),
          ("l2 3x3 128", 128, 14, 128, 3, 1, 1), ("l2 ds 1x1 s2", 64, 28, 128, 1, 2, 0),
          ("l3a 3x3 s2", 128, 14, 256, 3, 2, 1), ("l3 3x3 256", 256, 7, 256, 3, 1, 1),
          ("l3 ds 1x1 s2", 128, 14, 256, 1, 2, 0), ("l4a 3x3 s2", 256, 7, 512, 3, 2, 1),
          ("l4 3x3 512", 512, 4, 512, 3, 1, 1), ("l4 ds 1x1 s2", 256, 7, 512, 1, 2, 0),
          ("lenet C5", 16, 5, 120, 5, 1, 0)]


def median_ms(fn, samples=15, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for name, C, H, K, R, s, pad in LAYERS:
        x = rng.standard_normal((args.batch, C, H, H)).astype(np.float32)
        w = rng.standard_normal((K, C, R, R)).astype(np.float32)
        y = F.conv2d(x, w, stride=s, padding=pad)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        xt, wt, dyt = (torch.tensor(a, requires_grad=a is not dy) for a in (x, w, dy))
        np.testing.assert_allclose(
            y, torch.nn.functional.conv2d(xt, wt, None, s, pad).detach().numpy(),
            rtol=1e-3, atol=1e-3 * float(np.abs(y).max()))
        f_fwd = median_ms(lambda: F.conv2d(x, w, stride=s, padding=pad))
        t_fwd = median_ms(lambda: torch.nn.functional.conv2d(xt.detach(), wt.detach(), None, s,
                                                             pad))
        f_bwd = median_ms(lambda: F.conv2d_backward(dy, x, w, stride=s, padding=pad,
                                                    output_mask=(True, True, False)))

        def torch_step():
            out = torch.nn.functional.conv2d(xt, wt, None, s, pad)
            torch.autograd.grad(out, (xt, wt), dyt)

        t_bwd = median_ms(torch_step) - t_fwd
        print(f"{name:14s} fwd {f_fwd:7.2f} vs {t_fwd:7.2f} ms ({f_fwd / t_fwd:4.2f})  "
              f"bwd {f_bwd:7.2f} vs {t_bwd:7.2f} ms ({f_bwd / t_bwd:4.2f})")


if __name__ == "__main__":
    main()
