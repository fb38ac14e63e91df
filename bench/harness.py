"""Timing helpers shared by the benchmark scripts: warm up, repeat, report median and spread.

Every benchmark validates its output against a reference before it times anything.
"""

import statistics
import time

import numpy as np


def timeit(fn, warmup=2, repeats=7, min_time=0.2):
    """Median, min and max seconds of fn() over `repeats` samples after `warmup` calls.

    A sample loops fn() until it has run for min_time / repeats, so fast kernels are not
    dominated by timer resolution.
    """
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / repeats / one))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples), min(samples), max(samples)


def rel_err(actual, expected):
    """max |actual - expected| / max |expected|; NaN anywhere gives inf."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if not (np.isfinite(actual).all() and np.isfinite(expected).all()):
        return float("inf")
    scale = max(np.abs(expected).max(), 1e-30)
    return float(np.abs(actual - expected).max() / scale)


def sgemm_ceiling(n=2048):
    """GFLOP/s of NumPy's float32 matmul at n^3: the machine's practical SGEMM rate."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    med, _, _ = timeit(lambda: a @ b, warmup=1, repeats=5)
    return 2 * n**3 / med / 1e9


def copy_bandwidth(nbytes=256 << 20):
    """GB/s of a large NumPy copy (read + write counted): the machine's practical memory ceiling
    for memory-bound kernels, which read their input and write their output."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    med, _, _ = timeit(lambda: np.copyto(dst, src), warmup=1, repeats=5)
    return 2 * nbytes / med / 1e9


def main(doc, render, extra_args=None):
    """The command line every benchmark script shares: --threads (default 2), --quick (small
    shapes and few repeats: checks that the script runs, does not measure) and --markdown FILE;
    render(args) runs the cases and returns the table as markdown, which is printed (and saved)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="small shapes and few repeats: checks that the script runs")
    ap.add_argument("--markdown", help="also write the table to this file")
    if extra_args is not None:
        extra_args(ap)
    args = ap.parse_args()
    text = render(args)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
