"""Per-call overhead of small fastconv calls on the CPU: the time a call costs beyond its
arithmetic, which is most of it on arrays this small.

    PYTHONPATH=python python bench/overhead.py [--calls 2000] [--repeats 15] [--threads 1]

Each case is checked once, warmed up, then timed as `repeats` samples of `calls` calls each;
the median sample per call is printed (microseconds). Run it on two builds (say main and a
branch) in the same way to compare; --threads 1 keeps OpenMP out of the numbers.
"""

import argparse
import statistics
import time

import numpy as np

import fastconv
import fastconv.functional as F
from fastconv import models, nn, optim


def _relu_forward():
    x = np.random.default_rng(0).standard_normal((8, 16, 14, 14)).astype(np.float32)
    assert np.array_equal(F.relu(x), np.maximum(x, 0))
    return lambda: F.relu(x)


def _relu_backward():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 16, 14, 14)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    assert np.array_equal(F.relu_backward(g, x), np.where(x > 0, g, 0))
    return lambda: F.relu_backward(g, x)


def _softmax():
    x = np.random.default_rng(2).standard_normal((8, 10)).astype(np.float32)
    assert np.allclose(F.softmax(x, dim=1).sum(axis=1), 1, atol=1e-6)
    return lambda: F.softmax(x, dim=1)


def _max_pool_forward_backward():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 16, 14, 14)).astype(np.float32)
    g = rng.standard_normal((8, 16, 7, 7)).astype(np.float32)
    windows = x.reshape(8, 16, 7, 2, 7, 2)
    assert np.array_equal(F.max_pool2d(x, 2), windows.max(axis=(3, 5)))

    def call():
        out, indices = F.max_pool2d(x, 2, return_indices=True)
        return F.max_pool2d_backward(g, x, 2, indices=indices)

    return call


def _conv2d_small():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    patches = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))
    expect = np.einsum("ncpqrs,kcrs->nkpq", patches.astype(np.float64), w.astype(np.float64))
    assert np.allclose(F.conv2d(x, w), expect, atol=1e-4)
    return lambda: F.conv2d(x, w)


def _linear_backward():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    w = rng.standard_normal((10, 64)).astype(np.float32)
    g = rng.standard_normal((8, 10)).astype(np.float32)
    dx, dw, db = F.linear_backward(g, x, w)
    assert np.allclose(dx, g @ w, atol=1e-4) and np.allclose(dw, g.T @ x, atol=1e-4)
    assert np.allclose(db, g.sum(axis=0), atol=1e-5)
    return lambda: F.linear_backward(g, x, w)


def _batch_norm_forward_backward():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 16, 7, 7)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta = np.ones(16, np.float32), np.zeros(16, np.float32)
    mean, var = np.zeros(16, np.float32), np.ones(16, np.float32)
    x64 = x.astype(np.float64)
    expect = (x64 - x64.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        x64.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    assert np.allclose(F.batch_norm(x, mean, var, gamma, beta, training=True), expect, atol=1e-4)

    def call():
        out, m, s = F.batch_norm(x, mean, var, gamma, beta, training=True, return_stats=True)
        return F.batch_norm_backward(g, x, gamma, m, s, training=True)

    return call


def _cross_entropy_forward_backward():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 10)).astype(np.float32)
    y = rng.integers(0, 10, size=8)
    x64 = x.astype(np.float64)
    logp = x64 - np.log(np.exp(x64).sum(axis=1, keepdims=True))
    assert np.isclose(float(F.cross_entropy(x, y)), -logp[np.arange(8), y].mean(), atol=1e-5)

    def call():
        F.cross_entropy(x, y)
        return F.cross_entropy_backward(1.0, x, y)

    return call


def _fashion_cnn_step():
    rng = np.random.default_rng(3)
    model = models.fashion_cnn()
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=8)

    def step():
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
        return loss

    assert np.isfinite(float(step()))
    return step


CASES = {
    "relu forward f32 8x16x14x14": _relu_forward,
    "relu backward f32 8x16x14x14": _relu_backward,
    "softmax f32 8x10 dim=1": _softmax,
    "max_pool2d k2 forward + backward f32 8x16x14x14": _max_pool_forward_backward,
    "conv2d f32 2x4x8x8, 4x4x3x3": _conv2d_small,
    "linear_backward f32 8x64 -> 10": _linear_backward,
    "batch_norm train forward + backward f32 8x16x7x7": _batch_norm_forward_backward,
    "cross_entropy forward + backward f32 8x10": _cross_entropy_forward_backward,
    "fashion_cnn train step, batch 8": _fashion_cnn_step,
}


def measure(fn, calls, repeats, warmup=3):
    for _ in range(warmup):
        for _ in range(max(1, calls // 10)):
            fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2000, help="calls per sample (a step: / 20)")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    for name, make in CASES.items():
        fn = make()
        calls = args.calls // 20 if "step" in name else args.calls
        print(f"{name:48s} {measure(fn, calls, args.repeats) * 1e6:10.2f} us")


if __name__ == "__main__":
    main()
